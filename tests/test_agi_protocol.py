"""The FastAGI server: environment, routing, handler outcomes."""

from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from switchboard.agi import AGIConnectionLost, AGIHangup, FastAGIFactory

from tests.test_agi_support import CHANNEL, Connection, Handler, environment


def messages(events, level=None):
    return [formatEvent(e) for e in events if level is None or e.get("log_level") == level]


class RoutingTests(SynchronousTestCase):
    def test_routes_to_handler_by_script(self):
        hotline, alarm = Handler(), Handler()
        conn = Connection({"hotline": hotline, "alarm": alarm})
        conn.receive(environment("alarm?kind=9"))
        self.assertEqual(len(alarm.sessions), 1)
        self.assertEqual(hotline.sessions, [])
        self.assertEqual(alarm.session.query, {"kind": "9"})
        self.assertFalse(conn.closed)

    def test_environment_in_pieces(self):
        handler = Handler()
        conn = Connection({"hotline": handler})
        data = environment()
        for i in range(0, len(data), 7):
            self.assertEqual(handler.sessions, [])
            conn.receive(data[i:i + 7])
        self.assertEqual(handler.session.env["channel"], CHANNEL)

    def test_environment_and_hangup_in_one_segment(self):
        handler = Handler()
        conn = Connection({"hotline": handler})
        conn.receive(environment() + b"HANGUP\n")
        self.assertTrue(handler.session.hungup)

    def test_crlf_environment(self):
        handler = Handler()
        conn = Connection({"hotline": handler})
        conn.receive(environment().replace(b"\n", b"\r\n"))
        self.assertEqual(handler.session.env["callerid"], "87650001")
        self.assertEqual(handler.session.script, "hotline")

    def test_malformed_environment_line_is_ignored(self):
        handler = Handler()
        conn = Connection({"hotline": handler})
        conn.receive(environment(extra=["no colon here", ": no key", "agi_extra: a: b"]))
        self.assertEqual(handler.session.env["extra"], "a: b")

    def test_handlers_are_looked_up_per_call(self):
        handlers = {}
        conn = Connection(handlers)
        handler = Handler()
        handlers["hotline"] = handler
        conn.receive(environment())
        self.assertEqual(len(handler.sessions), 1)

    def test_closes_when_handler_finishes(self):
        handler = Handler()
        conn = Connection({"hotline": handler})
        conn.receive(environment())
        d = handler.session.set_variable("SWITCHBOARD_RESULT", "OK")
        conn.receive(b"200 result=1\n")
        self.successResultOf(d)
        self.assertFalse(conn.closed)
        handler.finish()
        self.assertTrue(conn.closed)
        self.assertFalse(conn.aborted)
        self.assertEqual(conn.written(), b'SET VARIABLE "SWITCHBOARD_RESULT" "OK"\n')
        self.failureResultOf(handler.session.answer(), AGIConnectionLost)

    def test_close_waits_for_commands_left_in_flight(self):
        handler = Handler()
        conn = Connection({"hotline": handler})
        conn.receive(environment())
        d = handler.session.verbose("bye")
        handler.finish()
        self.assertFalse(conn.closed)
        conn.receive(b"200 result=1\n")
        self.successResultOf(d)
        self.assertTrue(conn.closed)

    def test_synchronous_and_async_handlers(self):
        seen = []

        def sync(session):
            seen.append(session.script)

        async def coroutine(session):
            value = await session.get_variable("X")
            seen.append(value)

        conn = Connection({"sync": sync})
        conn.receive(environment("sync"))
        self.assertEqual(seen, ["sync"])
        self.assertTrue(conn.closed)

        conn = Connection({"co": coroutine})
        conn.receive(environment("co"))
        self.assertEqual(conn.written(), b'GET VARIABLE "X"\n')
        conn.receive(b"200 result=1 (x)\n")
        self.assertEqual(seen, ["sync", "x"])
        self.assertTrue(conn.closed)


