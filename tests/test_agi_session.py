"""AGISession: environment, one command at a time, hangups and lost connections."""

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from switchboard.agi import (
    AGIConnectionLost,
    AGIHangup,
    AGISession,
    AGITimeout,
)

from tests.test_agi_support import CHANNEL, Connection, Handler, environment


class EnvironmentTests(SynchronousTestCase):
    def setUp(self):
        self.handler = Handler()
        self.conn = Connection({"hotline": self.handler})
        self.conn.receive(environment())
        self.session = self.handler.session

    def test_env_prefix_stripped(self):
        env = self.session.env
        self.assertEqual(env["channel"], CHANNEL)
        self.assertEqual(env["callerid"], "87650001")
        self.assertEqual(env["calleridname"], "Resident 1")
        self.assertEqual(env["uniqueid"], "1732345678.12")
        self.assertEqual(env["network"], "yes")
        self.assertEqual(env["accountcode"], "")
        self.assertEqual(env["request"], "agi://127.0.0.1:4573/hotline?office=health&lang=zh")
        self.assertNotIn("agi_channel", env)

    def test_script_query_args(self):
        self.assertEqual(self.session.script, "hotline")
        self.assertEqual(self.session.query, {"office": "health", "lang": "zh"})
        self.assertEqual(self.session.args, ["a b", "c"])
        self.assertEqual(self.session.peer, IPv4Address("TCP", "127.0.0.1", 12345))
        self.assertFalse(self.session.hungup)


class ScriptParsingTests(SynchronousTestCase):
    def session(self, network_script, **extra):
        env = {"network_script": network_script} if network_script is not None else {}
        env.update(extra)
        return AGISession(env, link=None)

    def test_forms(self):
        s = self.session("/alarm?kind=9&from=%2B8687650001&empty=&kind=10")
        self.assertEqual(s.script, "alarm")
        self.assertEqual(s.query, {"kind": "9", "from": "+8687650001", "empty": ""})
        self.assertEqual(self.session("alarm").script, "alarm")
        self.assertEqual(self.session("alarm").query, {})
        self.assertEqual(self.session("?x=1").script, "")
        self.assertEqual(self.session("?x=1").query, {"x": "1"})
        self.assertEqual(self.session("//a/b?c=d").script, "a/b")
        self.assertEqual(self.session(None).script, "")

    def test_args_in_numeric_order(self):
        s = self.session("x", arg_10="ten", arg_2="two", arg_1="one", arg_3="three")
        self.assertEqual(s.args, ["one", "two", "three", "", "", "", "", "", "", "ten"])
        self.assertEqual(self.session("x").args, [])


