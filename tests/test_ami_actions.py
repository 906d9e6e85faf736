"""
AMIClient's actions: Command output in both forms, AstDB helpers, Hangup,
and asynchronous Originate with its outcome.
"""

import pytest
from twisted.internet.error import ConnectionLost
from twisted.trial.unittest import SynchronousTestCase

from switchboard.ami import (
    AMIActionError,
    AMIArgumentError,
    AMIConnectionLost,
    AMINotConnected,
    AMITimeout,
    OriginateResult,
    outcome_for_reason,
)
from tests.test_ami_support import block, make_client, started


class ActionTests(SynchronousTestCase):
    def setUp(self):
        self.client, self.reactor, self.ast = started()

    def test_send_action_exact_bytes(self):
        d = self.client.send_action("Getvar", {"Channel": "PJSIP/1-01", "Variable": "X"})
        self.assertEqual(self.ast.written(), b"Action: Getvar\r\nActionID: t-2\r\n"
                                             b"Channel: PJSIP/1-01\r\nVariable: X\r\n\r\n")
        self.ast.respond("t-2", "Variable: X", "Value: 1")
        self.assertEqual(self.successResultOf(d)["Value"], "1")

    def test_injection_refused_before_anything_is_written(self):
        for d in [
            self.client.send_action("DBPut", [("Family", "f"), ("Key", "k"),
                                              ("Val", "v\r\n\r\nAction: Hangup")]),
            self.client.send_action("Ping\r\nAction: Hangup"),
            self.client.db_put("f", "k\nx", "v"),
            self.client.command("core show channels\r\nAction: Logoff"),
            self.client.hangup("PJSIP/1\r\n"),
            self.client.originate("PJSIP/1", application="Wait",
                                  variables={"A": "1\r\nChannel: x"}),
            self.client.originate("PJSIP/1\n", application="Wait"),
        ]:
            self.failureResultOf(d, AMIArgumentError)
        self.assertEqual(self.ast.written(), b"")

    def test_argument_errors_come_before_not_connected(self):
        client, reactor = make_client()
        self.failureResultOf(client.send_action("Ping", [("A", "\n")]), ValueError)
        self.failureResultOf(client.originate("X/1"), AMIArgumentError)

    # Command

    def test_command_output_headers(self):
        # Asterisk 14 and later (22 included): Response: Success + Output headers.
        d = self.client.command("dialplan show wait@lab")
        self.assertEqual(self.ast.written(), b"Action: Command\r\nActionID: t-2\r\n"
                                             b"Command: dialplan show wait@lab\r\n\r\n")
        self.ast.respond("t-2", "Message: Command output follows",
                         "Output: [ Context 'lab' created by 'pbx_config' ]",
                         "Output:   'wait' =>         1. Answer()",
                         "Output: ",
                         "Output: -= 1 extension (1 priorities) in 1 context. =-")
        self.assertEqual(self.successResultOf(d), [
            "[ Context 'lab' created by 'pbx_config' ]",
            "  'wait' =>         1. Answer()",
            "",
            "-= 1 extension (1 priorities) in 1 context. =-",
        ])

    def test_command_follows_form(self):
        # Asterisk before 14.
        d = self.client.command("core show version")
        self.ast.written()
        self.ast.says(b"Response: Follows\r\nPrivilege: Command\r\nActionID: t-2\r\n"
                      b"Asterisk 13.38.0 built by x\n--END COMMAND--\r\n\r\n")
        self.assertEqual(self.successResultOf(d), ["Asterisk 13.38.0 built by x"])

    def test_command_without_output(self):
        d = self.client.command("core reload")
        self.ast.respond("t-2", "Message: Command output follows")
        self.assertEqual(self.successResultOf(d), [])

    def test_rejected_command_carries_its_output(self):
        d = self.client.command("nosuch")
        self.ast.respond("t-2", "Message: Command output follows",
                         "Output: No such command 'nosuch' (type 'core show help nosuch' "
                         "for other possible commands)", status="Error")
        error = self.failureResultOf(d, AMIActionError).value
        self.assertTrue(error.message.startswith("No such command 'nosuch'"))

    def test_command_permission_denied(self):
        d = self.client.command("core show version")
        self.ast.respond("t-2", "Message: Permission denied", status="Error")
        self.assertEqual(self.failureResultOf(d, AMIActionError).value.message,
                         "Permission denied")

    # AstDB

    def test_db_put(self):
        d = self.client.db_put("alarm", "active", "1, 2")
        self.assertEqual(self.ast.written(), b"Action: DBPut\r\nActionID: t-2\r\n"
                                             b"Family: alarm\r\nKey: active\r\nVal: 1, 2\r\n\r\n")
        self.ast.respond("t-2", "Message: Updated database successfully")
        self.assertIsNone(self.successResultOf(d))

    def test_db_get_event_list(self):
        # What Asterisk 22 sends.
        d = self.client.db_get("alarm", "active")
        self.assertEqual(self.ast.written(), b"Action: DBGet\r\nActionID: t-2\r\n"
                                             b"Family: alarm\r\nKey: active\r\n\r\n")
        self.ast.respond("t-2", "EventList: start", "Message: Result will follow")
        self.ast.event("DBGetResponse", "Family: alarm", "Key: active", "Val: a b, c",
                       "ActionID: t-2")
        self.assertNoResult(d)
        self.ast.event("DBGetComplete", "ActionID: t-2", "EventList: Complete", "ListItems: 1")
        self.assertEqual(self.successResultOf(d), "a b, c")

    def test_db_tree(self):
        entries = []
        d = self.client.db_tree("swb_alarm", lambda key, value: entries.append((key, value)))
        self.assertEqual(self.ast.written(), b"Action: DBGetTree\r\nActionID: t-2\r\n"
                                             b"Family: swb_alarm\r\n\r\n")
        self.ast.respond("t-2", "EventList: start", "Message: Result will follow")
        self.ast.event("DBGetTreeResponse", "Key: /swb_alarm/+8659187650001",
                       "Val: PJSIP/a&PJSIP/b", "ActionID: t-2")
        self.ast.event("DBGetTreeResponse", "Key: /swb_alarm/duty", "Val: PJSIP/d",
                       "ActionID: t-2")
        self.ast.event("DBGetTreeComplete", "ActionID: t-2", "EventList: Complete",
                       "ListItems: 2")
        self.assertEqual(self.successResultOf(d), 2)
        self.assertEqual(entries, [("+8659187650001", "PJSIP/a&PJSIP/b"), ("duty", "PJSIP/d")])

    def test_db_get_empty_value(self):
        d = self.client.db_get("f", "k")
        self.ast.says(block("Response: Success", "ActionID: t-2", "EventList: start")
                      + block("Event: DBGetResponse", "Family: f", "Key: k", "Val: ",
                              "ActionID: t-2")
                      + block("Event: DBGetComplete", "ActionID: t-2",
                              "EventList: Complete"))
        self.assertEqual(self.successResultOf(d), "")

    def test_db_get_missing_key(self):
        d = self.client.db_get("alarm", "nokey")
        self.ast.respond("t-2", "Message: Database entry not found", status="Error")
        self.assertIsNone(self.successResultOf(d))

    def test_db_get_other_errors_are_errors(self):
        d = self.client.db_get("alarm", "k")
        self.ast.respond("t-2", "Message: Permission denied", status="Error")
        self.failureResultOf(d, AMIActionError)

    def test_db_del(self):
        d = self.client.db_del("alarm", "k")
        self.assertEqual(self.ast.written(), b"Action: DBDel\r\nActionID: t-2\r\n"
                                             b"Family: alarm\r\nKey: k\r\n\r\n")
        self.ast.respond("t-2", "Message: Key deleted successfully")
        self.assertIs(self.successResultOf(d), True)
        d = self.client.db_del("alarm", "k")
        self.ast.respond("t-3", "Message: Database entry could not be deleted", status="Error")
        self.assertIs(self.successResultOf(d), False)

    def test_db_deltree(self):
        d = self.client.db_deltree("alarm")
        self.assertEqual(self.ast.written(), b"Action: DBDelTree\r\nActionID: t-2\r\n"
                                             b"Family: alarm\r\n\r\n")
        self.ast.respond("t-2", "Message: Key tree deleted successfully")
        self.assertIs(self.successResultOf(d), True)
        d = self.client.db_deltree("alarm", "sub")
        self.assertEqual(self.ast.written(), b"Action: DBDelTree\r\nActionID: t-3\r\n"
                                             b"Family: alarm\r\nKey: sub\r\n\r\n")
        self.ast.respond("t-3", "Message: Database entry not found", status="Error")
        self.assertIs(self.successResultOf(d), False)

    # Hangup

    def test_hangup(self):
        d = self.client.hangup("PJSIP/87650001-00000001")
        self.assertEqual(self.ast.written(), b"Action: Hangup\r\nActionID: t-2\r\n"
                                             b"Channel: PJSIP/87650001-00000001\r\n"
                                             b"Cause: 16\r\n\r\n")
        self.ast.respond("t-2", "Message: Channel Hungup")
        self.assertIs(self.successResultOf(d), True)
        d = self.client.hangup("PJSIP/gone-1", cause=17)
        self.assertIn(b"Cause: 17\r\n", self.ast.written())
        self.ast.respond("t-3", "Message: No such channel", status="Error")
        self.assertIs(self.successResultOf(d), False)

    def test_channel_state(self):
        d = self.client.channel_state("swb-7-1-abc")
        self.assertEqual(self.ast.written(), b"Action: Getvar\r\nActionID: t-2\r\n"
                                             b"Channel: swb-7-1-abc\r\n"
                                             b"Variable: CHANNEL(state)\r\n\r\n")
        self.ast.respond("t-2", "Variable: CHANNEL(state)", "Value: Ringing")
        self.assertEqual(self.successResultOf(d), "Ringing")
        d = self.client.channel_state("swb-7-2-def")
        self.ast.respond("t-3", "Message: No such channel", status="Error")
        self.assertIsNone(self.successResultOf(d))
        d = self.client.channel_state("swb-7-3-ghi")
        self.ast.respond("t-4", "Message: Permission denied", status="Error")
        self.failureResultOf(d, AMIActionError)


    # ConfBridge rooms (the answers of the lab's Asterisk 22)

    def test_room_size(self):
        d = self.client.room_size("alarm-7")
        self.assertEqual(self.ast.written(), b"Action: ConfbridgeList\r\nActionID: t-2\r\n"
                                             b"Conference: alarm-7\r\n\r\n")
        self.ast.respond("t-2", "EventList: start", "Message: Confbridge user list will follow")
        for channel in ("PJSIP/87650001-00000001", "Local/wait@lab-00000003;1"):
            self.ast.event("ConfbridgeList", "ActionID: t-2", "Conference: alarm-7",
                           "Admin: No", "MarkedUser: No", f"Channel: {channel}",
                           "ChannelState: 6", "ChannelStateDesc: Up", "CallerIDNum: <unknown>")
        self.ast.event("ConfbridgeListComplete", "ActionID: t-2", "EventList: Complete",
                       "ListItems: 2")
        self.assertEqual(self.successResultOf(d), 2)

    def test_room_size_of_a_room_gone(self):
        d = self.client.room_size("alarm-8")
        self.ast.respond("t-2", "Message: No active conferences.", status="Error")
        self.assertEqual(self.successResultOf(d), 0)
        d = self.client.room_size("alarm-9")
        self.ast.respond("t-3", "Message: No Conference by that name found.", status="Error")
        self.assertEqual(self.successResultOf(d), 0)
        d = self.client.room_size("alarm-10")
        self.ast.respond("t-4", "Message: Permission denied", status="Error")
        self.failureResultOf(d, AMIActionError)


