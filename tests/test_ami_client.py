"""
AMIClient's connection: login on every connection, reconnection with a
capped and jittered backoff that never gives up, keepalive, subscriptions,
and stopping.
"""

import itertools

from twisted.internet import defer
from twisted.internet.error import ConnectionLost
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from switchboard.ami import (
    AMIConnectionLost,
    AMINotConnected,
    AMITimeout,
    Backoff,
)
from tests.test_ami_support import (
    BANNER,
    accept,
    connect,
    login_bytes,
    make_client,
    refuse,
    started,
)


def next_delay(reactor):
    """The delay of the one scheduled call (the next connection attempt)."""
    [call] = reactor.getDelayedCalls()
    return call.getTime() - reactor.seconds()


def run_out(reactor):
    """Let the scheduled reconnection happen."""
    reactor.advance(next_delay(reactor))


class LoginTests(SynchronousTestCase):
    def test_connects_logs_in_after_the_banner_and_then_is_connected(self):
        client, reactor = make_client()
        connected = client.when_connected()
        seen = []
        client.on_connect(seen.append)
        client.start()
        [(host, port, factory, timeout, bind)] = reactor.tcpClients
        self.assertEqual((host, port, timeout), ("127.0.0.1", 5038, 5.0))
        ast = accept(reactor)
        self.assertEqual(ast.written(), b"")  # nothing before the banner
        ast.says(BANNER)
        self.assertEqual(ast.written(), login_bytes("t-1"))
        self.assertFalse(client.connected)
        self.assertNoResult(connected)
        ast.respond("t-1", "Message: Authentication accepted")
        self.assertTrue(client.connected)
        self.assertIs(self.successResultOf(connected), client)
        self.assertEqual(seen, [client])
        self.assertIs(self.successResultOf(client.when_connected()), client)

    def test_event_classes_for_the_login(self):
        client, reactor = make_client(events="call,system")
        client.start()
        ast = accept(reactor)
        ast.says(BANNER)
        self.assertEqual(ast.written(), login_bytes("t-1").replace(b"Events: on",
                                                                  b"Events: call,system"))

    def test_after_each_login_asterisk_is_asked_for_only_the_events_read(self):
        client, reactor = make_client(events="call", only_events=("Newchannel", "Hangup"))
        client.start()
        ast = accept(reactor)
        ast.says(BANNER)
        ast.written()
        ast.respond("t-1", "Message: Authentication accepted")
        self.assertTrue(client.connected)
        self.assertEqual(ast.written(), (
            b"Action: Filter\r\nActionID: t-2\r\nOperation: Add\r\n"
            b"Filter: Event: (Newchannel|Hangup)[^A-Za-z0-9]\r\n\r\n"))
        with capturedLogs() as events:
            ast.respond("t-2", "Message: Permission denied", status="Error")
        # Refused (no system write permission): every call event keeps coming.
        self.assertTrue(client.connected)
        [warning] = [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]
        self.assertIn("cannot narrow the events to Newchannel, Hangup (Permission denied)",
                      warning)

    def test_on_connect_registered_when_connected_runs_at_once(self):
        client, reactor, ast = started()
        seen = []
        client.on_connect(seen.append)
        self.assertEqual(seen, [client])

    def test_start_twice_connects_once(self):
        client, reactor = make_client()
        client.start()
        client.start()
        self.assertEqual(len(reactor.tcpClients), 1)

    def test_refused_login_is_logged_loudly_and_retried(self):
        client, reactor = make_client()
        client.start()
        for attempt in range(1, 4):
            ast = accept(reactor)
            ast.says(BANNER)
            action_id = f"t-{attempt}"
            self.assertEqual(ast.written(), login_bytes(action_id))
            with capturedLogs() as logs:
                ast.respond(action_id, "Message: Authentication failed", status="Error")
            errors = [formatEvent(e) for e in logs if e["log_level"] == LogLevel.error]
            self.assertEqual(len(errors), 1)
            self.assertIn("LOGIN REFUSED: Authentication failed", errors[0])
            self.assertIn(f"attempt {attempt}", errors[0])
            self.assertNotIn("s3cret", errors[0])
            self.assertTrue(ast.transport.disconnected)
            self.assertFalse(client.connected)
            ast.close(ConnectionLost())
            run_out(reactor)
            self.assertEqual(len(reactor.tcpClients), attempt + 1)
        # The secret fixed: the next attempt gets in.
        connect(client, reactor)

    def test_nothing_is_read_after_a_wrong_banner(self):
        client, reactor = make_client()
        client.start()
        ast = accept(reactor)
        seen = []
        client.subscribe("*", seen.append)
        ast.says(b"HTTP/1.1 400 Bad Request\r\nEvent: X\r\n\r\n")
        self.assertTrue(ast.transport.disconnected)
        self.assertEqual((seen, ast.written()), ([], b""))
        ast.close()
        run_out(reactor)
        self.assertEqual(len(reactor.tcpClients), 2)

    def test_no_answer_to_login_drops_and_retries(self):
        client, reactor = make_client(action_timeout=4.0)
        client.start()
        ast = accept(reactor)
        ast.says(BANNER)
        reactor.advance(4)
        self.assertTrue(ast.transport.disconnected)
        ast.close()
        run_out(reactor)
        self.assertEqual(len(reactor.tcpClients), 2)

    def test_no_banner_drops_and_retries(self):
        client, reactor = make_client(action_timeout=4.0)
        client.start()
        ast = accept(reactor)
        reactor.advance(4)
        self.assertTrue(ast.transport.disconnected)
        ast.close()
        run_out(reactor)
        self.assertEqual(len(reactor.tcpClients), 2)

    def test_actions_wait_for_login(self):
        client, reactor = make_client()
        self.failureResultOf(client.send_action("Ping"), AMINotConnected)
        client.start()
        ast = accept(reactor)
        ast.says(BANNER)
        ast.written()
        self.failureResultOf(client.send_action("Ping"), AMINotConnected)
        self.assertEqual(ast.written(), b"")