class QueueTests(SynchronousTestCase):
    def setUp(self):
        self.handler = Handler()
        self.conn = Connection({"hotline": self.handler})
        self.conn.receive(environment())
        self.session = self.handler.session

    def test_one_in_flight_rest_queued_in_order(self):
        s = self.session
        first = s.answer()
        second = s.set_variable("A", "1")
        third = s.get_variable("A")
        self.assertEqual(self.conn.written(), b"ANSWER\n")
        self.conn.receive(b"200 result=0\n")
        self.assertIsNone(self.successResultOf(first))
        self.assertEqual(self.conn.written(), b'SET VARIABLE "A" "1"\n')
        self.assertNoResult(second)
        self.conn.receive(b"200 result=1\n")
        self.assertEqual(self.conn.written(), b'GET VARIABLE "A"\n')
        self.conn.receive(b"200 result=1 (1)\n")
        self.assertIsNone(self.successResultOf(second))
        self.assertEqual(self.successResultOf(third), "1")
        self.assertEqual(self.conn.written(), b"")

    def test_replies_in_one_chunk(self):
        s = self.session
        results = [s.get_variable("A"), s.get_variable("B"), s.channel_status()]
        # Each reply comes in a read of its own: one in the same read as an
        # earlier reply arrived before its command was sent (dropped).
        for reply in (b"200 result=1 (a)\n", b"200 result=0\n", b"200 result=6\n"):
            self.conn.receive(reply)
        self.assertEqual([self.successResultOf(d) for d in results], ["a", None, 6])
        self.assertEqual(
            self.conn.written(),
            b'GET VARIABLE "A"\nGET VARIABLE "B"\nCHANNEL STATUS\n',
        )

    def test_earlier_queued_command_goes_before_one_issued_on_reply(self):
        s = self.session
        later = []
        first = s.answer()
        first.addCallback(lambda _: later.append(s.verbose("from callback")))
        s.set_variable("QUEUED", "1")
        self.conn.written()
        self.conn.receive(b"200 result=0\n")
        self.assertEqual(self.conn.written(), b'SET VARIABLE "QUEUED" "1"\n')
        self.conn.receive(b"200 result=1\n")
        self.assertEqual(self.conn.written(), b'VERBOSE "from callback" 1\n')

    def test_error_reply_does_not_block_the_queue(self):
        s = self.session
        bad = s.send_command("NO SUCH THING")
        good = s.channel_status()
        self.conn.receive(b"510 Invalid or unknown command\n")
        self.conn.receive(b"200 result=6\n")
        self.failureResultOf(bad)
        self.assertEqual(self.successResultOf(good), 6)

    def test_cancel_queued_command_is_not_sent(self):
        s = self.session
        first = s.answer()
        second = s.set_variable("A", "1")
        third = s.set_variable("B", "2")
        second.cancel()
        self.failureResultOf(second, defer.CancelledError)
        self.conn.receive(b"200 result=0\n")
        self.successResultOf(first)
        self.assertEqual(self.conn.written(), b'ANSWER\nSET VARIABLE "B" "2"\n')
        self.assertNoResult(third)

    def test_cancel_in_flight_drops_its_reply(self):
        s = self.session
        first = s.wait_for_digit(5000)
        first.cancel()
        self.failureResultOf(first, defer.CancelledError)
        second = s.channel_status()
        self.assertEqual(self.conn.written(), b"WAIT FOR DIGIT 5000\n")
        self.conn.receive(b"200 result=0\n")  # the reply to WAIT FOR DIGIT
        self.assertEqual(self.conn.written(), b"CHANNEL STATUS\n")
        self.conn.receive(b"200 result=6\n")
        self.assertEqual(self.successResultOf(second), 6)

    def test_unexpected_reply_is_ignored(self):
        self.conn.receive(b"200 result=1\nnonsense\n")
        d = self.session.channel_status()
        self.conn.receive(b"200 result=6\n")
        self.assertEqual(self.successResultOf(d), 6)
        self.assertFalse(self.conn.closed)

    def test_drain(self):
        s = self.session
        self.successResultOf(s.drain())
        s.answer()
        s.answer()
        drained = s.drain()
        self.conn.receive(b"200 result=0\n")
        self.assertNoResult(drained)
        self.conn.receive(b"200 result=0\n")
        self.successResultOf(drained)


