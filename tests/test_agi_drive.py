"""
drive(): a handler's coroutine resumed directly by its session's replies,
with what defer.ensureDeferred would give in every other case; and the
protocol's write straight to a TCP socket with nothing buffered.
"""

import socket

from twisted.internet import defer, tcp
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from switchboard.agi import AGIArgumentError, AGIConnectionLost, AGIHangup, drive
from switchboard.agi.protocol import sender

from tests.test_agi_support import Connection, environment


class Script:
    """A handler whose coroutine is the test's: C{script(session)} is awaited."""

    def __init__(self, script, runner=drive):
        self.script = script
        self.runner = runner
        self.result = None
        self.outcome = []

    def __call__(self, session):
        self.result = self.runner(self.script(session))
        self.result.addBoth(self._keep)  # before the factory consumes it
        return self.result

    def _keep(self, outcome):
        self.outcome.append(outcome)
        return outcome

    def value(self):
        """What the coroutine returned."""
        [outcome] = self.outcome
        return outcome


def both(test):
    """Run C{test(runner)} with drive and with ensureDeferred: the same outcome."""
    return [test(drive), test(defer.ensureDeferred)]


class DriveTests(SynchronousTestCase):
    def connect(self, script, runner=drive):
        handler = Script(script, runner)
        conn = Connection({"hotline": handler})
        conn.receive(environment())
        return conn, handler

    def test_replies_resume_the_coroutine(self):
        seen = []

        async def script(session):
            await session.answer()
            seen.append(await session.get_variable("A"))
            seen.append(await session.stream_file("menu", "12"))
            return "done"

        conn, handler = self.connect(script)
        self.assertEqual(conn.written(), b"ANSWER\n")
        conn.receive(b"200 result=0\n")
        self.assertEqual(conn.written(), b'GET VARIABLE "A"\n')
        conn.receive(b"200 result=1 (value)\n")
        self.assertEqual(conn.written(), b'STREAM FILE "menu" "12"\n')
        conn.receive(b"200 result=50 endpos=100\n")
        self.assertEqual(seen, ["value", "2"])
        self.assertEqual(handler.value(), "done")
        self.assertTrue(conn.closed)

    def test_errors_are_raised_where_the_command_is_awaited(self):
        def run(runner):
            caught = []

            async def script(session):
                try:
                    await session.stream_file("menu")
                except AGIHangup as e:
                    caught.append(str(e))
                try:
                    await session.answer()
                except AGIHangup as e:
                    caught.append(type(e).__name__)
                try:
                    await session.stream_file("bad\nname")
                except AGIArgumentError:
                    caught.append("refused")
                return caught

            conn, handler = self.connect(script, runner)
            conn.written()
            conn.receive(b"200 result=-1 endpos=0\n")
            conn.receive(b"511 Command Not Permitted on a dead channel or intercept routine\n")
            return handler.value()

        drove, ensured = both(run)
        self.assertEqual(drove, ensured)
        self.assertEqual(drove[1:], ["AGIHangup", "refused"])
        self.assertIn("result=-1", drove[0])

    def test_a_lost_connection_fails_the_awaited_command(self):
        caught = []

        async def script(session):
            try:
                await session.answer()
            except AGIConnectionLost as e:
                caught.append(str(e))

        conn, handler = self.connect(script)
        conn.protocol.connectionLost(None)
        self.assertEqual(caught, ["the AGI connection was lost"])

    def test_other_deferreds_are_waited_for(self):
        later, failing = defer.Deferred(), defer.Deferred()

        async def script(session):
            first = await defer.succeed(1)
            second = await later
            try:
                await failing
            except ZeroDivisionError:
                third = "raised"
            fourth = await session.get_variable("B")
            return first, second, third, fourth

        conn, handler = self.connect(script)
        self.assertNoResult(handler.result)
        later.callback(2)
        failing.errback(ZeroDivisionError())
        self.assertEqual(conn.written(), b'GET VARIABLE "B"\n')
        conn.receive(b"200 result=0\n")
        self.assertEqual(handler.value(), (1, 2, "raised", None))

    def test_a_callback_on_the_awaited_command_comes_after_the_coroutine(self):
        def run(runner):
            order = []

            async def script(session):
                command = session.get_variable("A")
                session.later = command
                order.append(("coroutine", await command))

            conn, handler = self.connect(script, runner)
            conn.handler = handler
            session = handler.result and conn.protocol.session
            session.later.addCallback(lambda result: order.append(("callback", result)))
            conn.receive(b"200 result=1 (x)\n")
            handler.value()
            return order

        drove, ensured = both(run)
        self.assertEqual(drove, ensured)
        self.assertEqual(drove, [("coroutine", "x"), ("callback", None)])

    def test_cancel_cancels_what_the_coroutine_awaits(self):
        def run(runner):
            async def script(session):
                await session.answer()
                queued = session.set_variable("A", "1")
                try:
                    await queued
                except defer.CancelledError:
                    return "cancelled, and went on"

            conn, handler = self.connect(script, runner)
            conn.written()
            conn.receive(b"200 result=0\n")
            handler.result.cancel()
            return handler.value(), conn.written()

        drove, ensured = both(run)
        self.assertEqual(drove, ensured)
        self.assertEqual(drove[0], "cancelled, and went on")

    def test_a_deferred_is_returned_as_it_is(self):
        d = defer.Deferred()
        self.assertIs(drive(d), d)
        self.assertRaises(TypeError, drive, 42)

    def test_generator_handlers_still_work(self):
        @defer.inlineCallbacks
        def script(session):
            yield session.answer()
            value = yield session.get_variable("A")
            return value

        handler = Script(lambda session: script(session), runner=lambda d: d)
        conn = Connection({"hotline": handler})
        conn.receive(environment())
        conn.receive(b"200 result=0\n")
        conn.receive(b"200 result=1 (v)\n")
        self.assertEqual(handler.value(), "v")

    def test_async_def_handler_run_by_the_factory(self):
        async def handler(session):
            await session.answer()
            await session.set_variable("SWITCHBOARD_RESULT", "OK")

        conn = Connection({"hotline": handler})
        conn.receive(environment())
        self.assertEqual(conn.written(), b"ANSWER\n")
        conn.receive(b"200 result=0\n")
        self.assertEqual(conn.written(), b'SET VARIABLE "SWITCHBOARD_RESULT" "OK"\n')
        conn.receive(b"200 result=1\n")
        self.assertTrue(conn.closed)

    def test_a_reply_ending_in_cr_is_read_as_before(self):
        lines = []

        async def script(session):
            lines.append((await session.send_command("NOOP")).line)
            lines.append((await session.send_command("NOOP")).line)

        conn, handler = self.connect(script)
        conn.receive(b"200 result=0 cr-test\r\r\n")  # one CR dropped, one kept
        conn.receive(b"200 result=0 cr-test\r\n")
        self.assertEqual(lines, ["200 result=0 cr-test\r", "200 result=0 cr-test"])

    def test_one_timer_a_connection(self):
        conn = Connection({}, env_timeout=10, idle_timeout=300)
        self.assertEqual(len(conn.clock.getDelayedCalls()), 1)
        conn.clock.advance(10)
        self.assertTrue(conn.aborted)


