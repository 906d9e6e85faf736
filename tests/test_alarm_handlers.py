"""The caller's and the responders' FastAGI handlers, with fake sessions."""

import pytest
import tempfile

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from alarm.handlers import (
    LOOKUP_DEADLINE,
    WAITING_SLICE_MS,
    AlarmCallerHandler,
    ResponderHandler,
)
from switchboard.ami import AMINotConnected

from tests.test_alarm_support import (
    DUTY,
    PLAN,
    FakeSession,
    Rig,
    add_household,
    alarm_row,
    household,
    number,
    timeline,
)

pytestmark = pytest.mark.database


class FakeIndex:
    """Caller ID -> snapshot; records the lookups (the handler must use nothing else)."""

    def __init__(self, *snapshots):
        self.lookups = []
        self.finds = []
        self.paused = 0
        self.forms = {}
        for s in snapshots:
            for n in s.numbers:
                for form in PLAN.variants(n):
                    self.forms[form] = s

    loaded = True

    def lookup(self, caller):
        self.lookups.append(caller)
        return self.forms.get(caller)

    def pause_load(self):
        self.paused += 1
        return self.resume

    def resume(self):
        self.paused -= 1

    def find(self, caller):
        """While not L{loaded}: a Deferred the test fires (as the database would)."""
        d = defer.Deferred()
        self.finds.append((caller, d))
        return d


class Case(SynchronousTestCase):
    def setUp(self):
        self.rig = Rig(tempfile.mkdtemp())
        add_household(self.rig.db, 1)
        self.home = household(1, 10, building="3", unit="2", room="501")
        self.index = FakeIndex(self.home)
        self.coordinator = self.rig.coordinator
        self.caller = AlarmCallerHandler(self.index, self.coordinator, self.rig.config, PLAN)
        self.responder = ResponderHandler(self.coordinator, self.rig.config, clock=self.rig.clock)

    def call(self, callerid="87650001", **kw):
        session = FakeSession({"callerid": callerid, "channel": "PJSIP/87650001-00000001"}, **kw)
        return session, self.caller(session)

    def leg_session(self, call, **kw):
        call.finish("answered")
        return FakeSession({"channel": call.channel + "-0000000a"},
                           variables={"SWITCHBOARD_ALARM": call.variables["SWITCHBOARD_ALARM"],
                                      "SWITCHBOARD_LEG": call.channel_id}, **kw)


