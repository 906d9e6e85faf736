"""
The staff commands check, route and calls, run with a fake context.
"""

from __future__ import annotations

import argparse
import io
import os
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from switchboard.calllog import Call, CallLog, CallRecord
from switchboard.hotline import cli
from switchboard.storage import Base
from tests import databases
from tests.test_hotline_support import PLAN, ROUTING, SHANGHAI, SyncDatabase

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(PROJECT, "config", "routing.yaml")


def fake_speech(version="fake 1.0"):
    """The real renderer with an engine that never runs (C{None}: not installed)."""
    import tempfile
    from twisted.internet import task
    from switchboard.speech import Speech
    from tests.test_speech_render import FakeEngine
    return Speech(tempfile.gettempdir(), engine=FakeEngine(version), reactor=task.Clock())


class Context:
    """What switchboard.cli.Context offers a subcommand."""

    def __init__(self, routing=SAMPLE, database=None, today=date(2026, 6, 1), speech=None):
        self.speech = speech if speech is not None else fake_speech()
        self.settings = SimpleNamespace(routing=routing,
                                        trunks={"default": "PJSIP/{number}",
                                                "outside": "PJSIP/{number}@trunk"})
        self.numbers = PLAN
        self.tz = SHANGHAI
        self.stdout = io.StringIO()
        self._database = database
        self._today = today

    def today(self):
        return self._today

    def database(self):
        return self._database

    def output(self):
        return self.stdout.getvalue()


def parse(*argv):
    parser = argparse.ArgumentParser(prog="switchboard")
    cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def run(context, *argv):
    args = parse(*argv)
    return args.handler(args, context)


@pytest.fixture
def routing_file(tmp_path):
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING, encoding="utf-8")
    return str(path)


def test_register_adds_the_commands():
    args = parse("route", "--at", "2026-10-01 21:30", "--digits", "2", "--caller", "87650001")
    assert (args.at, args.digits, args.caller, args.file) == (
        "2026-10-01 21:30", "2", "87650001", None)
    assert parse("check").file is None
    assert parse("calls", "--limit", "5").limit == 5


def test_check_good_file():
    context = Context()
    assert run(context, "check") == 0
    assert context.output() == (
        f"{SAMPLE}: OK: 2 hotline number(s), 2 menu(s), 14 destination(s), 6 direct-dial "
        "code(s), 7 holiday(s) (33 day(s)), 6 working-day exception(s), 12 text prompt(s)\n")


def test_check_notes_holidays_not_yet_listed():
    """From November, next year's holidays are due; in the new year, that year's."""
    summary = (f"{SAMPLE}: OK: 2 hotline number(s), 2 menu(s), 14 destination(s), 6 "
               "direct-dial code(s), 7 holiday(s) (33 day(s)), 6 working-day exception(s), "
               "12 text prompt(s)")
    for today, years in ((date(2026, 11, 23), "2027"), (date(2027, 11, 1), "2027, 2028")):
        context = Context(today=today)
        assert run(context, "check") == 0
        assert context.output().splitlines() == [
            summary,
            f"{SAMPLE}: note: holidays: none listed for {years}: until they are added, public "
            f"holidays in {years} are served as ordinary days and working days (调休) as "
            "weekends; add them when the State Council publishes them (usually in November)",
        ]


def test_check_bad_file_lists_every_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(ROUTING.replace("[87650001, 87650002]", "[87650001, 0591-876543]")
                    .replace("options: {1: notices", "options: {1: notice"), encoding="utf-8")
    context = Context()
    assert run(context, "check", str(path)) == 1
    assert context.output().splitlines() == [
        f"{path}:16:18: menus.sub.options.1: unknown destination 'notice' "
        "(did you mean 'notices'?)",
        f"{path}:29:24: destinations.committee.phones[1]: '0591-876543' is not a valid CN "
        "phone number (write it like 0591-87654321, 87654321, +86 591 8765 4321, a mobile "
        "13812345678, or a channel like PJSIP/front-desk)",
        f"{path}: 2 problem(s), not valid",
    ]


def test_route_prints_the_decision():
    context = Context()
    assert run(context, "route", "--at", "2026-10-01 21:30", "--digits", "2",
               "--caller", "87650001") == 0
    assert context.output().splitlines() == [
        "call at 2026-10-01 21:30 (Thursday, Asia/Shanghai) from +8659187650001",
        '  greeting: say "您好，这里是榕荫社区服务热线。" (zh), else hello-world',
        '  menu main (主菜单): prompt say "居委会请按1，社区卫生服务中心请按2，社区警务室请按3，'
        '物业和便民服务请按4，停水停电通知请按9，人工服务请按0。知道科室号码的，请直接拨号。" (zh), '
        "else vm-enter-num-to-call",
        "  pressed 2: option 2 -> 社区卫生服务中心 [health]",
        "  社区卫生服务中心 [health]: closed at 21:30: Thursday 2026-10-01 is a holiday (国庆节) "
        "with holiday hours, open 08:30-11:30",
        "  社区卫生服务中心 [health] is closed -> its closed destination 卫生服务中心下班通知 "
        "[health_closed]",
        "plan:",
        '  1. announcement 卫生服务中心下班通知 [health_closed]: play say "社区卫生服务中心已经下班。'
        '急症请拨打幺二零。" (zh), else vm-nobodyavail, then hang up'
        "   [社区卫生服务中心 [health] is closed]",
    ]


