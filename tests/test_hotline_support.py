"""
Helpers for the routing and hotline tests (no tests here): a small routing
file, a fake FastAGI session that implements the documented AGISession
methods with scripted replies, a reactor whose thread pool runs jobs when
the test says so, and a synchronous database.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from twisted.internet import defer
from twisted.python.failure import Failure
from zope.interface import implementer

from switchboard.agi.errors import AGIHangup
from switchboard.agi.interfaces import IAGISession
from switchboard.dialing import Dialer
from switchboard.numbers import NumberPlan
from switchboard.routing import schema
from switchboard.storage import Database

PLAN = NumberPlan("CN", "591")
SHANGHAI = ZoneInfo("Asia/Shanghai")
DIALER = Dialer(PLAN, {"default": "PJSIP/{number}", "outside": "PJSIP/{number}@trunk"})

ROUTING = """\
hotline: {numbers: ["12345"], greeting: hello, menu: main, operator: operator}
timezone: Asia/Shanghai
holidays:
  - {date: 2026-10-01, to: 2026-10-07, name: 国庆节}
working_days: [{date: 2026-10-10, name: 国庆节调休}]
defaults: {overflow: [duty, voicemail], ring_timeout: 20}
menus:
  main:
    label: 主菜单
    prompt: main-menu
    options: {1: health, 2: committee, 3: sub, 4: police, 5: shop}
    retries: 2
  sub:
    label: 便民服务
    prompt: sub-menu
    options: {1: notices, "*": main}
destinations:
  health:
    type: department
    label: 社区卫生服务中心
    code: "802"
    phones: [0591-87650011]
    hours: {mon-fri: ["08:00-12:00", "14:30-17:30"]}
    closed: health_closed
  committee:
    type: department
    label: 居委会
    code: "801"
    phones: [87650001, 87650002]
    overflow: [operator]
  police:
    type: department
    label: 警务室
    phones: [87650031, 87650032]
    strategy: hunt
    ring_timeout: 15
    overflow: [voicemail]
  shop:
    type: service
    label: 鱼丸店
    number: 0591-87650041
    trunk: outside
    overflow: [voicemail]
  duty: {type: department, label: 值班电话, phones: [87650190]}
  operator: {type: operator, label: 总机, phones: [87650100], overflow: []}
  voicemail: {type: voicemail, label: 留言箱, mailbox: 100@switchboard}
  health_closed: {type: announcement, label: 下班通知, sound: health-closed}
  notices: {type: announcement, label: 通知, sound: notices}
"""


def routing(text: str = ROUTING, path: str = "routing.yaml"):
    """A validated routing from YAML text."""
    return schema.loads(textwrap.dedent(text), path, PLAN)


def local(text: str) -> datetime:
    """C{"2026-10-08 10:00"} in Shanghai."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI)


def seconds(text: str) -> float:
    """The POSIX time of a Shanghai wall-clock time."""
    return local(text).astimezone(timezone.utc).timestamp()


class Store:
    """Just the part of RoutingStore the handler reads."""

    def __init__(self, current):
        self.current = current


class Recorder:
    """A call log that keeps the calls."""

    def __init__(self):
        self.calls = []

    def record(self, call):
        self.calls.append(call)


# Scripted replies for FakeSession.
class Hangup:
    """
    The caller hangs up during this command. C{noticed=False}: Asterisk's
    C{-1} reply came before its C{HANGUP} line, so the session does not yet
    know (the next command is still sent).
    """

    def __init__(self, noticed=True):
        self.noticed = noticed


HANGUP = Hangup()