ORIGINATE_BYTES = (
    b"Action: Originate\r\nActionID: t-2\r\nChannel: PJSIP/87650001\r\n"
    b"Context: alarm-join\r\nExten: s\r\nPriority: 1\r\nTimeout: 25000\r\n"
    b"CallerID: \"Alarm\" <110>\r\nChannelId: alarm-7-1\r\nOtherChannelId: alarm-7-1b\r\n"
    b"Variable: ALARM_ID=7\r\nVariable: CALLER=Wang\\, Li\r\nAsync: true\r\n\r\n"
)


def response_event(action_id, status, reason, uniqueid="<unknown>",
                   channel="PJSIP/87650001"):
    return block("Event: OriginateResponse", "Privilege: call,all", f"ActionID: {action_id}",
                 f"Response: {status}", f"Channel: {channel}", "Context: alarm-join",
                 "Exten: s", "Application: ", "Data: ", f"Reason: {reason}",
                 f"Uniqueid: {uniqueid}", "CallerIDNum: <unknown>", "CallerIDName: <unknown>")


class OriginateTests(SynchronousTestCase):
    def setUp(self):
        self.client, self.reactor, self.ast = started()

    def originate(self, **kwargs):
        kwargs.setdefault("context", "alarm-join")
        kwargs.setdefault("exten", "s")
        kwargs.setdefault("timeout", 25)
        return self.client.originate("PJSIP/87650001", **kwargs)

    def queued(self, action_id="t-2"):
        self.ast.respond(action_id, "Message: Originate successfully queued")

    def test_exact_bytes(self):
        self.originate(variables={"ALARM_ID": 7, "CALLER": "Wang, Li"},
                       caller_id='"Alarm" <110>', channel_id="alarm-7-1",
                       other_channel_id="alarm-7-1b")
        self.assertEqual(self.ast.written(), ORIGINATE_BYTES)

    def test_queued_is_not_the_outcome(self):
        d = self.originate(channel_id="alarm-7-1")
        self.queued()
        self.assertNoResult(d)
        self.ast.says(response_event("t-2", "Success", 4, uniqueid="alarm-7-1",
                                     channel="PJSIP/87650001-00000007"))
        result = self.successResultOf(d)
        self.assertEqual(result, OriginateResult(
            "alarm-7-1", "answered", 4, "Success (reason 4: answered)",
            channel="PJSIP/87650001-00000007", uniqueid="alarm-7-1"))
        self.assertTrue(result.answered)
        self.assertEqual(self.reactor.getDelayedCalls()[0].func.__name__, "_ping")

    def test_each_reason(self):
        expected = {"4": "answered", "5": "busy", "3": "no-answer", "8": "congestion",
                    "1": "no-answer", "0": "failed", "2": "failed", "7": "failed",
                    "": "failed", "x": "failed"}
        for n, (reason, outcome) in enumerate(expected.items(), start=2):
            d = self.originate()
            self.ast.written()
            self.queued(f"t-{n}")
            status = "Success" if reason == "4" else "Failure"
            self.ast.says(response_event(f"t-{n}", status, reason))
            result = self.successResultOf(d)
            self.assertEqual(result.outcome, outcome, reason)
            self.assertIsNone(result.channel_id)  # none chosen, none created
            self.assertIsNone(result.uniqueid)

    def test_uniqueid_is_the_channel_id_when_none_was_chosen(self):
        d = self.originate()
        self.queued()
        self.ast.says(response_event("t-2", "Success", 4, uniqueid="1795421304.48"))
        self.assertEqual(self.successResultOf(d).channel_id, "1795421304.48")

    def test_outcome_before_the_queued_response(self):
        # Asterisk runs the async originate in its own thread: a quick
        # failure may be reported before "successfully queued".
        d = self.originate(channel_id="c1")
        self.ast.says(response_event("t-2", "Failure", 0))
        self.queued()
        self.reactor.advance(self.client.cause_wait)   # no Hangup came: not placed
        self.assertEqual(self.successResultOf(d).outcome, "failed")
        self.assertEqual([c.func.__name__ for c in self.reactor.getDelayedCalls()], ["_ping"])

    def test_other_originates_outcomes_are_not_ours(self):
        d = self.originate()
        self.queued()
        self.ast.says(response_event("someone-else-9", "Success", 4))
        self.assertNoResult(d)
        seen = []
        self.client.subscribe("OriginateResponse", seen.append)
        self.ast.says(response_event("t-2", "Failure", 5))
        self.assertEqual(self.successResultOf(d).outcome, "busy")
        self.assertEqual([e.action_id for e in seen], ["t-2"])  # subscribers see it too

    # A phone that is busy, declines or is not there: reason 0 and the cause

    def channel_event(self, name, uniqueid, *extra):
        self.ast.says(block(f"Event: {name}", "Privilege: call,all",
                            "Channel: PJSIP/87650001-00000001", f"Uniqueid: {uniqueid}",
                            *extra))

    def failed_with_cause(self, cause, *, hangup_first=False):
        d = self.originate(channel_id="c1")
        self.queued()
        self.channel_event("Newchannel", "c1")
        if hangup_first:
            self.channel_event("Hangup", "c1", f"Cause: {cause}")
        self.ast.says(response_event("t-2", "Failure", 0, uniqueid="c1"))
        if not hangup_first:
            self.assertNoResult(d)  # the Hangup just behind says why
            self.channel_event("Hangup", "c1", f"Cause: {cause}")
        return self.successResultOf(d)

    def test_a_busy_phone_is_told_by_its_hangup_cause(self):
        # What Asterisk 22 sends for a PJSIP phone answering 486 (see the
        # originate transcript): reason 0, then the Hangup with cause 17.
        result = self.failed_with_cause(17)
        self.assertEqual((result.outcome, result.reason, result.cause), ("busy", 0, 17))
        self.assertFalse(result.not_placed)
        self.assertIn("hangup cause 17: user busy", result.message)
        self.assertEqual([c.func.__name__ for c in self.reactor.getDelayedCalls()], ["_ping"])

    def test_the_hangup_may_come_first(self):
        result = self.failed_with_cause(17, hangup_first=True)
        self.assertEqual(result.outcome, "busy")

    def test_causes_of_the_phone_and_of_the_network(self):
        for cause, outcome, not_placed in ((21, "busy", False), (19, "no-answer", False),
                                           (20, "failed", False), (34, "failed", True),
                                           (16, "failed", True)):
            self.setUp()
            result = self.failed_with_cause(cause)
            self.assertEqual((result.outcome, result.not_placed), (outcome, not_placed), cause)

    def test_no_hangup_in_time_leaves_a_call_not_placed(self):
        d = self.originate(channel_id="c1")
        self.queued()
        self.channel_event("Newchannel", "c1")
        self.ast.says(response_event("t-2", "Failure", 0, uniqueid="c1"))
        self.reactor.advance(self.client.cause_wait - 0.01)
        self.assertNoResult(d)
        self.reactor.advance(0.01)
        result = self.successResultOf(d)
        self.assertTrue(result.not_placed)
        self.channel_event("Hangup", "c1", "Cause: 17")  # too late: nothing happens
        self.assertFalse(self.client._calls)

    def test_no_channel_made_is_a_call_not_placed_once_no_hangup_came(self):
        # An unknown endpoint: Asterisk makes no channel, sends no Hangup.
        d = self.originate(channel_id="c1")
        self.queued()
        self.ast.says(response_event("t-2", "Failure", 0, uniqueid="c1"))
        self.assertNoResult(d)
        self.reactor.advance(self.client.cause_wait)
        self.assertTrue(self.successResultOf(d).not_placed)
        self.assertFalse(self.client._calls)

    def test_the_channels_events_may_come_after_the_outcome(self):
        # Under load: the OriginateResponse (the manager's own event) is
        # ahead of the channel's Newchannel and Hangup (through Stasis).
        d = self.originate(channel_id="c1")
        self.queued()
        self.ast.says(response_event("t-2", "Failure", 0, uniqueid="c1"))
        self.assertNoResult(d)
        self.channel_event("Newchannel", "c1")
        self.channel_event("Hangup", "c1", "Cause: 17")
        self.assertEqual(self.successResultOf(d).outcome, "busy")

    def test_link_lost_while_waiting_for_the_cause_keeps_the_outcome(self):
        d = self.originate(channel_id="c1")
        self.queued()
        self.channel_event("Newchannel", "c1")
        self.ast.says(response_event("t-2", "Failure", 0, uniqueid="c1"))
        self.ast.close(ConnectionLost())
        self.assertTrue(self.successResultOf(d).not_placed)

    def test_hangups_are_built_only_while_a_call_may_end(self):
        client, _, _ = started()
        self.assertFalse(client.wants_event("Hangup"))
        client.originate("PJSIP/1", application="Wait", channel_id="c9")
        self.assertTrue(client.wants_event("Hangup"))

    def test_refused_at_once_is_a_failed_outcome(self):
        d = self.originate(channel_id="c1")
        self.ast.respond("t-2", "Message: Permission denied", status="Error")
        result = self.successResultOf(d)
        self.assertEqual((result.channel_id, result.outcome, result.reason),
                         ("c1", "failed", None))
        self.assertIn("Permission denied", result.message)
        self.assertEqual([c.func.__name__ for c in self.reactor.getDelayedCalls()], ["_ping"])

    def test_no_outcome_in_time(self):
        d = self.originate(timeout=20)
        self.queued()
        for action_id in ("t-3", "t-4"):  # keepalives answered meanwhile
            self.reactor.advance(10)
            self.ast.respond(action_id, "Ping: Pong")
        self.reactor.advance(9.9)
        self.assertNoResult(d)
        self.reactor.advance(0.1)  # ring timeout + the 10 s margin
        self.failureResultOf(d, AMITimeout)
        self.assertFalse(self.ast.transport.disconnecting)
        self.ast.says(response_event("t-2", "Success", 4))  # late: ignored

    def test_no_queued_response_in_time(self):
        client, reactor, ast = started(late_answer=None)
        d = client.originate("PJSIP/87650001", context="alarm-join", exten="s", timeout=25)
        reactor.advance(9.9)
        self.assertNoResult(d)
        reactor.advance(0.1)
        self.failureResultOf(d, AMITimeout)

    def test_an_unacknowledged_originate_probes_a_frozen_link_and_drops_it(self):
        # Asterisk acknowledges an async Originate in milliseconds. A link
        # that says nothing for 0.5 s, and nothing to a Ping for 1.5 s more,
        # is dropped, so the alarm turns to its other paths within 2 s
        # instead of at the next keepalive (up to 15 s).
        d = self.originate()
        self.ast.written()
        self.reactor.advance(0.49)
        self.assertEqual(self.ast.written(), b"")
        self.reactor.advance(0.01)
        self.assertEqual(self.ast.written(), b"Action: Ping\r\nActionID: t-3\r\n\r\n")
        self.reactor.advance(1.49)
        self.assertFalse(self.ast.transport.disconnected)
        self.reactor.advance(0.01)
        self.assertTrue(self.ast.transport.disconnected)  # aborted
        self.ast.close(ConnectionLost())
        self.failureResultOf(d, AMIConnectionLost)
        self.assertFalse(self.client.connected)

    def test_a_busy_link_is_probed_but_kept(self):
        d = self.originate()
        self.reactor.advance(0.5)
        self.assertIn(b"Action: Ping\r\nActionID: t-3", self.ast.written())
        self.reactor.advance(1)
        # Asterisk is busy, but alive: events stream in ahead of the answers.
        self.ast.event("Newchannel", "Channel: PJSIP/87650002-00000001", "Uniqueid: 1.1")
        self.reactor.advance(1)
        self.assertFalse(self.ast.transport.disconnecting)
        self.queued()
        self.ast.says(response_event("t-2", "Failure", 5))
        self.assertEqual(self.successResultOf(d).outcome, "busy")

    def test_a_prompt_acknowledgement_sends_no_probe(self):
        self.originate()
        self.ast.written()
        self.reactor.advance(0.4)
        self.queued()
        self.reactor.advance(9.5)
        self.assertEqual(self.ast.written(), b"")  # only the keepalive, at 10 s
        self.assertFalse(self.ast.transport.disconnecting)

    def test_connection_lost_before_the_outcome(self):
        d = self.originate()
        self.queued()
        self.ast.close(ConnectionLost())
        self.failureResultOf(d, AMIConnectionLost)
        # What is left scheduled is the reconnection (ClientService's).
        attempts = len(self.reactor.tcpClients)
        reconnect = self.reactor.getDelayedCalls()[0]
        self.reactor.advance(reconnect.getTime() - self.reactor.seconds())
        self.assertEqual(len(self.reactor.tcpClients), attempts + 1)

    def test_connection_lost_before_queued(self):
        d = self.originate()
        self.ast.close(ConnectionLost())
        self.failureResultOf(d, AMIConnectionLost)

    def test_never_sent_again_after_reconnecting(self):
        from tests.test_ami_support import connect
        d = self.originate()
        self.ast.written()
        self.ast.close(ConnectionLost())
        self.failureResultOf(d, AMIConnectionLost)
        self.reactor.advance(1)
        ast = connect(self.client, self.reactor)
        self.reactor.advance(5)
        self.assertEqual(ast.written(), b"")

    def test_not_connected(self):
        client, reactor = make_client()
        self.failureResultOf(client.originate("PJSIP/1", application="Wait", data="1"),
                             AMINotConnected)


@pytest.mark.parametrize("reason, outcome", [
    (4, "answered"), (5, "busy"), (3, "no-answer"), (8, "congestion"), (1, "no-answer"),
    (0, "failed"), (2, "failed"), (None, "failed"),
])
def test_outcome_for_reason(reason, outcome):
    assert outcome_for_reason(reason) == outcome
