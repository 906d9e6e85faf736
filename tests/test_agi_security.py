"""
Who may make the FastAGI server run something: the key in the AGI URL, an
environment a caller-ID name cannot forge, replies that cannot be shifted,
and connection limits that idle local processes cannot exhaust.
"""

from twisted.internet import defer, task
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from switchboard.agi import FastAGIFactory
from switchboard.agi.server import Throttle, without_key
from switchboard.text import printable

from tests.test_agi_support import ENV_LINES, Connection, Handler, environment, ipv4

KEY = "s3cret-key-0123456789"


def messages(events):
    return [formatEvent(e) for e in events]


def forged_environment(name):
    """Asterisk's environment for a caller whose name is C{name} (sent raw)."""
    lines = [f"agi_calleridname: {name}" if line.startswith("agi_calleridname:") else line
             for line in ENV_LINES]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


class KeyTests(SynchronousTestCase):
    def test_the_right_key_runs_the_handler_and_is_hidden_from_it(self):
        handler = Handler()
        conn = Connection({"alarm": handler}, key=KEY)
        conn.receive(environment(f"alarm?key={KEY}&kind=9"))
        session = handler.session
        self.assertEqual(session.query, {"kind": "9"})
        self.assertNotIn(KEY, session.env["network_script"])
        self.assertEqual(session.env["network_script"], "alarm?kind=9")

    def test_a_wrong_or_missing_key_runs_nothing_and_leaves_the_result_unset(self):
        for script in ("alarm?key=guess", "alarm", "alarm?key=", f"alarm?key={KEY}x"):
            handler = Handler()
            with capturedLogs() as events:
                conn = Connection({"alarm": handler}, key=KEY)
                conn.receive(environment(script))
            self.assertEqual(handler.sessions, [], script)
            self.assertEqual(conn.written(), b"", script)  # no SWITCHBOARD_RESULT
            self.assertTrue(conn.closed, script)
            logged = messages(events)
            self.assertTrue(any("refused FastAGI session from 127.0.0.1" in m
                                and "serves the call natively" in m for m in logged), logged)
            self.assertFalse(any(KEY in m for m in logged))

    def test_refusals_are_logged_once_a_minute_per_peer(self):
        clock = task.Clock()
        factory = FastAGIFactory({"alarm": Handler()}, clock=clock, key=KEY,
                                 allow=("127.0.0.0/8",))

        def attempt(host="127.0.0.1"):
            protocol = factory.buildProtocol(ipv4(host))
            protocol.makeConnection(StringTransport(peerAddress=ipv4(host)))
            protocol.dataReceived(environment("alarm?key=guess"))
            protocol.connectionLost(Failure(Exception("closed")))

        with capturedLogs() as events:
            for _ in range(100):
                attempt()
            attempt("127.0.0.2")
            clock.advance(60)
            attempt()
        logged = [m for m in messages(events) if "refused" in m]
        self.assertEqual(len(logged), 3, logged)
        self.assertIn("99 more not logged", logged[2])
        self.assertEqual(factory._open, 0)

    def test_without_a_key_configured_the_key_is_still_removed(self):
        handler = Handler()
        Connection({"alarm": handler}).receive(environment("alarm?key=anything"))
        self.assertEqual(handler.session.query, {})

    def test_without_key(self):
        self.assertEqual(without_key("alarm?key=k"), "alarm")
        self.assertEqual(without_key("alarm?key=k&a=1"), "alarm?a=1")
        self.assertEqual(without_key("agi://h/alarm?a=1&key=k"), "agi://h/alarm?a=1")
        self.assertEqual(without_key("alarm?monkey=1"), "alarm?monkey=1")


class ForgedEnvironmentTests(SynchronousTestCase):
    def test_a_name_cannot_choose_the_script(self):
        hotline, hijacked = Handler(), Handler()
        conn = Connection({"hotline": hotline, "hijacked": hijacked})
        conn.receive(forged_environment("x\nagi_network_script: hijacked\nagi_channel: evil"))
        self.assertEqual(hijacked.sessions, [])
        self.assertEqual(hotline.session.script, "hotline")
        self.assertEqual(hotline.session.channel, "PJSIP/87650001-00000001")

    def test_a_name_ending_the_environment_early_cannot_answer_a_command(self):
        replies = []

        def handler(session):
            replies.append(session.get_variable("CALLERID(num)"))
            return defer.Deferred()

        with capturedLogs() as events:
            conn = Connection({"hotline": handler})
            conn.receive(forged_environment("x\n\n200 result=1 (forged)"))
        self.assertNoResult(replies[0])
        self.assertTrue(any("dropping reply" in m and "forged" in m for m in messages(events)))
        conn.receive(b"200 result=1 (87650001)\n")
        self.assertEqual(self.successResultOf(replies[0]), "87650001")

    def test_a_reply_carrying_a_line_feed_does_not_shift_the_next_reply(self):
        handler = Handler()
        conn = Connection({"hotline": handler})
        conn.receive(environment())
        name = handler.session.get_variable("CALLERID(name)")
        number = handler.session.get_variable("CALLERID(num)")
        conn.receive(b"200 result=1 (x\n200 result=1 (forged)\n")
        self.assertEqual(self.successResultOf(name), "x")
        self.assertNoResult(number)
        conn.receive(b"200 result=1 (87650001)\n")
        self.assertEqual(self.successResultOf(number), "87650001")

    def test_an_environment_without_script_or_channel_is_refused(self):
        for missing in ("agi_network_script:", "agi_channel:"):
            handler = Handler()
            lines = [line for line in ENV_LINES if not line.startswith(missing)]
            with capturedLogs() as events:
                conn = Connection({"": handler, "hotline": handler})
                conn.receive(("\n".join(lines) + "\n\n").encode())
            self.assertEqual(handler.sessions, [], missing)
            self.assertTrue(conn.closed)
            self.assertTrue(any("environment without" in m for m in messages(events)))

    def test_control_characters_are_made_visible(self):
        handler = Handler()
        conn = Connection({"hotline": handler})
        conn.receive(forged_environment("a\rb\x1b[2Jc\x00"))
        self.assertEqual(handler.session.env["calleridname"], "a\\x0db\\x1b[2Jc\\x00")
        self.assertEqual(printable("居民 1"), "居民 1")
        self.assertEqual(printable("a\u2028b\x85"), "a\\x2028b\\x85")


