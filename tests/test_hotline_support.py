"""
Helpers for the routing and hotline tests (no tests here): a small routing
file, the shared fake FastAGI session set up as a call to the hotline, a reactor whose thread pool runs jobs when
the test says so, and a synchronous database.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from twisted.internet import defer
from twisted.python.failure import Failure

from switchboard.dialing import Dialer
from switchboard.numbers import NumberPlan
from switchboard.routing import schema
from switchboard.storage import Database
from tests.support import agi
from tests.support.agi import HANGUP, Hangup  # noqa: F401  (scripted replies of the tests)

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


# A resident's call to the hotline, as Asterisk describes it.
HOTLINE_CALL = {"channel": "PJSIP/87650001-00000001", "callerid": "87650001",
                "uniqueid": "1790000000.1", "extension": "12345", "dnid": "12345",
                "network_script": "hotline"}


def FakeSession(env=None, **script):
    """
    The shared fake session (L{tests.support.agi.FakeSession}) of a call to
    the hotline: C{env} is laid over L{HOTLINE_CALL}.
    """
    return agi.FakeSession({**HOTLINE_CALL, **(env or {})}, **script)


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