@implementer(IAGISession)
class FakeSession:
    """
    Implements the documented AGISession commands. Replies are scripted
    per command (C{get_data}, C{wait_for_digit}, C{stream_file}, C{exec_})
    and per variable for C{get_variable}; a reply may be a value, an
    exception, a L{Hangup}, or a Deferred (fired by the test). Every
    command is logged in C{commands} as C{(name, args...)}.
    """

    def __init__(self, env=None, *, variables=None, **replies):
        self.env = {"channel": "PJSIP/87650001-00000001", "callerid": "87650001",
                    "uniqueid": "1790000000.1", "extension": "12345", "dnid": "12345"}
        self.env.update(env or {})
        self.script, self.query, self.args = "hotline", {}, []
        self.hungup = False
        self.commands = []
        self.replies = {name: list(values) for name, values in replies.items()}
        self.variables = {name: list(values) for name, values in (variables or {}).items()}
        self.set = {}
        self._hangup_waiters = []

    def _reply(self, name, args, queue, default):
        self.commands.append((name,) + tuple(args))
        if self.hungup:
            return defer.fail(AGIHangup(f"{name}: the caller hung up"))
        value = queue.pop(0) if queue else default
        if isinstance(value, defer.Deferred):
            return value
        if isinstance(value, Hangup):
            if value.noticed:
                self.caller_hangs_up()
            return defer.fail(AGIHangup(f"{name}: result=-1"))
        if isinstance(value, BaseException):
            return defer.fail(Failure(value))
        return defer.succeed(value)

    def caller_hangs_up(self):
        self.hungup = True
        for d in self._hangup_waiters:
            d.callback(None)
        self._hangup_waiters = []

    def when_hungup(self):
        if self.hungup:
            return defer.succeed(None)
        d = defer.Deferred()
        self._hangup_waiters.append(d)
        return d

    def named(self, name):
        return [c for c in self.commands if c[0] == name]

    # The documented commands

    def answer(self):
        return self._reply("answer", (), self.replies.get("answer", []), None)

    def hangup(self):
        d = self._reply("hangup", (), [], None)
        self.hungup = True
        return d

    def stream_file(self, name, escape_digits=""):
        return self._reply("stream_file", (name, escape_digits),
                           self.replies.setdefault("stream_file", []), "")

    def stream_file_result(self, name, escape_digits="", offset=0):
        from switchboard.agi.reply import Playback
        return self._reply("stream_file_result", (name, escape_digits),
                           self.replies.setdefault("stream_file_result", []),
                           Playback("", 8000, False))

    def get_data(self, prompt, timeout_ms=None, max_digits=None):
        return self._reply("get_data", (prompt, timeout_ms, max_digits),
                           self.replies.setdefault("get_data", []), "")

    def get_option(self, prompt, escape_digits, timeout_ms=None):
        return self._reply("get_option", (prompt, escape_digits, timeout_ms), [], "")

    def wait_for_digit(self, timeout_ms):
        return self._reply("wait_for_digit", (timeout_ms,),
                           self.replies.setdefault("wait_for_digit", []), "")

    def say_digits(self, digits, escape_digits=""):
        return self._reply("say_digits", (digits, escape_digits), [], "")

    def say_number(self, number, escape_digits=""):
        return self._reply("say_number", (number, escape_digits), [], "")

    def set_variable(self, name, value):
        d = self._reply("set_variable", (name, value), [], None)
        if not self.hungup:
            self.set[name] = value
        return d

    def get_variable(self, name):
        return self._reply("get_variable", (name,), self.variables.setdefault(name, []), None)

    def get_full_variable(self, expression):
        return self._reply("get_full_variable", (expression,), [], None)

    def channel_status(self):
        return self._reply("channel_status", (), [], 6)

    def database_put(self, family, key, value):
        return self._reply("database_put", (family, key, value), [], None)

    def database_get(self, family, key):
        return self._reply("database_get", (family, key), [], None)

    def database_del(self, family, key):
        return self._reply("database_del", (family, key), [], None)

    def exec_(self, app, *args):
        return self._reply("exec_", (app,) + args, self.replies.setdefault("exec_", []), 0)

    def verbose(self, message, level=1):
        return self._reply("verbose", (message, level), [], None)


class FakePool:
    """A thread pool whose jobs run when the test calls L{run}."""

    def __init__(self):
        self.jobs = []

    def callInThreadWithCallback(self, on_result, f, *args, **kwargs):
        self.jobs.append((on_result, f, args, kwargs))

    def run(self):
        while self.jobs:
            on_result, f, args, kwargs = self.jobs.pop(0)
            try:
                result = f(*args, **kwargs)
            except BaseException:
                on_result(False, Failure())
            else:
                on_result(True, result)


class FakeReactor:
    """Enough of a reactor for deferToThreadPool: a pool, callFromThread."""

    def __init__(self):
        self.pool = FakePool()
        self.from_thread = 0

    def getThreadPool(self):
        return self.pool

    def callFromThread(self, f, *args, **kwargs):
        self.from_thread += 1
        f(*args, **kwargs)


class SyncDatabase(Database):
    """
    A real Database whose C{run} works at once, in the caller's thread;
    C{fail_next} makes that many calls fail (as a locked database does).
    """

    fail_next = 0

    def run(self, work):
        if self.fail_next:
            self.fail_next -= 1
            return defer.fail(RuntimeError("database is locked"))
        try:
            with self.sessions.begin() as session:
                return defer.succeed(work(session))
        except Exception:
            return defer.fail()
