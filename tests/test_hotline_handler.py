"""
The hotline handler against a fake FastAGI session: menus, direct dial,
hours, ringing strategies, overflow, voicemail and announcements, hangups
at any point, internal errors, and the call records.
"""

from __future__ import annotations

from datetime import timedelta

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from switchboard.agi.errors import AGICommandError
from switchboard.dialing import Dialer
from switchboard.hotline import HotlineHandler
from switchboard.hotline.handler import KEYS
from tests.test_hotline_support import (
    DIALER,
    HANGUP,
    PLAN,
    ROUTING,
    SHANGHAI,
    FakeSession,
    Hangup,
    Recorder,
    Store,
    routing,
    seconds,
)

R = routing()
THURSDAY = "2026-10-08 10:00"
OK = ("set_variable", "SWITCHBOARD_RESULT", "OK")
LANGUAGE = ("set_variable", "CHANNEL(language)", "zh")


class HandlerTests(SynchronousTestCase):
    def serve(self, session, when=THURSDAY, current=R, dialer=DIALER):
        self.clock = task.Clock()
        self.clock.advance(seconds(when))
        self.log = Recorder()
        self.store = Store(current)
        self.handler = HotlineHandler(self.store, dialer, self.log, SHANGHAI, clock=self.clock)
        return self.handler(session)

    def record(self):
        (call,) = self.log.calls
        return call

    def dials(self, session):
        return [c[1:] for c in session.named("exec_") if c[1] == "Dial"]

    # Menus and dialling

    def test_option_rings_and_is_answered(self):
        session = FakeSession(get_data=["1"], variables={"DIALSTATUS": ["ANSWER"],
                                                         "ANSWEREDTIME": ["62"]})
        self.successResultOf(self.serve(session))
        self.assertEqual(session.commands, [
            ("answer",),
            LANGUAGE,
            ("stream_file", "hello", KEYS),
            ("get_data", "main-menu", 5000, 1),
            ("exec_", "Dial", "PJSIP/87650011", 20, "g"),
            ("get_variable", "DIALSTATUS"),
            ("get_variable", "ANSWEREDTIME"),
            OK,
            ("hangup",),
        ])
        call = self.record()
        self.assertEqual((call.outcome, call.destination, call.caller, call.hotline),
                         ("answered", "社区卫生服务中心", "+8659187650001", "12345"))
        self.assertEqual(call.answered, call.started - timedelta(seconds=62))
        self.assertEqual(call.ended, call.started)
        self.assertEqual(call.path[:3], ["menu main (主菜单): prompt main-menu",
                                         "pressed 1: option 1 -> 社区卫生服务中心 [health]",
                                         "社区卫生服务中心 [health]: open: Thursday 2026-10-08, "
                                         "08:00-12:00"])
        self.assertIn("answered at 社区卫生服务中心 [health]", call.path)

    def test_busy_follows_the_overflow_chain(self):
        session = FakeSession(get_data=["1"], variables={"DIALSTATUS": ["BUSY", "NOANSWER"],
                                                         "VMSTATUS": ["SUCCESS"]})
        self.successResultOf(self.serve(session))
        self.assertEqual([c[1:] for c in session.named("exec_")], [
            ("Dial", "PJSIP/87650011", 20, "g"),
            ("Dial", "PJSIP/87650190", 20, "g"),
            ("VoiceMail", "100@switchboard", "u"),
        ])
        self.assertIn(OK, session.commands)
        call = self.record()
        self.assertEqual((call.outcome, call.destination), ("voicemail", "留言箱"))
        self.assertIn("PJSIP/87650011: BUSY", call.path)
        self.assertIn("PJSIP/87650190: NOANSWER", call.path)

    def test_closed_goes_to_the_closed_destination(self):
        session = FakeSession(get_data=["1"])
        self.successResultOf(self.serve(session, "2026-10-08 21:30"))
        self.assertEqual(session.commands[3:], [
            ("get_data", "main-menu", 5000, 1),
            ("stream_file", "health-closed", ""),
            OK,
            ("hangup",),
        ])
        self.assertEqual(self.record().outcome, "announcement")

    def test_holiday_is_closed(self):
        session = FakeSession(get_data=["1"])
        self.successResultOf(self.serve(session, "2026-10-01 10:00"))
        self.assertIn(("stream_file", "health-closed", ""), session.commands)
        self.assertEqual(self.dials(session), [])

    def test_wrong_keys_retry_then_fallback(self):
        session = FakeSession(get_data=["9", "7", "9"], variables={"DIALSTATUS": ["ANSWER"]})
        self.successResultOf(self.serve(session))
        self.assertEqual(session.commands[3:9], [
            ("get_data", "main-menu", 5000, 1),
            ("stream_file", "pm-invalid-option", KEYS),
            ("get_data", "main-menu", 5000, 1),
            ("stream_file", "pm-invalid-option", KEYS),
            ("get_data", "main-menu", 5000, 1),
            ("exec_", "Dial", "PJSIP/87650100", 20, "g"),
        ])
        self.assertIn("3 failed entries: fallback -> 总机 [operator]", self.record().path)

    def test_key_pressed_during_invalid_prompt_counts(self):
        session = FakeSession(get_data=["9"], stream_file=["", "1"],
                              variables={"DIALSTATUS": ["ANSWER"]})
        self.successResultOf(self.serve(session))
        self.assertEqual(len(session.named("get_data")), 1)
        self.assertEqual(self.dials(session), [("Dial", "PJSIP/87650011", 20, "g")])

    def test_silence_then_fallback(self):
        session = FakeSession(variables={"DIALSTATUS": ["ANSWER"]})
        self.successResultOf(self.serve(session))
        self.assertEqual(len(session.named("get_data")), 3)
        self.assertEqual(session.named("stream_file"), [("stream_file", "hello", KEYS)])
        self.assertEqual(self.dials(session), [("Dial", "PJSIP/87650100", 20, "g")])

    def test_zero_for_the_operator(self):
        session = FakeSession(get_data=["0"], variables={"DIALSTATUS": ["ANSWER"]})
        self.successResultOf(self.serve(session))
        self.assertEqual(self.dials(session), [("Dial", "PJSIP/87650100", 20, "g")])

    def test_direct_dial_code(self):
        session = FakeSession(get_data=["8"], wait_for_digit=["0", "2"],
                              variables={"DIALSTATUS": ["ANSWER"]})
        self.successResultOf(self.serve(session))
        self.assertEqual(session.named("wait_for_digit"),
                         [("wait_for_digit", 3000), ("wait_for_digit", 3000)])
        self.assertEqual(self.dials(session), [("Dial", "PJSIP/87650011", 20, "g")])
        self.assertIn("pressed 802: direct-dial code 802 -> 社区卫生服务中心 [health]",
                      self.record().path)

    def test_unfinished_code_is_a_wrong_entry(self):
        session = FakeSession(get_data=["8", "1"], wait_for_digit=["0", ""],
                              variables={"DIALSTATUS": ["ANSWER"]})
        self.successResultOf(self.serve(session))
        self.assertIn("pressed 80: not an option of menu main", self.record().path)
        self.assertEqual(self.dials(session), [("Dial", "PJSIP/87650011", 20, "g")])

    def test_greeting_interrupted_by_a_key(self):
        session = FakeSession(stream_file=["1"], variables={"DIALSTATUS": ["ANSWER"]})
        self.successResultOf(self.serve(session))
        self.assertEqual(session.named("get_data"), [])
        self.assertEqual(self.dials(session), [("Dial", "PJSIP/87650011", 20, "g")])

    def test_ring_all_then_nobody_at_all(self):
        session = FakeSession(get_data=["2"], variables={"DIALSTATUS": ["NOANSWER", "BUSY"]})
        self.successResultOf(self.serve(session))
        self.assertEqual(self.dials(session), [
            ("Dial", "PJSIP/87650001&PJSIP/87650002", 20, "g"),
            ("Dial", "PJSIP/87650100", 20, "g"),
        ])
        self.assertEqual(session.commands[-3:],
                         [("stream_file", "please-try-call-later", ""), OK, ("hangup",)])
        call = self.record()
        self.assertEqual((call.outcome, call.destination), ("busy", "总机"))

    def test_hunt_rings_one_phone_at_a_time(self):
        session = FakeSession(get_data=["4"], variables={"DIALSTATUS": ["NOANSWER", "ANSWER"]})
        self.successResultOf(self.serve(session))
        self.assertEqual(self.dials(session), [("Dial", "PJSIP/87650031", 15, "g"),
                                               ("Dial", "PJSIP/87650032", 15, "g")])
        self.assertEqual(self.record().outcome, "answered")

    def test_outside_service_through_its_trunk(self):
        session = FakeSession(get_data=["5"], variables={"DIALSTATUS": ["ANSWER"]})
        self.successResultOf(self.serve(session))
        self.assertEqual(self.dials(session), [("Dial", "PJSIP/87650041@trunk", 20, "g")])

    def test_missing_trunk_overflows(self):
        session = FakeSession(get_data=["5"], variables={"VMSTATUS": ["SUCCESS"]})
        self.successResultOf(self.serve(session, dialer=Dialer(PLAN, {"default": "PJSIP/{number}"})))
        self.assertEqual(self.dials(session), [])
        self.assertIn(("exec_", "VoiceMail", "100@switchboard", "u"), session.commands)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_submenu(self):
        session = FakeSession(get_data=["3", "1"])
        self.successResultOf(self.serve(session))
        self.assertEqual(session.named("get_data"), [("get_data", "main-menu", 5000, 1),
                                                     ("get_data", "sub-menu", 5000, 1)])
        self.assertIn(("stream_file", "notices", ""), session.commands)
        self.assertEqual(self.record().outcome, "announcement")

    def test_too_many_menus_go_to_the_operator(self):
        session = FakeSession(get_data=["3", "*"] * 6, variables={"DIALSTATUS": ["ANSWER"]})
        self.successResultOf(self.serve(session))
        self.assertEqual(len(session.named("get_data")), 12)
        self.assertEqual(self.dials(session), [("Dial", "PJSIP/87650100", 20, "g")])
        self.assertIn("too many menus: put through to the operator", self.record().path)

    def test_voicemail_failure_plays_sorry(self):
        session = FakeSession(get_data=["4"], variables={"DIALSTATUS": ["NOANSWER", "NOANSWER"],
                                                         "VMSTATUS": ["FAILED"]})
        self.successResultOf(self.serve(session))
        self.assertEqual(session.commands[-3:],
                         [("stream_file", "please-try-call-later", ""), OK, ("hangup",)])
        self.assertEqual(self.record().outcome, "failed")

    # Callers who hang up

    def test_hangup_in_the_menu(self):
        session = FakeSession(get_data=[HANGUP])
        self.successResultOf(self.serve(session))
        self.assertNotIn(OK, session.commands)
        call = self.record()
        self.assertEqual(call.outcome, "abandoned")
        self.assertEqual(call.path[-1], "caller hung up")

    def test_hangup_while_ringing(self):
        session = FakeSession(get_data=["1"], exec_=[HANGUP])
        self.successResultOf(self.serve(session))
        self.assertEqual(session.commands[-1], ("exec_", "Dial", "PJSIP/87650011", 20, "g"))
        self.assertEqual(self.record().outcome, "abandoned")

    def test_hangup_after_talking(self):
        # Dial's -1 comes back before Asterisk's HANGUP notice: DIALSTATUS
        # can still be read and says the call was answered.
        session = FakeSession(get_data=["1"], exec_=[Hangup(noticed=False)],
                              variables={"DIALSTATUS": ["ANSWER"]})
        self.successResultOf(self.serve(session))
        call = self.record()
        self.assertEqual((call.outcome, call.destination), ("answered", "社区卫生服务中心"))

    def test_hangup_in_voicemail_is_voicemail(self):
        session = FakeSession(get_data=["4"], exec_=[0, 0, HANGUP],
                              variables={"DIALSTATUS": ["NOANSWER", "NOANSWER"]})
        self.successResultOf(self.serve(session))
        self.assertEqual(self.record().outcome, "voicemail")

    # Reloads and errors

    def test_call_keeps_the_routing_it_started_with(self):
        pressed = defer.Deferred()
        session = FakeSession(get_data=[pressed], variables={"DIALSTATUS": ["ANSWER"]})
        d = self.serve(session)
        self.store.current = routing(ROUTING.replace("[0591-87650011]", "[87650012]"))
        pressed.callback("1")
        self.successResultOf(d)
        self.assertEqual(self.dials(session), [("Dial", "PJSIP/87650011", 20, "g")])
        # The next call is served on the new routing.
        later = FakeSession(get_data=["1"], variables={"DIALSTATUS": ["ANSWER"]})
        self.successResultOf(self.handler(later))
        self.assertEqual(self.dials(later), [("Dial", "PJSIP/87650012", 20, "g")])

    def test_internal_error_puts_the_caller_through_to_the_operator(self):
        session = FakeSession(get_data=[AGICommandError(520, "usage")],
                              variables={"DIALSTATUS": ["ANSWER"]})
        self.successResultOf(self.serve(session))
        self.assertEqual(self.dials(session), [("Dial", "PJSIP/87650100", 20, "g")])
        self.assertIn(OK, session.commands)
        call = self.record()
        self.assertEqual(call.outcome, "answered")
        self.assertIn("internal error: 520 usage", call.path)
        self.assertEqual(len(self.flushLoggedErrors(AGICommandError)), 1)

    def test_error_with_no_way_out_reaches_the_dialplan(self):
        broken = AGICommandError(200, "no such application: Dial")
        session = FakeSession(get_data=["1"], exec_=[broken, broken])
        self.failureResultOf(self.serve(session), AGICommandError)
        self.assertNotIn(OK, session.commands)  # the dialplan's fallback takes the call
        self.assertEqual(self.record().outcome, "failed")
        self.flushLoggedErrors(AGICommandError)

    def test_no_routing_loaded(self):
        session = FakeSession()
        self.failureResultOf(self.serve(session, current=None), RuntimeError)
        self.assertEqual(session.commands, [])
        self.assertEqual(self.record().outcome, "failed")
        self.flushLoggedErrors(RuntimeError)

    def test_record_failure_does_not_hurt_the_call(self):
        class Broken:
            def record(self, call):
                raise RuntimeError("log broken")

        session = FakeSession(get_data=["1"], variables={"DIALSTATUS": ["ANSWER"]})
        clock = task.Clock()
        handler = HotlineHandler(Store(R), DIALER, Broken(), SHANGHAI, clock=clock)
        self.successResultOf(handler(session))
        self.assertIn(OK, session.commands)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    # Callers

    def test_caller_forms(self):
        for presented, recorded in [("87650001", "+8659187650001"),
                                    ("+8613812345678", "+8613812345678"),
                                    ("unknown", None), ("", None), ("8001", "8001")]:
            session = FakeSession({"callerid": presented}, get_data=[HANGUP])
            self.serve(session)
            self.assertEqual(self.record().caller, recorded)