class ReconnectTests(SynchronousTestCase):
    def test_delays_double_up_to_the_cap_and_never_stop(self):
        client, reactor = make_client(random=lambda: 0.0)  # no jitter
        client.start()
        delays = []
        for _ in range(60):
            refuse(reactor)
            delays.append(round(next_delay(reactor), 6))
            run_out(reactor)
        self.assertEqual(delays[:6], [0.2, 0.4, 0.8, 1.6, 3.0, 3.0])
        self.assertEqual(set(delays[4:]), {3.0})
        self.assertEqual(len(reactor.tcpClients), 61)  # every failure led to a new attempt

    def test_jitter_shortens_within_bounds(self):
        values = itertools.cycle([0.0, 0.999999, 0.5, 0.25])
        client, reactor = make_client(random=lambda: next(values))
        client.start()
        delays = []
        for _ in range(40):
            refuse(reactor)
            delays.append(next_delay(reactor))
            run_out(reactor)
        bases = [0.2, 0.4, 0.8, 1.6] + [3.0] * 36
        for delay, base in zip(delays, bases):
            self.assertTrue(0.75 * base - 1e-9 <= delay <= base + 1e-9, (delay, base))
        self.assertAlmostEqual(delays[1], 0.4 * 0.75, places=5)
        self.assertAlmostEqual(delays[2], 0.8 * 0.875, places=5)
        self.assertTrue(max(delays) <= 3.0 + 1e-9)
        self.assertEqual(len(set(round(d, 6) for d in delays[4:])), 4)  # not in step

    def test_keeps_trying_through_every_kind_of_failure(self):
        client, reactor = make_client(ping_interval=10.0, ping_timeout=5.0)
        client.start()
        for cycle in range(10):
            refuse(reactor)                                  # refused
            run_out(reactor)
            accept(reactor).close(ConnectionLost())          # dropped before the banner
            run_out(reactor)
            ast = accept(reactor)                            # login refused
            ast.says(BANNER)
            action_id = ast.written().split(b"ActionID: ")[1].split(b"\r\n")[0].decode()
            ast.respond(action_id, "Message: Authentication failed", status="Error")
            ast.close(ConnectionLost())
            run_out(reactor)
            ast = connect(client, reactor)                   # up, then a dead link
            reactor.advance(10)
            reactor.advance(5)
            self.assertTrue(ast.transport.disconnected)
            ast.close(ConnectionLost())
            self.assertFalse(client.connected)
            run_out(reactor)
        self.assertEqual(len(reactor.tcpClients), 41)
        self.assertEqual(self.flushLoggedErrors(), [])  # warnings, no traceback
        connect(client, reactor)

    def test_connection_lost_before_login_counts_as_a_failure(self):
        client, reactor = make_client(random=lambda: 0.0)
        client.start()
        delays = []
        for _ in range(4):
            ast = accept(reactor)
            ast.close(ConnectionLost())
            delays.append(round(next_delay(reactor), 6))
            run_out(reactor)
        self.assertEqual(delays, [0.2, 0.4, 0.8, 1.6])

    def test_successful_login_resets_the_backoff(self):
        client, reactor = make_client(random=lambda: 0.0)
        client.start()
        for _ in range(6):
            refuse(reactor)
            run_out(reactor)
        ast = connect(client, reactor)
        lost = []
        client.on_disconnect(lost.append)
        ast.close(ConnectionLost())
        self.assertFalse(client.connected)
        self.assertEqual(lost, [client])
        self.assertAlmostEqual(next_delay(reactor), 0.2)
        run_out(reactor)
        refuse(reactor)
        self.assertAlmostEqual(next_delay(reactor), 0.4)

    def test_connection_failures_are_logged_but_not_every_time(self):
        client, reactor = make_client()
        client.start()
        with capturedLogs() as logs:
            for _ in range(40):
                refuse(reactor)
                run_out(reactor)
        warnings = [formatEvent(e) for e in logs if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 5)  # attempts 1, 2, 3, 20, 40
        self.assertIn("attempt 40", warnings[-1])
        # Nothing else (ClientService's line per scheduled retry is silenced).
        self.assertEqual(len([e for e in logs if e["log_level"] > LogLevel.debug]), 5)

    def test_pending_actions_fail_and_nothing_is_sent_again_after_reconnecting(self):
        client, reactor, ast = started()
        d = client.send_action("DBPut", [("Family", "f"), ("Key", "k"), ("Val", "v")])
        self.assertIn(b"Action: DBPut", ast.written())
        ast.close(ConnectionLost())
        self.failureResultOf(d, AMIConnectionLost)
        self.failureResultOf(client.send_action("Ping"), AMINotConnected)
        run_out(reactor)
        ast2 = accept(reactor)
        ast2.says(BANNER)
        self.assertEqual(ast2.written(), login_bytes("t-3"))
        ast2.respond("t-3", "Message: Authentication accepted")
        self.assertEqual(ast2.written(), b"")  # the DBPut is not re-sent

    def test_backoff_arguments_are_checked(self):
        for args in [(0, 3), (1, 0.5)]:
            with self.assertRaises(ValueError):
                Backoff(*args)
        with self.assertRaises(ValueError):
            Backoff(0.2, 3, jitter=1.0)


