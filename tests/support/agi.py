"""
A fake FastAGI session for the handlers' tests: it provides L{IAGISession}
(checked in C{tests/test_agi_interfaces.py}) and the rest of the
documented commands, with scripted replies and a log of every command.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.python.failure import Failure
from zope.interface import implementer

from switchboard.agi.errors import AGIHangup
from switchboard.agi.interfaces import IAGISession
from switchboard.agi.reply import Playback


class Hangup:
    """
    A scripted reply: the caller hangs up during this command.
    C{noticed=False}: Asterisk's C{-1} reply came before its C{HANGUP}
    line, so the session does not yet know (the next command is still sent).
    """

    def __init__(self, noticed=True):
        self.noticed = noticed


HANGUP = Hangup()

# Commands that read a key: without a scripted reply, the next of C{keys}.
_READ_KEYS = ("get_data", "get_option", "wait_for_digit")


@implementer(IAGISession)
class FakeSession:
    """
    An L{AGISession} stand-in.

    Every command is logged in C{commands} as C{(name, args...)}, the name
    the real method's and the arguments as the handler passed them, with
    the defaults filled in (C{("stream_file", "hello", "")}).

    How the call goes is scripted:
      - C{replies} (keyword arguments named after a command: C{get_data},
        C{stream_file}, C{stream_file_result}, C{wait_for_digit}, C{exec_},
        C{answer}): its successive replies. A reply may be a value, an
        exception, a L{Hangup}, or a Deferred (fired by the test).
      - C{keys}: what the caller presses, one per question ("" for none),
        for the commands that read a key (C{get_data}, C{get_option},
        C{wait_for_digit}) once their scripted replies are used up; with
        C{pressed_early}, a prompt whose escape digits hold the next key is
        cut by it.
      - C{variables}: the channel's. A value is read as it is (and
        C{set_variable} changes it); a list is a series of successive
        values (then L{None}), e.g. C{DIALSTATUS} after each C{Dial}.
        What the handler set is also in C{set}.
      - C{exec_results}: per application, the variables it leaves set
        (C{{"ConfBridge": {"CONFBRIDGE_RESULT": "DTMF"}}}); C{on_exec(app,
        args)} is called after each C{exec_}; C{on_wait(n)} before the
        C{n}th C{wait_for_digit}.
      - C{hangup_after}: the caller hangs up after that many commands;
        L{caller_hangs_up}: now. From then on every command fails with
        L{AGIHangup}.
      - C{unplayable}: sound names Asterisk cannot play
        (C{stream_file_result} says C{failed}).
    """

    def __init__(self, env=None, *, variables=None, keys=(), hangup_after=None,
                 exec_results=None, unplayable=(), **replies):
        self.env = dict(env or {})
        self.script, self.query, self.args = self.env.get("network_script", ""), {}, []
        self.hungup = False
        self.commands: list = []
        self.replies = {name: list(values) for name, values in replies.items()}
        self.variables = {name: list(value) if isinstance(value, (list, tuple)) else value
                          for name, value in (variables or {}).items()}
        self.set: dict = {}
        self.keys = list(keys)
        self.pressed_early = False
        self.hangup_after = hangup_after
        self.exec_results = exec_results or {}
        self.on_exec = None
        self.on_wait = None
        #: Waits for a key (with none scripted) after which the caller hangs up.
        self.patience = 20
        self.unplayable = set(unplayable)
        self._hangup_waiters: list = []

    # The script

    def named(self, name) -> list:
        """The commands logged under C{name}."""
        return [c for c in self.commands if c[0] == name]

    def caller_hangs_up(self):
        self.hungup = True
        waiters, self._hangup_waiters = self._hangup_waiters, []
        for d in waiters:
            d.callback(None)

    def when_hungup(self):
        if self.hungup:
            return defer.succeed(None)
        d = defer.Deferred()
        self._hangup_waiters.append(d)
        return d

    def _next_key(self, escape_digits=None) -> str:
        """The caller's next key; for a prompt (C{escape_digits}), only one that cuts it."""
        if escape_digits is None:
            return self.keys.pop(0) if self.keys else ""
        if self.pressed_early and escape_digits and self.keys and self.keys[0] in escape_digits:
            return self.keys.pop(0)
        return ""

    def _reply(self, name, args, default=None, *, scripted=True):
        """Log the command; its scripted reply, else C{default()}."""
        self.commands.append((name,) + tuple(args))
        if not self.hungup and self.hangup_after is not None \
                and len(self.commands) > self.hangup_after:
            self.caller_hangs_up()
        if self.hungup:
            return defer.fail(AGIHangup(f"{name}: the caller hung up"))
        queue = self.replies.get(name) if scripted else None
        if queue:
            value = queue.pop(0)
        elif name in _READ_KEYS:
            value = self._next_key()
        else:
            value = default() if callable(default) else default
        if isinstance(value, defer.Deferred):
            return value
        if isinstance(value, Hangup):
            if value.noticed:
                self.caller_hangs_up()
            return defer.fail(AGIHangup(f"{name}: result=-1"))
        if isinstance(value, BaseException):
            return defer.fail(Failure(value))
        return defer.succeed(value)

    # The commands of IAGISession

    def answer(self):
        return self._reply("answer", ())

    def hangup(self):
        d = self._reply("hangup", ())
        self.hungup = True
        return d

    def stream_file(self, name, escape_digits=""):
        return self._reply("stream_file", (name, escape_digits),
                           lambda: self._next_key(escape_digits))

    def stream_file_result(self, name, escape_digits="", offset=0):
        def played():
            if name in self.unplayable:
                return Playback("", offset, True)
            return Playback(self._next_key(escape_digits), 8000, False)

        return self._reply("stream_file_result", (name, escape_digits), played)

    def get_data(self, prompt, timeout_ms=None, max_digits=None):
        return self._reply("get_data", (prompt, timeout_ms, max_digits))

    def get_option(self, prompt, escape_digits, timeout_ms=None):
        return self._reply("get_option", (prompt, escape_digits, timeout_ms))

    def wait_for_digit(self, timeout_ms):
        n = len(self.named("wait_for_digit")) + 1
        if self.on_wait is not None:
            self.on_wait(n)
        if n > self.patience and not self.keys and not self.replies.get("wait_for_digit"):
            self.caller_hangs_up()  # a caller who waited that long for nothing
        return self._reply("wait_for_digit", (timeout_ms,))

    def say_digits(self, digits, escape_digits=""):
        return self._reply("say_digits", (digits, escape_digits), "")

    def say_number(self, number, escape_digits=""):
        return self._reply("say_number", (number, escape_digits), "")

    def set_variable(self, name, value):
        d = self._reply("set_variable", (name, value))
        if not self.hungup:
            self.set[name] = value
            self.variables[name] = value
        return d

    def get_variable(self, name):
        def value():
            current = self.variables.get(name)
            if isinstance(current, list):
                return current.pop(0) if current else None
            return current

        return self._reply("get_variable", (name,), value)

    def exec_(self, app, *args):
        d = self._reply("exec_", (app,) + args, 0)
        if self.on_exec:
            self.on_exec(app, args)
        self.variables.update(self.exec_results.get(app, {}))
        return d

    # More of the documented commands

    def get_full_variable(self, expression):
        return self._reply("get_full_variable", (expression,), scripted=False)

    def channel_status(self):
        return self._reply("channel_status", (), 6, scripted=False)

    def database_put(self, family, key, value):
        return self._reply("database_put", (family, key, value), scripted=False)

    def database_get(self, family, key):
        return self._reply("database_get", (family, key), scripted=False)

    def database_del(self, family, key):
        return self._reply("database_del", (family, key), scripted=False)

    def say_alpha(self, text, escape_digits=""):
        return self._reply("say_alpha", (text, escape_digits), "", scripted=False)

    def verbose(self, message, level=1):
        return self._reply("verbose", (message, level), scripted=False)
