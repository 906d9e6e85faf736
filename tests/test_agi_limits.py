"""The FastAGI server's limits: line length, environment size, idle time, allowlist."""

import random

import pytest
from twisted.internet.address import UNIXAddress
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from switchboard.agi import (
    AGIConnectionLost,
    AGITimeout,
    FastAGIFactory,
    PeerAllowlist,
)

from tests.test_agi_support import CHANNEL, Connection, Handler, environment, ipv4, ipv6


def messages(events):
    return [formatEvent(e) for e in events]


class LimitTests(SynchronousTestCase):
    def test_oversize_environment_line(self):
        handler = Handler()
        with capturedLogs() as events:
            conn = Connection({"hotline": handler}, max_line=100)
            conn.receive(b"agi_network: yes\nagi_channel: " + b"x" * 200)
        self.assertTrue(conn.aborted)
        self.assertEqual(handler.sessions, [])
        self.assertTrue(any("longer than 100 bytes" in m for m in messages(events)))

    def test_oversize_line_without_newline_yet(self):
        conn = Connection({"hotline": Handler()}, max_line=100)
        for _ in range(20):
            conn.receive(b"y" * 10)
        self.assertTrue(conn.aborted)

    def test_oversize_reply_fails_pending_command(self):
        handler = Handler()
        conn = Connection({"hotline": handler}, max_line=100)
        conn.receive(environment())
        d = handler.session.get_variable("X")
        conn.receive(b"200 result=1 (" + b"v" * 200 + b")\n")
        self.assertTrue(conn.aborted)
        self.failureResultOf(d, AGIConnectionLost)

    def test_environment_too_large(self):
        handler = Handler()
        with capturedLogs() as events:
            conn = Connection({"hotline": handler}, max_env_lines=5)
            conn.receive(b"".join(b"agi_k%d: v\n" % i for i in range(6)))
        self.assertTrue(conn.aborted)
        self.assertEqual(handler.sessions, [])
        self.assertTrue(any("environment longer than 5 lines" in m for m in messages(events)))
        conn.receive(b"\n")
        self.assertEqual(handler.sessions, [])

    def test_environment_at_the_limit(self):
        handler = Handler()
        conn = Connection({"hotline": handler}, max_env_lines=len(environment().splitlines()) - 1)
        conn.receive(environment())
        self.assertEqual(len(handler.sessions), 1)


class IdleTimeoutTests(SynchronousTestCase):
    def setUp(self):
        self.handler = Handler()
        self.conn = Connection({"hotline": self.handler}, idle_timeout=30, env_timeout=3600)

    def start(self):
        self.conn.receive(environment())
        return self.handler.session

    def test_waiting_for_environment(self):
        self.conn.receive(b"agi_network: yes\n")
        self.conn.clock.advance(29)
        self.assertFalse(self.conn.closed)
        self.conn.receive(b"agi_channel: x\n")  # bytes restart the clock
        self.conn.clock.advance(29)
        self.assertFalse(self.conn.closed)
        with capturedLogs() as events:
            self.conn.clock.advance(1)
        self.assertTrue(self.conn.aborted)
        self.assertTrue(any("no data from Asterisk for 30 s while waiting for the environment"
                            in m for m in messages(events)))
        self.assertEqual(self.handler.sessions, [])

    def test_no_timeout_while_no_command_is_pending(self):
        self.start()
        self.conn.clock.advance(3600)
        self.assertFalse(self.conn.closed)

    def test_waiting_for_reply(self):
        session = self.start()
        d = session.answer()
        self.conn.clock.advance(29)
        self.conn.receive(b"200 res")  # part of a reply restarts the clock
        self.conn.clock.advance(29)
        self.assertNoResult(d)
        with capturedLogs() as events:
            self.conn.clock.advance(1)
        self.failureResultOf(d, AGITimeout)
        self.assertTrue(self.conn.aborted)
        self.assertTrue(any("waiting for a reply" in m and CHANNEL in m
                            for m in messages(events)))
        self.failureResultOf(session.answer(), AGIConnectionLost)

    def test_clock_stops_after_reply(self):
        session = self.start()
        d = session.answer()
        self.conn.clock.advance(20)
        self.conn.receive(b"200 result=0\n")
        self.successResultOf(d)
        self.conn.clock.advance(3600)
        self.assertFalse(self.conn.closed)
        # The connection's timer lapsed without being set again.
        self.assertEqual(self.conn.clock.getDelayedCalls(), [])

    def test_each_queued_command_gets_its_own_time(self):
        session = self.start()
        first, second = session.answer(), session.answer()
        self.conn.clock.advance(25)
        self.conn.receive(b"200 result=0\n")
        self.successResultOf(first)
        self.conn.clock.advance(25)
        self.assertFalse(self.conn.closed)
        self.conn.clock.advance(5)
        self.failureResultOf(second, AGITimeout)

    def test_command_timeouts_extend_the_limit(self):
        session = self.start()
        d = session.wait_for_digit(60000)
        self.conn.clock.advance(89)
        self.assertNoResult(d)
        self.conn.clock.advance(1)
        self.failureResultOf(d, AGITimeout)

    def test_shorter_limit_after_a_longer_one(self):
        session = self.start()
        first = session.wait_for_digit(60000)  # may wait 90 s
        self.conn.clock.advance(1)
        self.conn.receive(b"200 result=0\n")
        self.successResultOf(first)
        second = session.send_command("NOOP", idle_timeout=2)
        self.conn.clock.advance(1.5)
        self.assertNoResult(second)
        self.conn.clock.advance(0.5)
        self.failureResultOf(second, AGITimeout)

    def test_limit_counts_from_the_last_byte(self):
        session = self.start()
        d = session.answer()
        for _ in range(10):
            self.conn.clock.advance(20)
            self.conn.receive(b" ")  # a trickle of bytes keeps it open
        self.assertFalse(self.conn.closed)
        self.conn.clock.advance(30)
        self.failureResultOf(d, AGITimeout)

    def test_exec_has_no_limit_by_default(self):
        session = self.start()
        d = session.exec_("ConfBridge", "alarm-1")
        self.conn.clock.advance(4 * 3600)
        self.assertNoResult(d)
        self.conn.receive(b"200 result=0\n")
        self.assertEqual(self.successResultOf(d), 0)

    def test_exec_with_limit(self):
        session = self.start()
        d = session.exec_("Playback", "x", idle_timeout=10)
        self.conn.clock.advance(10)
        self.failureResultOf(d, AGITimeout)

    def test_wait_forever(self):
        session = self.start()
        d = session.wait_for_digit(-1)
        self.conn.clock.advance(3600)
        self.assertNoResult(d)

    def test_send_command_limit(self):
        session = self.start()
        d = session.send_command("EXEC Wait 100", idle_timeout=None)
        self.conn.clock.advance(3600)
        self.assertNoResult(d)
        self.conn.receive(b"200 result=0\n")
        e = session.send_command("NOOP", idle_timeout=2)
        self.conn.clock.advance(2)
        self.failureResultOf(e, AGITimeout)

    def test_no_timer_left_after_close(self):
        session = self.start()
        d = session.answer()
        self.conn.protocol.connectionLost(Failure(Exception("gone")))
        self.failureResultOf(d, AGIConnectionLost)
        self.assertEqual(self.conn.clock.getDelayedCalls(), [])