class UnknownScriptTests(SynchronousTestCase):
    def test_noscript(self):
        with capturedLogs() as events:
            conn = Connection({"hotline": Handler()})
            conn.receive(environment("nosuch?x=1"))
        self.assertEqual(conn.written(), b'SET VARIABLE "SWITCHBOARD_RESULT" "NOSCRIPT"\n')
        self.assertFalse(conn.closed)
        conn.receive(b"200 result=1\n")
        self.assertTrue(conn.closed)
        text = messages(events, LogLevel.error)
        self.assertEqual(len(text), 1)
        self.assertIn("'nosuch'", text[0])
        self.assertIn(CHANNEL, text[0])

    def test_noscript_after_hangup_just_closes(self):
        conn = Connection({})
        conn.receive(environment("nosuch") + b"HANGUP\n")
        # The variable was asked for before HANGUP arrived; the reply ends it.
        conn.receive(b"511 Command Not Permitted on a dead channel or intercept routine\n")
        self.assertTrue(conn.closed)

    def test_noscript_when_the_reply_never_comes(self):
        conn = Connection({}, idle_timeout=5)
        conn.receive(environment("nosuch"))
        conn.clock.advance(5)
        self.assertTrue(conn.aborted)


class HandlerFailureTests(SynchronousTestCase):
    def connect(self, handler):
        self.conn = Connection({"hotline": handler})
        with capturedLogs() as self.events:
            self.conn.receive(environment())

    def test_synchronous_exception(self):
        def broken(session):
            raise ZeroDivisionError("boom")

        self.connect(broken)
        self.assertEqual(self.conn.written(), b'SET VARIABLE "SWITCHBOARD_RESULT" "ERROR"\n')
        self.conn.receive(b"200 result=1\n")
        self.assertTrue(self.conn.closed)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        logged = [e for e in self.events if e.get("log_failure") is not None]
        self.assertEqual(len(logged), 1)
        self.assertIn("hotline", formatEvent(logged[0]))
        self.assertIn(CHANNEL, formatEvent(logged[0]))

    def test_failed_deferred(self):
        handler = Handler()
        self.connect(handler)
        with capturedLogs() as events:
            handler.fail(KeyError("no office"))
        self.assertEqual(self.conn.written(), b'SET VARIABLE "SWITCHBOARD_RESULT" "ERROR"\n')
        self.conn.receive(b"200 result=1\n")
        self.assertTrue(self.conn.closed)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
        self.assertEqual(len([e for e in events if e.get("log_failure")]), 1)

    def test_failure_after_hangup_sets_nothing(self):
        handler = Handler()
        self.connect(handler)
        self.conn.receive(b"HANGUP\n")
        handler.fail(RuntimeError("late"))
        self.assertEqual(self.conn.written(), b"")
        self.assertTrue(self.conn.closed)
        self.flushLoggedErrors(RuntimeError)

    def test_error_variable_refused_still_closes(self):
        handler = Handler()
        self.connect(handler)
        handler.fail(RuntimeError("x"))
        self.conn.receive(b"511 Command Not Permitted on a dead channel or intercept routine\n")
        self.assertTrue(self.conn.closed)
        self.flushLoggedErrors(RuntimeError)

    def test_hangup_is_a_normal_end(self):
        handler = Handler()
        self.connect(handler)
        d = handler.session.stream_file("welcome")
        with capturedLogs() as events:
            self.conn.receive(b"200 result=-1 endpos=0\nHANGUP\n")
            d.addCallback(lambda _: None)
            d.chainDeferred(handler.deferred)
        self.assertTrue(self.conn.closed)
        self.assertEqual(self.conn.written(), b'STREAM FILE "welcome" ""\n')
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(messages(events, LogLevel.error), [])
        self.assertEqual(messages(events, LogLevel.critical), [])
        self.assertTrue(any("ended" in m for m in messages(events, LogLevel.info)))

    def test_hangup_error_raised_without_hangup_line(self):
        handler = Handler()
        self.connect(handler)
        handler.fail(AGIHangup("511"))
        self.assertEqual(self.conn.written(), b"")
        self.assertTrue(self.conn.closed)


def test_clock_defaults_to_reactor():
    from twisted.internet import reactor

    assert FastAGIFactory({}).clock is reactor