class KeepaliveTests(SynchronousTestCase):
    def test_pings_every_interval_while_answered(self):
        client, reactor, ast = started(ping_interval=10.0, ping_timeout=5.0)
        for n in range(2, 5):
            reactor.advance(9.9)
            self.assertEqual(ast.written(), b"")
            reactor.advance(0.1)
            self.assertEqual(ast.written(), f"Action: Ping\r\nActionID: t-{n}\r\n\r\n".encode())
            reactor.advance(1)
            ast.respond(f"t-{n}", "Ping: Pong", "Timestamp: 1.0")
        self.assertTrue(client.connected)
        self.assertFalse(ast.transport.disconnecting)

    def test_unanswered_ping_drops_the_link_and_reconnects(self):
        client, reactor, ast = started(ping_interval=10.0, ping_timeout=5.0)
        pending = client.send_action("Ping", timeout=60)
        reactor.advance(10)
        self.assertIn(b"ActionID: t-3", ast.written())
        reactor.advance(4.9)
        self.assertFalse(ast.transport.disconnected)
        reactor.advance(0.1)
        self.assertTrue(ast.transport.disconnected)  # aborted
        ast.close(ConnectionLost())
        self.failureResultOf(pending, AMIConnectionLost)
        self.assertFalse(client.connected)
        run_out(reactor)
        connect(client, reactor)

    def test_unanswered_ping_behind_a_streaming_list_keeps_the_link(self):
        # Asterisk answers one action at a time: a Ping sent while a long
        # DBGetTree streams is answered only after it. Data still coming in
        # proves the link.
        client, reactor, ast = started(ping_interval=10.0, ping_timeout=5.0)
        tree = client.db_tree("swb_alarm", lambda key, value: None, timeout=60)
        ast.written()
        ast.respond("t-2", "Message: Result will follow", "EventList: start")
        for _ in range(50):
            reactor.advance(0.5)
            ast.event("DBGetTreeResponse", "Key: /swb_alarm/1", "Val: x", "ActionID: t-2")
        self.assertFalse(ast.transport.disconnected)
        self.assertTrue(client.connected)
        ast.event("DBGetTreeComplete", "ActionID: t-2", "EventList: Complete", "ListItems: 50")
        self.assertEqual(self.successResultOf(tree), 50)
        # Silence again: the next unanswered Ping drops it.
        reactor.advance(15)
        self.assertTrue(ast.transport.disconnected)

    def test_db_tree_of_a_subtree(self):
        # One bucket of the alarm's family: Asterisk holds its AstDB lock for
        # that subtree only while it streams it.
        client, reactor, ast = started()
        seen = []
        tree = client.db_tree("swb_ring", lambda key, value: seen.append((key, value)), key="01")
        sent = ast.written()
        self.assertIn(b"Action: DBGetTree\r\n", sent)
        self.assertIn(b"Family: swb_ring\r\nKey: 01\r\n", sent)
        ast.respond("t-2", "Message: Result will follow", "EventList: start")
        ast.event("DBGetTreeResponse", "Key: /swb_ring/01/8659187650001", "Val: PJSIP/87650002",
                  "ActionID: t-2")
        ast.event("DBGetTreeComplete", "ActionID: t-2", "EventList: Complete", "ListItems: 1")
        self.assertEqual(self.successResultOf(tree), 1)
        self.assertEqual(seen, [("01/8659187650001", "PJSIP/87650002")])

    def test_an_error_answer_to_ping_still_proves_the_link(self):
        client, reactor, ast = started(ping_interval=10.0, ping_timeout=5.0)
        reactor.advance(10)
        ast.written()
        ast.respond("t-2", "Message: Permission denied", status="Error")
        reactor.advance(10)
        self.assertIn(b"Action: Ping\r\nActionID: t-3", ast.written())
        self.assertFalse(ast.transport.disconnecting)

    def test_no_ping_before_login(self):
        client, reactor = make_client(ping_interval=1.0)
        client.start()
        ast = accept(reactor)
        ast.says(BANNER)
        ast.written()
        reactor.advance(1.5)
        self.assertEqual(ast.written(), b"")