class AllowlistTests(SynchronousTestCase):
    def test_refused_peer(self):
        handler = Handler()
        with capturedLogs() as events:
            conn = Connection({"hotline": handler}, peer=ipv4("192.0.2.7"))
        self.assertTrue(conn.aborted)
        self.assertTrue(any("refused FastAGI connection from 192.0.2.7" in m
                            for m in messages(events)))
        conn.receive(environment())
        self.assertEqual(handler.sessions, [])
        self.assertEqual(conn.written(), b"")
        self.assertEqual(conn.clock.getDelayedCalls(), [])

    def test_allowed_peers(self):
        for peer, allow in [
            (ipv4("127.0.0.1"), ("127.0.0.1", "::1")),
            (ipv6("::1"), ("127.0.0.1", "::1")),
            (ipv6("::ffff:127.0.0.1"), ("127.0.0.1", "::1")),
            (ipv4("10.1.2.3"), ("10.1.0.0/16",)),
            (ipv4("192.168.1.10"), ("::ffff:192.168.1.10",)),
            (ipv6("fe80::1%eth0"), ("fe80::/10",)),
        ]:
            handler = Handler()
            conn = Connection({"hotline": handler}, peer=peer, allow=allow)
            conn.receive(environment())
            self.assertEqual(len(handler.sessions), 1, (peer, allow))

    def test_refused_peers(self):
        for peer, allow in [
            (ipv4("10.0.0.5"), ("127.0.0.1", "::1")),
            (ipv6("::ffff:10.0.0.5"), ("127.0.0.1", "::1")),
            (ipv6("::2"), ("127.0.0.1", "::1")),
            (ipv4("10.2.0.1"), ("10.1.0.0/16",)),
            (ipv4("127.0.0.1"), ()),
        ]:
            conn = Connection({"hotline": Handler()}, peer=peer, allow=allow)
            self.assertTrue(conn.aborted, (peer, allow))

    def test_non_ip_peer_refused(self):
        self.assertFalse(PeerAllowlist(["127.0.0.1"]).allows(UNIXAddress("/tmp/sock")))
        self.assertFalse(PeerAllowlist(["127.0.0.1"]).allows(None))

    def test_bad_entry(self):
        with pytest.raises(ValueError, match="localhost"):
            FastAGIFactory({}, allow=("localhost",))
        self.assertTrue(PeerAllowlist("127.0.0.1").allows(ipv4("127.0.0.1")))


class IsolationTests(SynchronousTestCase):
    def test_one_broken_session_does_not_touch_another(self):
        good_handler = Handler()
        factory_conn = Connection({"hotline": good_handler}, max_line=200)
        factory = factory_conn.factory
        factory_conn.receive(environment())
        good = good_handler.session
        d = good.channel_status()

        bad = factory.buildProtocol(ipv4("127.0.0.1"))
        bad_transport = StringTransport(peerAddress=ipv4("127.0.0.1"))
        bad.makeConnection(bad_transport)
        bad.dataReceived(b"\xff" * 500)
        self.assertTrue(bad_transport.disconnected)

        factory_conn.receive(b"200 result=6\n")
        self.assertEqual(self.successResultOf(d), 6)
        self.assertFalse(factory_conn.closed)

    def test_garbage_never_raises(self):
        rng = random.Random(1234)
        pieces = [b"\n", b"\r\n", b"HANGUP\n", b"200 result=", b"-1", b"(", b")", b" endpos=",
                  b"520-", b"520 ", b"511 x\n", b"510 y\n", b"agi_", b": ", b"\x00", b"\xff",
                  b"\xe4\xb8\xad", b"x" * 50]
        for _ in range(300):
            handler = Handler()
            conn = Connection({"hotline": handler, "": handler}, max_line=300, idle_timeout=5)
            for _ in range(rng.randint(1, 40)):
                conn.receive(b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 8))))
                if handler.sessions and rng.random() < 0.3:
                    handler.session.answer().addErrback(lambda f: None)
            conn.clock.advance(10)
            conn.protocol.connectionLost(Failure(Exception("end")))
        self.assertEqual(self.flushLoggedErrors(), [])  # garbage is refused, never a traceback