class CallerTests(Case):
    def test_while_the_index_loads_the_household_comes_from_find(self):
        self.index.loaded = False
        session, d = self.call("059187650001")
        self.assertEqual(self.index.lookups, [])
        [(caller, found)] = self.index.finds
        self.assertEqual(caller, "059187650001")
        self.assertEqual(self.rig.ami.calls, [])  # nobody rung before the household is known
        self.assertEqual(self.index.paused, 1)  # the load waits meanwhile
        found.callback(self.index.forms[caller])
        self.successResultOf(d)
        self.assertEqual(self.index.paused, 0)
        alarm = self.coordinator.alarm(session.variables["SWITCHBOARD_ALARM"])
        self.assertEqual(alarm.household, self.home)
        self.assertEqual(len(self.rig.ami.calls), 10)

    def assert_handed_to_dialplan(self, session, d, why):
        """The dialplan rings natively (from AstDB, which knows the neighbours); on record."""
        self.assertIsNone(self.successResultOf(d), "no error: the dialplan takes over")
        # Not even ANSWER: Asterisk's waits up to 500 ms for the caller's media.
        self.assertEqual(session.commands, [])
        self.assertEqual(self.rig.ami.calls, [])
        self.assertEqual(self.index.paused, 0)
        self.successResultOf(self.rig.recorder.flush())
        [(kind, number, detail), native] = timeline(self.rig.db)
        self.assertEqual((kind, number), ("opened", "059187650001"))
        self.assertEqual(detail, f"#9 from 059187650001, household not known ({why})")
        self.assertEqual(native[0], "native")
        self.assertIn(f"rung natively by the dialplan: {why}", native[2])

    def test_a_failed_find_hands_the_alarm_to_the_dialplan(self):
        # The household cannot be read: this server would ring only the duty
        # phones of a caller it cannot place; AstDB knows the neighbours.
        self.index.loaded = False
        session, d = self.call("059187650001")
        self.index.finds[0][1].errback(RuntimeError("database is locked"))
        self.assert_handed_to_dialplan(session, d, "the registry could not be read")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_a_find_that_does_not_answer_is_not_waited_for(self):
        # A database that hangs (a lock held by a long transaction): the
        # caller is not kept in silence beyond the deadline.
        self.index.loaded = False
        session, d = self.call("059187650001")
        [(_, found)] = self.index.finds
        self.rig.clock.advance(LOOKUP_DEADLINE - 0.01)
        self.assertNoResult(d)
        self.assertEqual(session.commands, [])
        self.rig.clock.advance(0.01)
        self.assert_handed_to_dialplan(
            session, d, f"the registry did not answer within {LOOKUP_DEADLINE:g} s")
        found.callback(self.index.forms["059187650001"])   # late: changes nothing
        self.assertEqual(self.rig.ami.calls, [])

    def test_a_find_that_does_not_answer_joins_the_numbers_open_alarm(self):
        first, _ = self.call("059187650001")
        alarm = self.coordinator.alarm(first.variables["SWITCHBOARD_ALARM"])
        calls = len(self.rig.ami.calls)
        self.index.loaded = False
        session, d = self.call("059187650001", hangup_after=3)
        self.rig.clock.advance(LOOKUP_DEADLINE)
        self.successResultOf(d)
        self.assertEqual(session.variables["SWITCHBOARD_ROOM"], alarm.room)
        self.assertEqual(len(self.rig.ami.calls), calls)   # nobody rung twice

    def test_alarm_raised_caller_waits_for_a_neighbour(self):
        # Waits twice for a key, then hangs up.
        session, d = self.call("059187650001", hangup_after=5)
        self.successResultOf(d)
        self.assertEqual(self.index.lookups, ["059187650001"])
        alarm = self.coordinator.alarm(session.variables["SWITCHBOARD_ALARM"])
        self.assertEqual(alarm.household, self.home)
        self.assertEqual(len(self.rig.ami.calls), 10)
        room = f"alarm-{alarm.id}"
        self.assertEqual(session.commands, [
            ("answer",),
            ("set_variable", "SWITCHBOARD_ALARM", str(alarm.id)),
            ("set_variable", "SWITCHBOARD_ROOM", room),
            ("stream_file", "one-moment-please", ""),
            ("wait_for_digit", WAITING_SLICE_MS),
            ("wait_for_digit", WAITING_SLICE_MS),
        ])
        # Hanging up is no cancel.
        self.assertEqual(alarm.status, "open")

    def test_waits_in_slices_until_someone_confirms_then_joins_the_room(self):
        def waiting(n):
            if n == 3:     # a neighbour presses 1 during the third wait
                alarm = self.coordinator.open_alarms()[0]
                call = self.rig.ami.calls[4]
                self.coordinator.answered(alarm.id, call.channel_id)
                self.coordinator.confirm(alarm.id, call.channel_id)

        session = FakeSession({"callerid": "87650001"}, keys=["", "5", ""],
                              exec_results={"ConfBridge": {"CONFBRIDGE_RESULT": "HANGUP"}})
        session.on_wait = waiting
        self.successResultOf(self.caller(session))
        alarm = self.coordinator.open_alarms()[0]
        self.assertEqual(len(session.named("wait_for_digit")), 3, "another key is no cancel")
        self.assertEqual(session.named("exec_"), [
            ("exec_", "ConfBridge", alarm.room, "alarm_bridge", "alarm_caller",
             "alarm_caller_menu")])
        self.assertFalse(alarm.cancelled)

    def test_no_ami_link_calls_are_placed_through_the_callers_line(self):
        placed = []

        def in_room(app, args):
            if app == "Originate":
                placed.append(args)

        def waiting(n):
            if n == 1:
                # During the first wait: the AMI link drops, and the duty
                # stage's time comes.
                self.rig.ami.connected = False
                self.rig.ami.refuse_with = AMINotConnected
                self.rig.later(60)
            elif n == 3:
                session.caller_hangs_up()

        session = FakeSession({"callerid": "87650001"})
        session.on_exec = in_room
        session.on_wait = waiting
        self.successResultOf(self.caller(session))
        alarm = self.coordinator.alarm(session.variables["SWITCHBOARD_ALARM"])
        duty = [a for a in placed if a[0] == "PJSIP/87650190"]
        self.assertEqual(len(duty), 1)
        leg_id = [leg.id for leg in alarm.legs.values() if leg.target == DUTY][0]
        self.assertEqual(duty[0], (
            "PJSIP/87650190", "exten", "switchboard-alarm-responder", "s", "1", "30",
            f"av(SWITCHBOARD_ALARM={alarm.id}^SWITCHBOARD_LEG={leg_id}^SWITCHBOARD_ROOM="
            f"alarm-{alarm.id}^SWITCHBOARD_TARGET={DUTY}^SWITCHBOARD_STAGE=duty officer)"
            "n(ALARM)c(12345)"))
        self.assertIn(("ringing", DUTY, "duty officer: placed through the caller's line "
                       "(no AMI link)"), timeline(self.rig.db, alarm.id))
        # The duty officer answers that call: FastAGI needs no AMI.
        responder = FakeSession({"channel": "PJSIP/87650190-0000000c"}, keys=["1"], variables={
            "SWITCHBOARD_ALARM": str(alarm.id), "SWITCHBOARD_LEG": leg_id})
        self.successResultOf(self.responder(responder))
        self.assertEqual(alarm.legs[leg_id].state, "confirmed")
        self.assertIsNotNone(alarm.confirmed_at)

    def test_star_cancels(self):
        session, d = self.call(keys=["", "*"])
        self.successResultOf(d)
        alarm = self.coordinator.alarm(session.variables["SWITCHBOARD_ALARM"])
        self.assertTrue(alarm.cancelled)
        self.assertEqual(session.commands[-3:], [("stream_file", "cancelled", ""), ("stream_file", "goodbye", ""),
                                            ("set_variable", "SWITCHBOARD_RESULT", "OK")])
        self.assertEqual(alarm_row(self.rig.db, alarm.id).outcome, "cancelled by caller")
        self.rig.later(1000)
        self.assertEqual(len(self.rig.ami.calls), 10)

    def test_cancelled_by_the_other_caller(self):
        first = FakeSession({"callerid": "87650001"})
        second = FakeSession({"callerid": "87650001"}, keys=["*"])
        # The second presses * while the first waits: the first stops waiting.
        first.on_wait = lambda n: n == 2 and self.successResultOf(self.caller(second))
        self.successResultOf(self.caller(first))
        self.assertEqual(len(first.named("wait_for_digit")), 2)
        self.assertEqual(first.commands[-3:], [("stream_file", "cancelled", ""), ("stream_file", "goodbye", ""),
                                          ("set_variable", "SWITCHBOARD_RESULT", "OK")])

    def test_caller_hangup_does_not_cancel(self):
        # Hangs up in the room: every command after ConfBridge fails.
        session, d = self.call(hangup_after=5)
        self.successResultOf(d)
        alarm = self.coordinator.alarm(session.variables["SWITCHBOARD_ALARM"])
        self.assertEqual(alarm.status, "open")
        self.assertNotIn("SWITCHBOARD_RESULT", session.variables)
        self.assertIn("caller-left", [k for k, _, _ in timeline(self.rig.db, alarm.id)])
        self.rig.later(60)
        self.assertEqual(self.rig.ami.calls[-1].channel, "PJSIP/87650190")

    def test_hangup_before_answer_still_raises(self):
        session, d = self.call(hangup_after=0)
        self.successResultOf(d)
        self.assertEqual(len(self.rig.ami.calls), 10)
        self.assertEqual(len(self.coordinator.open_alarms()), 1)

    def test_unregistered_and_absent_caller_ids(self):
        for presented in ("87650150", "anonymous", "", "12 ab"):
            session, d = self.call(presented)
            self.successResultOf(d)
            self.assertEqual(session.named("wait_for_digit")[0], ("wait_for_digit",
                                                                  WAITING_SLICE_MS))
            self.assertEqual(session.variables["SWITCHBOARD_ROOM"], "alarm-1")
        # Every caller held in one room; the duty phone rung once for them all.
        self.assertEqual([c.channel for c in self.rig.ami.calls], ["PJSIP/87650190"])
        self.assertEqual(self.index.lookups, ["87650150", "12 ab"])
        rows = [alarm_row(self.rig.db, a.id) for a in self.coordinator.open_alarms()]
        self.assertEqual([r.caller_raw for r in rows], ["87650150"])
        self.assertEqual(rows[0].caller_number, "+8659187650150")
        joined = [(number, kind) for kind, number, _ in timeline(self.rig.db, 1)
                  if kind == "joined"]
        self.assertEqual(joined, [("anonymous", "joined"), (None, "joined"),
                                  ("12 ab", "joined")])

    def test_second_call_joins_same_room(self):
        first, d1 = self.call("87650001")
        second, d2 = self.call("+86 591 8765 0001")
        self.successResultOf(d1)
        self.successResultOf(d2)
        self.assertEqual(first.variables["SWITCHBOARD_ROOM"], second.variables["SWITCHBOARD_ROOM"])
        self.assertEqual(len(self.rig.ami.calls), 10)

    def test_not_recorded_fails_without_room(self):
        def full(record, durable=False):
            raise OSError(28, "No space left on device")

        self.rig.recorder.journal.append = full
        session, d = self.call()
        self.failureResultOf(d, OSError)
        self.flushLoggedErrors(OSError)
        self.assertNotIn("SWITCHBOARD_ROOM", session.variables)
        self.assertEqual(self.rig.ami.calls, [])

    def test_database_refusing_changes_nothing_for_the_caller(self):
        self.rig.sync.fail_next = 10
        session, d = self.call()
        self.assertEqual(session.variables["SWITCHBOARD_ROOM"], "alarm-1")
        self.assertEqual(len(self.rig.ami.calls), 10)

    def test_caller_hanging_up_at_once_still_rings_everyone(self):
        self.rig.sync.hold = True        # and the database is locked
        session, d = self.call(hangup_after=0)
        self.successResultOf(d)
        self.assertEqual(len(self.rig.ami.calls), 10)
        alarm = self.coordinator.open_alarms()[0]
        self.assertTrue(alarm.active, "hanging up does not cancel")

    def test_no_ami_link_hands_the_alarm_to_the_dialplan(self):
        self.rig.ami.connected = False
        session, d = self.call()
        self.assertIsNone(self.successResultOf(d), "no error: the dialplan takes over")
        # Nothing sent, not even ANSWER (it would hold the native ring back up to 500 ms).
        self.assertEqual(session.commands, [])
        self.assertEqual(self.rig.ami.calls, [])
        self.assertEqual(self.flushLoggedErrors(), [])  # the dialplan takes over: no traceback


