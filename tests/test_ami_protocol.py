"""
AMIProtocol on one connection: ActionID correlation, event lists,
timeouts, malformed input, limits, and the end of the connection.
"""

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from switchboard.ami import (
    AMIActionError,
    AMIArgumentError,
    AMIConnectionLost,
    AMILoginError,
    AMINotConnected,
    AMIProtocol,
    AMITimeout,
)
from switchboard.ami.protocol import action_id_source
from tests.test_ami_support import BANNER, block


class RecordingFactory:
    def __init__(self):
        self.banners, self.events, self.lost = [], [], []

    def bannerReceived(self, protocol, version):
        self.banners.append(version)

    def eventReceived(self, protocol, event):
        self.events.append(event)

    def protocolLost(self, protocol, reason):
        self.lost.append(reason)


class ProtocolTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.factory = RecordingFactory()
        self.protocol = AMIProtocol(self.clock, action_ids=action_id_source("t"),
                                    action_timeout=10.0, max_line=1000, max_block=10000)
        self.protocol.factory = self.factory
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5038))
        self.protocol.makeConnection(self.transport)

    def says(self, data):
        self.protocol.dataReceived(data)

    def written(self):
        data = self.transport.value()
        self.transport.clear()
        return data

    def ready(self):
        self.says(BANNER)
        self.assertEqual(self.factory.banners, ["11.0.0"])

    # Banner

    def test_banner_is_reported(self):
        self.ready()
        self.assertEqual(self.protocol.banner, "11.0.0")
        self.assertFalse(self.transport.disconnecting)

    def test_a_wrong_banner_closes_the_connection(self):
        self.says(b"220 smtp.example ESMTP\r\n")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.factory.banners, [])

    def test_no_banner_closes_the_connection(self):
        self.clock.advance(9.9)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(self.transport.disconnected)  # aborted, not waiting

    # Correlation

    def test_action_bytes_and_response(self):
        self.ready()
        d = self.protocol.sendAction("DBPut", [("Family", "f"), ("Key", "k"), ("Val", "v")])
        self.assertEqual(self.written(), b"Action: DBPut\r\nActionID: t-1\r\nFamily: f\r\n"
                                         b"Key: k\r\nVal: v\r\n\r\n")
        self.assertNoResult(d)
        self.says(block("Response: Success", "ActionID: t-1",
                        "Message: Updated database successfully"))
        self.assertEqual(self.successResultOf(d)["Message"], "Updated database successfully")

    def test_responses_out_of_order(self):
        self.ready()
        first = self.protocol.sendAction("Ping")
        second = self.protocol.sendAction("Ping")
        third = self.protocol.sendAction("Ping")
        self.says(block("Response: Success", "ActionID: t-3", "Ping: Pong")
                  + block("Response: Success", "ActionID: t-1", "Ping: Pong"))
        self.assertEqual(self.successResultOf(third).action_id, "t-3")
        self.assertEqual(self.successResultOf(first).action_id, "t-1")
        self.assertNoResult(second)
        self.says(block("Response: Success", "ActionID: t-2"))
        self.assertEqual(self.successResultOf(second).action_id, "t-2")

    def test_given_action_id(self):
        self.ready()
        d = self.protocol.sendAction("Ping", action_id="mine-1")
        self.assertEqual(self.written(), b"Action: Ping\r\nActionID: mine-1\r\n\r\n")
        self.says(block("Response: Success", "ActionID: mine-1"))
        self.successResultOf(d)

    def test_unknown_and_id_less_responses_are_ignored(self):
        self.ready()
        d = self.protocol.sendAction("Ping")
        self.says(block("Response: Success", "ActionID: other-7")
                  + block("Response: Success", "Message: no id"))
        self.assertNoResult(d)
        self.assertEqual(self.factory.events, [])
        self.assertFalse(self.transport.disconnecting)

    def test_error_response(self):
        self.ready()
        d = self.protocol.sendAction("Hangup", [("Channel", "PJSIP/x")])
        self.says(block("Response: Error", "ActionID: t-1", "Message: No such channel"))
        error = self.failureResultOf(d, AMIActionError).value
        self.assertEqual(error.message, "No such channel")
        self.assertEqual(error.response["Response"], "Error")

    def test_goodbye_and_follows_are_not_errors(self):
        self.ready()
        d = self.protocol.logoff()
        self.assertEqual(self.written(), b"Action: Logoff\r\nActionID: t-1\r\n\r\n")
        self.says(block("Response: Goodbye", "ActionID: t-1",
                        "Message: Thanks for all the fish."))
        self.assertEqual(self.successResultOf(d).response, "Goodbye")

    def test_login(self):
        self.ready()
        d = self.protocol.login("user", "pw")
        self.assertEqual(self.written(), b"Action: Login\r\nActionID: t-1\r\nUsername: user\r\n"
                                         b"Secret: pw\r\nEvents: on\r\n\r\n")
        self.says(block("Response: Error", "ActionID: t-1", "Message: Authentication failed"))
        self.assertEqual(self.failureResultOf(d, AMILoginError).value.message,
                         "Authentication failed")

    # Event lists

    def test_event_list_is_collected(self):
        self.ready()
        d = self.protocol.sendAction("DBGet", [("Family", "f"), ("Key", "k")])
        self.says(block("Response: Success", "ActionID: t-1", "EventList: start",
                        "Message: Result will follow"))
        self.assertNoResult(d)
        self.says(block("Event: Hangup", "Channel: PJSIP/9")  # unrelated, in between
                  + block("Event: DBGetResponse", "Family: f", "Key: k", "Val: v",
                          "ActionID: t-1"))
        self.assertNoResult(d)
        self.says(block("Event: DBGetComplete", "ActionID: t-1", "EventList: Complete",
                        "ListItems: 1"))
        response = self.successResultOf(d)
        self.assertEqual([e.event for e in response.events], ["DBGetResponse"])
        self.assertEqual(response.events[0]["Val"], "v")
        self.assertEqual(response.complete["ListItems"], "1")
        # Only the unrelated event reached the subscribers.
        self.assertEqual([e.event for e in self.factory.events], ["Hangup"])

    def test_event_list_streamed_to_a_callback(self):
        self.ready()
        heard = []
        d = self.protocol.sendAction("DBGetTree", [("Family", "f")], on_event=heard.append)
        self.says(block("Response: Success", "ActionID: t-1", "EventList: start")
                  + block("Event: DBGetTreeResponse", "Key: /f/a", "Val: 1", "ActionID: t-1"))
        self.assertEqual([e["Key"] for e in heard], ["/f/a"])
        self.says(block("Event: DBGetTreeResponse", "Key: /f/b", "Val: 2", "ActionID: t-1")
                  + block("Event: DBGetTreeComplete", "ActionID: t-1", "EventList: Complete"))
        self.assertEqual([e["Key"] for e in heard], ["/f/a", "/f/b"])
        self.assertEqual(self.successResultOf(d).events, [])  # heard, not kept

    def test_failing_callback_fails_the_action_at_the_end_of_the_list(self):
        self.ready()
        heard = []

        def each(event):
            heard.append(event)
            raise KeyError("boom")

        d = self.protocol.sendAction("DBGetTree", on_event=each)
        self.says(block("Response: Success", "ActionID: t-1", "EventList: start")
                  + block("Event: DBGetTreeResponse", "Key: /f/a", "ActionID: t-1")
                  + block("Event: DBGetTreeResponse", "Key: /f/b", "ActionID: t-1"))
        self.assertNoResult(d)
        self.assertEqual(len(heard), 1)
        self.says(block("Event: DBGetTreeComplete", "ActionID: t-1", "EventList: Complete"))
        self.failureResultOf(d, KeyError)
        # The connection goes on: later lines reach nobody's list by mistake.
        e = self.protocol.sendAction("Ping")
        self.says(block("Response: Success", "ActionID: t-2", "Ping: Pong"))
        self.assertEqual(self.successResultOf(e)["Ping"], "Pong")

    def test_two_lists_interleaved(self):
        self.ready()
        a = self.protocol.sendAction("CoreShowChannels")
        b = self.protocol.sendAction("CoreShowChannels")
        self.says(block("Response: Success", "ActionID: t-1", "EventList: start")
                  + block("Response: Success", "ActionID: t-2", "EventList: start")
                  + block("Event: CoreShowChannel", "ActionID: t-2", "Channel: B1")
                  + block("Event: CoreShowChannel", "ActionID: t-1", "Channel: A1")
                  + block("Event: CoreShowChannel", "ActionID: t-1", "Channel: A2")
                  + block("Event: CoreShowChannelsComplete", "ActionID: t-2",
                          "EventList: Complete", "ListItems: 1"))
        self.assertEqual([e["Channel"] for e in self.successResultOf(b).events], ["B1"])
        self.assertNoResult(a)
        self.says(block("Event: CoreShowChannelsComplete", "ActionID: t-1",
                        "EventList: Complete", "ListItems: 2"))
        self.assertEqual([e["Channel"] for e in self.successResultOf(a).events], ["A1", "A2"])

    def test_empty_event_list(self):
        self.ready()
        d = self.protocol.sendAction("CoreShowChannels")
        self.says(block("Response: Success", "ActionID: t-1", "EventList: start")
                  + block("Event: CoreShowChannelsComplete", "ActionID: t-1",
                          "EventList: Complete", "ListItems: 0"))
        self.assertEqual(self.successResultOf(d).events, [])

    def test_event_list_timeout_restarts_with_each_part(self):
        self.ready()
        d = self.protocol.sendAction("CoreShowChannels", timeout=5)
        self.clock.advance(4)
        self.says(block("Response: Success", "ActionID: t-1", "EventList: start"))
        self.clock.advance(4)
        self.says(block("Event: CoreShowChannel", "ActionID: t-1", "Channel: A"))
        self.clock.advance(4)
        self.assertNoResult(d)
        self.clock.advance(1)
        self.failureResultOf(d, AMITimeout)

    def test_an_event_with_the_action_id_before_the_response_is_an_ordinary_event(self):
        # An async Originate's OriginateResponse may beat the response.
        self.ready()
        d = self.protocol.sendAction("Originate", [("Channel", "X/1")])
        self.says(block("Event: OriginateResponse", "ActionID: t-1", "Response: Failure",
                        "Reason: 0"))
        self.assertNoResult(d)
        [event] = self.factory.events
        self.assertEqual(event.event, "OriginateResponse")
        self.says(block("Response: Success", "ActionID: t-1",
                        "Message: Originate successfully queued"))
        self.successResultOf(d)

    # Timeouts

    def test_action_timeout_and_late_reply_ignored(self):
        self.ready()
        d = self.protocol.sendAction("Ping", timeout=3)
        self.clock.advance(2.9)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        self.assertIn("t-1", str(self.failureResultOf(d, AMITimeout).value))
        self.says(block("Response: Success", "ActionID: t-1"))  # late: ignored
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_default_timeout(self):
        self.ready()
        d = self.protocol.sendAction("Ping")
        self.clock.advance(10)
        self.failureResultOf(d, AMITimeout)

    def test_answered_actions_leave_no_timer(self):
        self.ready()
        self.protocol.sendAction("Ping")
        self.says(block("Response: Success", "ActionID: t-1"))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    # Refusals

    def test_injection_refused_before_writing(self):
        self.ready()
        d = self.protocol.sendAction("DBPut", [("Family", "f"),
                                               ("Val", "x\r\nAction: Hangup\r\nChannel: y")])
        self.failureResultOf(d, AMIArgumentError)
        self.failureResultOf(self.protocol.sendAction("Ping", [("Bad\nName", "x")]),
                             ValueError)
        self.assertEqual(self.written(), b"")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_duplicate_action_id_refused(self):
        self.ready()
        self.protocol.sendAction("Ping", action_id="x")
        self.written()
        self.failureResultOf(self.protocol.sendAction("Ping", action_id="x"), ValueError)
        self.assertEqual(self.written(), b"")

    # Bad input

    def test_malformed_blocks_are_skipped(self):
        self.ready()
        d = self.protocol.sendAction("Ping")
        self.says(b"this is not a header\r\nnor this\r\n\r\n"
                  b"Foo: bar\r\n\r\n"
                  + block("Response: Success", "ActionID: t-1", "Ping: Pong"))
        self.assertEqual(self.successResultOf(d)["Ping"], "Pong")
        self.assertFalse(self.transport.disconnecting)

    def test_oversized_line_closes_the_connection(self):
        self.ready()
        d = self.protocol.sendAction("Ping")
        self.says(b"Event: X\r\nData: " + b"x" * 2000)
        self.assertTrue(self.transport.disconnected)
        self.protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(d, AMIConnectionLost)

    def test_oversized_block_closes_the_connection(self):
        self.ready()
        self.says(b"Event: X\r\n" + b"Variable: 0123456789\r\n" * 1000)
        self.assertTrue(self.transport.disconnected)
        self.assertEqual(self.factory.events, [])

    # End of the connection

    def test_pending_actions_fail_when_the_connection_is_lost(self):
        self.ready()
        plain = self.protocol.sendAction("Ping")
        listing = self.protocol.sendAction("CoreShowChannels")
        self.says(block("Response: Success", "ActionID: t-2", "EventList: start"))
        self.protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(plain, AMIConnectionLost)
        self.failureResultOf(listing, AMIConnectionLost)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.factory.lost), 1)

    def test_actions_after_the_end_fail_at_once(self):
        self.ready()
        self.protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(self.protocol.sendAction("Ping"), AMINotConnected)
        self.assertEqual(self.written(), b"")

    def test_data_after_the_end_is_ignored(self):
        self.ready()
        self.protocol.connectionLost(Failure(ConnectionLost()))
        self.says(block("Event: Late"))
        self.assertEqual(self.factory.events, [])

    def test_event_handling_failure_does_not_close_the_link(self):
        self.ready()

        def boom(protocol, event):
            raise RuntimeError("boom")

        self.factory.eventReceived = boom
        d = self.protocol.sendAction("Ping")
        self.says(block("Event: A") + block("Response: Success", "ActionID: t-1"))
        self.successResultOf(d)
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