class HangupTests(SynchronousTestCase):
    def setUp(self):
        self.handler = Handler()
        self.conn = Connection({"hotline": self.handler})
        self.conn.receive(environment())
        self.session = self.handler.session

    def test_hangup_mid_command(self):
        # Asterisk's order: the interrupted command's reply, then HANGUP.
        s = self.session
        hung = s.when_hungup()
        playing = s.stream_file("hotline/menu", "123")
        self.conn.written()
        self.conn.receive(b"200 result=-1 endpos=12000\nHANGUP\n")
        self.failureResultOf(playing, AGIHangup)
        self.assertTrue(s.hungup)
        self.assertIsNone(self.successResultOf(hung))
        self.failureResultOf(s.answer(), AGIHangup)
        self.assertEqual(self.conn.written(), b"")

    def test_hangup_before_reply(self):
        s = self.session
        hung = s.when_hungup()
        pending = s.get_variable("DIALSTATUS")
        queued = s.stream_file("x")
        self.assertEqual(self.conn.written(), b'GET VARIABLE "DIALSTATUS"\n')
        self.conn.receive(b"HANGUP\n")
        self.assertTrue(s.hungup)
        self.successResultOf(hung)
        # The queued command is dropped unsent; the one in flight waits for
        # its reply, which still counts.
        self.failureResultOf(queued, AGIHangup)
        self.assertNoResult(pending)
        self.conn.receive(b"200 result=1 (BUSY)\n")
        self.assertEqual(self.successResultOf(pending), "BUSY")
        self.assertEqual(self.conn.written(), b"")

    def test_result_minus_one_after_hangup(self):
        s = self.session
        pending = s.send_command("CHANNEL STATUS")
        self.conn.receive(b"HANGUP\n200 result=-1\n")
        self.failureResultOf(pending, AGIHangup)

    def test_hangup_then_511(self):
        s = self.session
        pending = s.exec_("Playback", "x")
        self.conn.receive(b"HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n")
        self.failureResultOf(pending, AGIHangup)

    def test_hangup_while_idle_and_commands_afterwards(self):
        s = self.session
        self.conn.receive(b"HANGUP\n")
        self.assertTrue(s.hungup)
        for call in [s.answer, lambda: s.set_variable("A", "1"), lambda: s.send_command("NOOP")]:
            self.failureResultOf(call(), AGIHangup)
        self.assertEqual(self.conn.written(), b"")
        self.successResultOf(s.when_hungup())
        self.assertFalse(self.conn.closed)  # the handler decides when it is done

    def test_repeated_hangup_lines(self):
        self.conn.receive(b"HANGUP\nHANGUP\n")
        self.assertTrue(self.session.hungup)

    def test_hangup_instead_of_reply_then_close(self):
        # AGIEXITONHANGUP=yes: HANGUP, then Asterisk closes without a reply.
        s = self.session
        pending = s.get_data("enter", 5000, 4)
        self.conn.receive(b"HANGUP\n")
        self.assertNoResult(pending)
        self.conn.protocol.connectionLost(Failure(Exception("closed")))
        self.failureResultOf(pending, AGIConnectionLost)

    def test_hangup_instead_of_reply_then_silence(self):
        s = self.session
        pending = s.answer()
        self.conn.receive(b"HANGUP\n")
        self.conn.clock.advance(300)
        self.failureResultOf(pending, AGITimeout)
        self.assertTrue(self.conn.aborted)


class ConnectionLostTests(SynchronousTestCase):
    def setUp(self):
        self.handler = Handler()
        self.conn = Connection({"hotline": self.handler})
        self.conn.receive(environment())
        self.session = self.handler.session

    def test_everything_pending_fails(self):
        s = self.session
        hung = s.when_hungup()
        in_flight = s.exec_("Dial", "PJSIP/87650002", 30)
        queued = [s.set_variable("A", "1"), s.get_variable("B")]
        self.conn.protocol.connectionLost(Failure(Exception("reset")))
        self.failureResultOf(in_flight, AGIConnectionLost)
        for d in queued:
            self.failureResultOf(d, AGIConnectionLost)
        self.successResultOf(hung)
        self.assertTrue(s.closed and s.hungup)
        self.failureResultOf(s.answer(), AGIConnectionLost)
        self.assertTrue(issubclass(AGIConnectionLost, AGIHangup))

    def test_when_hungup_after_the_fact(self):
        self.conn.protocol.connectionLost(Failure(Exception("reset")))
        self.successResultOf(self.session.when_hungup())

    def test_cancelled_hangup_waiter(self):
        waiter = self.session.when_hungup()
        waiter.cancel()
        self.failureResultOf(waiter, defer.CancelledError)
        self.conn.receive(b"HANGUP\n")  # no AlreadyCalledError
        self.assertTrue(self.session.hungup)