class ResponderTests(Case):
    def raise_(self):
        # The caller stays on the line (in the room) throughout.
        return self.successResultOf(self.coordinator.raise_alarm("87650001", self.home))

    def test_press_1_confirms_and_joins(self):
        alarm = self.raise_()
        call = self.rig.ami.calls[2]
        session = self.leg_session(call, keys=["1"])
        self.successResultOf(self.responder(session))
        leg = alarm.legs[call.channel_id]
        self.assertEqual(leg.state, "confirmed")
        self.assertEqual(leg.channel, call.channel + "-0000000a")
        self.assertEqual(alarm.status, "confirmed")
        self.assertIn(("exec_", "ConfBridge", alarm.room, "alarm_bridge", "alarm_responder"),
                      session.commands)
        self.assertEqual(session.variables["SWITCHBOARD_RESULT"], "OK")
        # Announced where: building 3, unit 2, room 501.
        self.assertEqual(session.named("say_digits"), [("say_digits", "3", "12"),
                                                          ("say_digits", "2", "12"),
                                                          ("say_digits", "501", "12")])
        self.rig.later(1000)
        self.assertEqual(len(self.rig.ami.calls), 10, "no escalation after a confirmation")
        kinds = [(k, n) for k, n, _ in timeline(self.rig.db, alarm.id)]
        self.assertIn(("answered", number(4)), kinds)
        self.assertIn(("confirmed", number(4)), kinds)
        self.assertIn(("left", number(4)), kinds)

    def test_key_pressed_during_announcement(self):
        alarm = self.raise_()
        call = self.rig.ami.calls[0]
        session = self.leg_session(call, keys=["1"])
        session.pressed_early = True
        self.successResultOf(self.responder(session))
        self.assertEqual(alarm.legs[call.channel_id].state, "confirmed")
        self.assertEqual(session.named("say_digits"), [])

    def test_press_2_declines(self):
        alarm = self.raise_()
        call = self.rig.ami.calls[0]
        session = self.leg_session(call, keys=["2"])
        self.successResultOf(self.responder(session))
        self.assertEqual(alarm.legs[call.channel_id].state, "declined")
        self.assertEqual(session.named("exec_"), [])
        self.assertEqual(session.commands[-2:], [("stream_file", "goodbye", ""),
                                            ("set_variable", "SWITCHBOARD_RESULT", "OK")])
        self.assertEqual(alarm.status, "open")

    def test_silence_is_not_a_confirmation(self):
        alarm = self.raise_()
        call = self.rig.ami.calls[0]
        session = self.leg_session(call, keys=["", "", "", ""])
        self.successResultOf(self.responder(session))
        self.assertEqual(alarm.legs[call.channel_id].state, "unconfirmed")
        self.assertEqual(len(session.named("wait_for_digit")), 3, "asked three times")
        self.assertEqual(session.named("exec_"), [])
        self.assertEqual(alarm.status, "open")
        self.rig.later(10)
        self.assertEqual(self.rig.ami.calls[-1].channel, call.channel, "rung again")

    def test_other_keys_ignored(self):
        alarm = self.raise_()
        call = self.rig.ami.calls[0]
        session = self.leg_session(call, keys=["5", "#", "1"])
        self.successResultOf(self.responder(session))
        self.assertEqual(alarm.legs[call.channel_id].state, "confirmed")

    def test_cancelled_before_answer(self):
        alarm = self.raise_()
        call = self.rig.ami.calls[0]
        self.successResultOf(self.coordinator.cancel(alarm.id))
        session = self.leg_session(call, keys=["1"])
        self.successResultOf(self.responder(session))
        self.assertEqual(session.named("exec_"), [])
        self.assertEqual(session.commands[-3:], [("stream_file", "cancelled", ""), ("stream_file", "goodbye", ""),
                                            ("set_variable", "SWITCHBOARD_RESULT", "OK")])

    def test_cancelled_while_in_room(self):
        alarm = self.raise_()
        call = self.rig.ami.calls[0]
        session = self.leg_session(call, keys=["1"])
        # The caller presses * while this neighbour is in the room.
        session.on_exec = lambda app, args: self.coordinator.cancel(alarm.id)
        self.successResultOf(self.responder(session))
        self.assertEqual(self.rig.ami.kicks, [alarm.room])
        self.assertEqual(session.commands[-3:], [("stream_file", "cancelled", ""), ("stream_file", "goodbye", ""),
                                            ("set_variable", "SWITCHBOARD_RESULT", "OK")])

    def test_hangup_during_announcement(self):
        alarm = self.raise_()
        call = self.rig.ami.calls[0]
        session = self.leg_session(call, hangup_after=3)
        self.successResultOf(self.responder(session))
        self.assertEqual(alarm.legs[call.channel_id].state, "unconfirmed")
        self.assertIn(("unconfirmed", number(2), "hung up before pressing 1"),
                      timeline(self.rig.db, alarm.id))

    def test_leg_placed_before_a_restart_is_taken_up_under_its_number(self):
        alarm = self.raise_()
        session = FakeSession({"channel": "PJSIP/87650005-0000000b"}, keys=["1"], variables={
            "SWITCHBOARD_ALARM": str(alarm.id), "SWITCHBOARD_LEG": "swb-before-restart",
            "SWITCHBOARD_TARGET": number(5), "SWITCHBOARD_STAGE": "neighbours"})
        self.successResultOf(self.responder(session))
        leg = alarm.legs["swb-before-restart"]
        self.assertEqual((leg.target, leg.stage, leg.state), (number(5), "neighbours",
                                                              "confirmed"))
        self.assertIn(("confirmed", number(5), ""), timeline(self.rig.db, alarm.id))

    def test_known_leg_reads_no_more_variables(self):
        alarm = self.raise_()
        session = self.leg_session(self.rig.ami.calls[0], keys=["1"])
        self.successResultOf(self.responder(session))
        self.assertEqual([c[1] for c in session.named("get_variable")][:2],
                         ["SWITCHBOARD_ALARM", "SWITCHBOARD_LEG"])
        self.assertNotIn(("get_variable", "SWITCHBOARD_TARGET"), session.commands)
        self.assertTrue(alarm.confirmed)

    def test_unknown_alarm_left_to_dialplan(self):
        session = FakeSession({}, variables={"SWITCHBOARD_ALARM": "999", "SWITCHBOARD_LEG": "x"})
        self.successResultOf(self.responder(session))
        self.assertNotIn("SWITCHBOARD_RESULT", session.variables)

    def test_unregistered_caller_number_announced(self):
        self.successResultOf(self.coordinator.raise_alarm("0591-87650150", None))
        duty = self.rig.ami.calls[0]
        responder = self.leg_session(duty, keys=["1"])
        self.successResultOf(self.responder(responder))
        self.assertIn(("stream_file", "vm-from-phonenumber", "12"), responder.commands)
        self.assertEqual(responder.named("say_digits"), [("say_digits", "059187650150", "12")])