class _Port:
    _realPortNumber = 4573


class SenderTests(SynchronousTestCase):
    def connection(self):
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        ours.setblocking(False)
        theirs.setblocking(False)
        reactor = MemoryReactor()
        transport = tcp.Server(ours, FastAGIStub(), ("127.0.0.1", 40000), _Port(), 1, reactor)
        return transport, theirs, reactor

    def test_other_transports_keep_their_write(self):
        transport = StringTransport()
        self.assertEqual(sender(transport), transport.write)

    def test_sent_at_once_when_nothing_is_buffered(self):
        transport, theirs, reactor = self.connection()
        send = sender(transport)
        send(b"ANSWER\n")
        self.assertEqual(theirs.recv(100), b"ANSWER\n")
        self.assertNotIn(transport, reactor.writers)  # no turn of the reactor needed

    def test_behind_buffered_bytes_it_waits_its_turn(self):
        transport, theirs, reactor = self.connection()
        send = sender(transport)
        transport.write(b"first\n")  # buffered: the reactor sends it
        send(b"second\n")
        self.assertRaises(BlockingIOError, theirs.recv, 100)
        self.assertIn(transport, reactor.writers)
        transport.doWrite()
        self.assertEqual(theirs.recv(100), b"first\nsecond\n")

    def test_what_the_socket_does_not_take_is_buffered(self):
        transport, theirs, reactor = self.connection()
        send = sender(transport)
        big = b"x" * (8 * 1024 * 1024)
        send(big)
        self.assertIn(transport, reactor.writers)
        received = bytearray()
        for _ in range(100000):
            try:
                received += theirs.recv(1 << 20)
                continue
            except BlockingIOError:
                pass
            if len(transport.dataBuffer) == transport.offset and not transport._tempDataLen:
                break  # all handed to the socket
            transport.doWrite()  # the reactor's turn
        self.assertNotIn(transport, reactor.writers)
        self.assertEqual(received, big)

    def test_a_closing_transport_is_left_to_the_reactor(self):
        transport, theirs, reactor = self.connection()
        send = sender(transport)
        transport.loseConnection()
        send(b"late\n")
        self.assertRaises(BlockingIOError, theirs.recv, 100)


class FastAGIStub:
    """The least a transport needs of its protocol."""

    def makeConnection(self, transport):
        pass

    def dataReceived(self, data):
        pass

    def connectionLost(self, reason):
        pass