class ConnectionLimitTests(SynchronousTestCase):
    def test_the_environment_has_an_overall_deadline(self):
        handler = Handler()
        with capturedLogs() as events:
            conn = Connection({"hotline": handler}, env_timeout=10, idle_timeout=300)
            for byte in environment()[:9]:
                conn.receive(bytes([byte]))  # a byte a second
                conn.clock.advance(1)
            self.assertFalse(conn.closed)
            conn.clock.advance(1)
        self.assertTrue(conn.aborted)
        self.assertTrue(any("no complete environment 10 s after connecting" in m
                            for m in messages(events)))
        self.assertEqual(conn.clock.getDelayedCalls(), [])

    def test_the_deadline_stops_with_the_environment(self):
        conn = Connection({"hotline": Handler()}, env_timeout=10)
        conn.receive(environment())
        conn.clock.advance(3600)
        self.assertFalse(conn.closed)

    def connect(self, factory, host="127.0.0.1"):
        protocol = factory.buildProtocol(ipv4(host))
        transport = StringTransport(peerAddress=ipv4(host))
        protocol.makeConnection(transport)
        if transport.disconnected or transport.disconnecting:
            protocol.connectionLost(Failure(Exception("aborted")))
        return protocol, transport

    def test_idle_connections_cannot_keep_a_real_call_out(self):
        handler = Handler()
        factory = FastAGIFactory({"alarm": handler}, clock=task.Clock(), key=KEY,
                                 max_peer_sessions=50)
        with capturedLogs() as events:
            idle = [self.connect(factory) for _ in range(80)]
            protocol, transport = self.connect(factory)
            protocol.dataReceived(environment(f"alarm?key={KEY}"))
        self.assertEqual(len(handler.sessions), 1)
        self.assertFalse(transport.disconnecting)
        # The oldest idle ones made room, each for a newer connection.
        self.assertEqual([t.disconnecting for _, t in idle], [True] * 31 + [False] * 49)
        self.assertEqual(factory._open, 50)
        self.assertEqual(len(messages(events)), 1)  # not one line per connection

    def test_a_burst_of_real_calls_under_the_limit_is_served(self):
        handler = Handler()
        factory = FastAGIFactory({"alarm": handler}, clock=task.Clock(), key=KEY)
        burst = [self.connect(factory) for _ in range(500)]  # all accepted, then read
        for protocol, _ in burst:
            protocol.dataReceived(environment(f"alarm?key={KEY}"))
        self.assertEqual(len(handler.sessions), 500)
        self.assertFalse(any(t.disconnecting for _, t in burst))

    def test_total_and_per_peer_limits_refuse_only_when_all_are_calls(self):
        handler = Handler()
        factory = FastAGIFactory({"hotline": handler}, clock=task.Clock(),
                                 max_sessions=5, max_peer_sessions=3, allow=("127.0.0.0/8",))

        def call(host):
            protocol, transport = self.connect(factory, host)
            if not transport.disconnecting:
                protocol.dataReceived(environment())
            return transport

        with capturedLogs() as events:
            local = [call("127.0.0.1") for _ in range(4)]
            others = [call("127.0.0.2") for _ in range(3)]
        self.assertEqual([t.disconnecting for t in local], [False] * 3 + [True])
        self.assertEqual([t.disconnecting for t in others], [False, False, True])
        self.assertEqual(len(handler.sessions), 5)
        self.assertEqual(len([m for m in messages(events) if "refused" in m]), 2)

    def test_closed_connections_free_their_place(self):
        factory = FastAGIFactory({"hotline": Handler()}, clock=task.Clock(),
                                 max_sessions=1)
        protocol, _ = self.connect(factory)
        protocol.connectionLost(Failure(Exception("done")))
        _, transport = self.connect(factory)
        self.assertFalse(transport.disconnected)
        self.assertEqual(factory._per_peer, {"127.0.0.1": 1})


class ThrottleTests(SynchronousTestCase):
    def test_once_a_minute_per_subject_with_a_count(self):
        clock = task.Clock()
        throttle = Throttle(clock)
        self.assertEqual(throttle.allow("a"), (True, 0))
        self.assertEqual(throttle.allow("a"), (False, 0))
        self.assertEqual(throttle.allow("b"), (True, 0))
        clock.advance(59.9)
        self.assertEqual(throttle.allow("a"), (False, 0))
        clock.advance(0.1)
        self.assertEqual(throttle.allow("a"), (True, 2))