def test_route_notes_a_year_with_no_holidays_listed():
    context = Context()
    assert run(context, "route", "--at", "2027-01-01 10:00", "--digits", "1") == 0
    lines = context.output().splitlines()
    assert lines[:2] == [
        "call at 2027-01-01 10:00 (Friday, Asia/Shanghai)",
        "  note: no holidays are listed for 2027: 2027-01-01 is taken as an ordinary day",
    ]
    assert "  居委会 [committee]: open: Friday 2027-01-01, 08:30-12:00" in lines


def test_route_with_another_file(routing_file):
    context = Context()
    assert run(context, "route", "--file", routing_file, "--at", "2026-10-08 10:00",
               "--digits", "802") == 0
    assert "pressed 802: direct-dial code 802 -> 社区卫生服务中心 [health]" in context.output()


def test_route_without_time_uses_now():
    context = Context()
    assert run(context, "route", "--digits", "0") == 0
    assert "pressed 0: 0 for the operator" in context.output()


@pytest.mark.parametrize("argv, message", [
    (("--at", "2026-10-01"), "--at '2026-10-01': write the local time as \"YYYY-MM-DD HH:MM\""),
    (("--digits", "1a"), "--digits '1a': keys are 0-9, * and #"),
])
def test_route_refuses_bad_arguments(argv, message):
    context = Context()
    assert run(context, "route", *argv) == 2
    assert context.output() == message + "\n"


def test_route_refuses_a_bad_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("hotline: {}\n", encoding="utf-8")
    context = Context()
    assert run(context, "route", "--file", str(path), "--digits", "1") == 1
    assert context.output().splitlines()[-1] == f"{path}: 4 problem(s): fix them first"


@pytest.mark.database
def test_calls_lists_recent_calls(tmp_path):
    database = SyncDatabase(databases.url(tmp_path, "calls"))
    Base.metadata.create_all(database.engine, tables=[CallRecord.__table__])
    start = datetime(2026, 10, 8, 2, 0, tzinfo=timezone.utc)
    log = CallLog(database)
    log.record(Call(started=start, caller="+8659187650001", hotline="12345",
                    path=["menu main", "pressed 1"], destination="社区卫生服务中心",
                    outcome="answered", ended=start + timedelta(seconds=75)))
    log.record(Call(started=start + timedelta(minutes=5), caller=None, outcome="abandoned",
                    path=["menu main", "caller hung up"]))
    context = Context(database=database)
    assert run(context, "calls", "--limit", "10") == 0
    assert context.output().splitlines() == [
        "2026-10-08 10:05:00  unknown          abandoned    -  (-)",
        "    menu main | caller hung up",
        "2026-10-08 10:00:00  +8659187650001   answered     社区卫生服务中心  (75 s)",
        "    menu main | pressed 1",
    ]
    database.close()


@pytest.mark.database
def test_calls_shows_a_caller_chosen_text_without_its_control_characters(tmp_path):
    database = SyncDatabase(databases.url(tmp_path, "calls"))
    Base.metadata.create_all(database.engine, tables=[CallRecord.__table__])
    start = datetime(2026, 10, 8, 2, 0, tzinfo=timezone.utc)
    CallLog(database).record(Call(started=start, caller="8765\x1b[2J\n0001", outcome="abandoned",
                                  path=["menu main", "name x\rforged"]))
    context = Context(database=database)
    assert run(context, "calls") == 0
    assert context.output().splitlines() == [
        "2026-10-08 10:00:00  8765\\x1b[2J\\x0a0001 abandoned    -  (-)",
        "    menu main | name x\\x0dforged",
    ]
    database.close()


@pytest.mark.database
def test_calls_when_there_are_none(tmp_path):
    database = SyncDatabase(databases.url(tmp_path, "calls"))
    Base.metadata.create_all(database.engine, tables=[CallRecord.__table__])
    context = Context(database=database)
    assert run(context, "calls") == 0
    assert context.output() == "no hotline calls recorded\n"
    database.close()


def test_check_locates_text_that_cannot_be_spoken(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(ROUTING.replace("prompt: sub-menu", 'prompt: {say: "请按☎键", voice: zh}')
                    .replace("greeting: hello,", "greeting: {say: hi, voice: xx},"),
                    encoding="utf-8")
    context = Context()
    assert run(context, "check", str(path)) == 1
    out = context.output().splitlines()
    assert out[0].startswith(f"{path}:1:47: hotline.greeting.say: unknown voice 'xx'")
    assert out[1].startswith(f"{path}:15:19: menus.sub.prompt.say: voice 'zh' cannot speak ")
    assert "☎" in out[1] and "at character 3" in out[1]
    assert out[2:] == [f"{path}: 2 problem(s), not valid"]


def test_check_without_the_speech_engine_names_each_text_prompt(tmp_path):
    context = Context(speech=fake_speech(version=None))
    assert run(context, "check") == 1
    out = context.output().splitlines()
    assert len(out) == 13
    assert out[0] == (f"{SAMPLE}:61:13: hotline.greeting: text cannot be rendered here "
                      "(fake-engine is not installed): callers would hear hello-world")
    assert out[-1] == (f"{SAMPLE}: 12 text prompt(s) cannot be spoken: install the speech "
                       "engine (see the README)")


def test_route_shows_the_text_of_retry_and_sorry_prompts(tmp_path):
    context = Context()
    assert run(context, "route", "--at", "2026-10-08 10:00", "--digits", "7") == 0
    out = context.output()
    assert '  plays say "对不起，没有这个选项。" (zh), else pm-invalid-option, then menu main ' \
           "again\n" in out
    assert '  plays say "没有听到您按键。" (zh), then menu main again\n' in out