class SubscriptionTests(SynchronousTestCase):
    def setUp(self):
        self.client, self.reactor, self.ast = started()
        self.seen = []

    def record(self, tag):
        return lambda event: self.seen.append((tag, event.event))

    def test_exact_all_and_patterns(self):
        self.client.subscribe("Hangup", self.record("exact"))
        self.client.subscribe("*", self.record("all"))
        self.client.subscribe("Dial*", self.record("glob"))
        self.client.subscribe("newstate", self.record("case"))
        self.ast.event("Hangup", "Channel: PJSIP/1")
        self.ast.event("DialBegin")
        self.ast.event("Newstate")
        self.ast.event("HangupRequest")
        self.assertEqual(self.seen, [
            ("exact", "Hangup"), ("all", "Hangup"),
            ("all", "DialBegin"), ("glob", "DialBegin"),
            ("all", "Newstate"), ("case", "Newstate"),
            ("all", "HangupRequest"),
        ])

    def test_unsubscribe(self):
        token = self.client.subscribe("*", self.record("a"))
        self.ast.event("A")
        self.client.unsubscribe(token)
        self.client.unsubscribe(token)  # twice: harmless
        self.ast.event("B")
        self.assertEqual(self.seen, [("a", "A")])

    def test_event_message_has_every_header(self):
        got = []
        self.client.subscribe("VarSet", got.append)
        self.ast.event("VarSet", "Variable: X", "Value: 1", "ChanVariable: a=1",
                       "ChanVariable: b=2")
        self.assertEqual(got[0].getall("ChanVariable"), ["a=1", "b=2"])

    def test_a_failing_subscriber_affects_no_one_else(self):
        def boom(event):
            raise RuntimeError("subscriber bug")

        self.client.subscribe("*", self.record("before"))
        self.client.subscribe("*", boom)
        self.client.subscribe("*", lambda e: defer.fail(KeyError("async bug")))
        self.client.subscribe("*", self.record("after"))
        d = self.client.send_action("Ping")
        self.ast.event("Hangup")
        self.ast.respond("t-2", "Ping: Pong")
        self.ast.event("Newstate")
        self.assertEqual(self.seen, [("before", "Hangup"), ("after", "Hangup"),
                                     ("before", "Newstate"), ("after", "Newstate")])
        self.successResultOf(d)
        self.assertTrue(self.client.connected)
        self.assertFalse(self.ast.transport.disconnecting)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 2)

    def test_failing_connection_callbacks_are_logged(self):
        def boom(client):
            raise RuntimeError("on_connect bug")

        self.client.on_connect(boom)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_bad_subscriptions(self):
        with self.assertRaises(ValueError):
            self.client.subscribe("", print)
        with self.assertRaises(TypeError):
            self.client.subscribe("*", "not callable")


class StopTests(SynchronousTestCase):
    def test_logs_off_and_closes(self):
        client, reactor, ast = started()
        d = client.stop()
        self.assertEqual(ast.written(), b"Action: Logoff\r\nActionID: t-2\r\n\r\n")
        self.assertNoResult(d)
        ast.respond("t-2", "Message: Thanks for all the fish.", status="Goodbye")
        self.assertTrue(ast.transport.disconnecting)
        self.assertFalse(ast.transport.disconnected)  # a clean close
        ast.close()
        self.successResultOf(d)
        self.assertFalse(client.connected)
        self.assertEqual(reactor.getDelayedCalls(), [])
        self.assertEqual(len(reactor.tcpClients), 1)

    def test_unanswered_logoff_aborts(self):
        client, reactor, ast = started()
        d = client.stop()
        reactor.advance(2)
        self.assertTrue(ast.transport.disconnected)
        ast.close(ConnectionLost())
        self.successResultOf(d)
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_stop_while_waiting_to_reconnect(self):
        client, reactor = make_client()
        client.start()
        refuse(reactor)
        self.successResultOf(client.stop())
        self.assertEqual(reactor.getDelayedCalls(), [])
        reactor.advance(100)
        self.assertEqual(len(reactor.tcpClients), 1)

    def test_stop_while_connecting(self):
        client, reactor = make_client()
        client.start()
        self.successResultOf(client.stop())
        self.assertTrue(reactor.connectors[-1].stoppedConnecting)
        refuse(reactor)  # what the reactor reports next: no retry
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_stop_while_logging_in(self):
        client, reactor = make_client()
        waiting = client.when_connected()
        client.start()
        ast = accept(reactor)
        ast.says(BANNER)
        ast.written()
        d = client.stop()
        self.failureResultOf(waiting, AMINotConnected)
        self.assertTrue(ast.transport.disconnecting)
        ast.close()
        self.successResultOf(d)
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_stop_before_start_and_restart(self):
        client, reactor = make_client()
        self.successResultOf(client.stop())
        client.start()
        connect(client, reactor)

    def test_start_again_while_the_old_connection_closes(self):
        client, reactor, ast = started()
        stopped = client.stop()
        client.start()
        self.assertEqual(len(reactor.tcpClients), 2)
        ast.close()  # the old connection ends after the new attempt began
        self.successResultOf(stopped)
        self.assertEqual([c.func.__name__ for c in reactor.getDelayedCalls()], [])
        connect(client, reactor)
        self.assertEqual(len(reactor.tcpClients), 2)

    def test_pending_actions_fail_on_stop(self):
        client, reactor, ast = started()
        d = client.send_action("Ping", timeout=60)
        client.stop()
        ast.close()
        self.failureResultOf(d, AMIConnectionLost)

    def test_action_timeout_is_reported(self):
        client, reactor, ast = started(action_timeout=3.0)
        d = client.send_action("Ping")
        reactor.advance(3)
        self.failureResultOf(d, AMITimeout)
        self.assertTrue(client.connected)


class EventFilterTests(SynchronousTestCase):
    """Events no subscriber asked for are dropped before they are built."""

    def test_only_subscribed_events_and_originate_outcomes_are_built(self):
        client, reactor, ast = started()
        self.assertEqual(ast.protocol.event_filter, client.wants_event)
        heard = []
        client.subscribe("Hangup", heard.append)
        self.assertTrue(client.wants_event("Hangup"))
        self.assertTrue(client.wants_event("OriginateResponse"))
        self.assertFalse(client.wants_event("VarSet"))
        ast.event("VarSet", "Variable: X", "Value: 1")
        ast.event("Hangup", "Uniqueid: 1.2")
        self.assertEqual([e["Uniqueid"] for e in heard], ["1.2"])
        # A new subscription is heard from the next event on.
        client.subscribe("Var*", heard.append)
        self.assertTrue(client.wants_event("VarSet"))
        ast.event("VarSet", "Variable: X", "Value: 2")
        self.assertEqual(heard[-1]["Value"], "2")
