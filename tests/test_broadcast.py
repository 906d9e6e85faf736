"""
The voice broadcast (broadcast/): campaigns written before any call, the
retry schedule, quiet hours, pause/resume/cancel, capacity and the yield to
a #9's urgent calls, restarts, the FastAGI script, the staff's commands.
Everything on task.Clock and a fake call placer; the database is a real
SQLite file whose work runs on the test's thread.
"""

from __future__ import annotations

import csv
import io
import os
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from twisted.internet import defer, task

from broadcast import store
from broadcast.config import BroadcastSettings, parse_hours
from broadcast.dispatcher import CONTEXT, Dispatcher
from broadcast.handler import BroadcastHandler
from broadcast.models import Attempt, Campaign, Delivery
from switchboard import migrations
from switchboard.community.registry import HouseholdData, Registry
from switchboard.community.targets import TargetError, select_households
from switchboard.dialing import Dialer
from switchboard.numbers import NumberPlan
from switchboard.ringgroup import AMICallPlacer, RingEngine, Trunk  # noqa: F401
from switchboard.ringgroup.testing import FakeCallPlacer
from switchboard.storage import Database
from tests.support.agi import HANGUP, FakeSession
from tests import databases

pytestmark = pytest.mark.database

PLAN = NumberPlan("CN", "591")
DIALER = Dialer(PLAN, {"default": "PJSIP/{number}"})
TZ = ZoneInfo("Asia/Shanghai")
# 2026-12-03 10:00 in the community: not quiet hours.
MORNING = datetime(2026, 12, 3, 10, 0, tzinfo=TZ).timestamp()


def number(n: int) -> str:
    return f"+865918765{n:04d}"


class FakeSpeech:
    """Renders at once: the sound name is the text's."""

    def __init__(self):
        self.rendered = []

    def render(self, text, voice=None):
        self.rendered.append(text)
        return defer.succeed(f"tts/{abs(hash(text)) % 10 ** 8}")


class Lab:
    """A dispatcher on a fake placer, a clock and a real (synchronous) database."""

    def __init__(self, tmp_path, households=6, *, trunk_lines=None, speech=None, texts=None,
                 **settings):
        self.path = databases.url(tmp_path, "bc")
        self.database = Database(self.path)
        migrations.upgrade(self.database.engine)
        self.database.run = self.run
        self.clock = task.Clock()
        self.clock.advance(MORNING)
        registry = Registry(self.database, PLAN)
        registry.store([HouseholdData(numbers=[number(i)], community="Hualin",
                                      building=str(1 + (i - 1) // 2), room=f"{i}01")
                        for i in range(1, households + 1)])
        values = dict(lines=3, retries=2, retry_after=60.0, ring_timeout=30.0)
        values.update(settings)
        self.settings = BroadcastSettings(**values)
        self.calls = FakeCallPlacer()
        self.trunk = Trunk(self.clock, lines=trunk_lines)
        self.speech = FakeSpeech() if speech is None else speech
        self.texts = texts
        self.dispatcher = None
        self.start()

    def run(self, work):
        with self.database.sessions.begin() as session:
            return defer.succeed(work(session))

    def start(self):
        """A (new) server: a dispatcher on the same database and phones."""
        placer = self.trunk.placer(self.calls, on_yield=lambda c: self.dispatcher.yield_line(c))
        self.engine = RingEngine(placer, self.clock)
        self.dispatcher = Dispatcher(self.database, self.engine, self.settings, DIALER, TZ,
                                     clock=self.clock, speech=self.speech, trunk=self.trunk,
                                     poll=1.0, caller_number="12345", texts=self.texts)
        self.handler = BroadcastHandler(self.dispatcher, plays=self.settings.plays, wait=5.0)
        self.dispatcher.start()

    def send(self, to="all", priority="normal", text="明天九点停水", at=None, channel="voice"):
        targets = select_households(self.database, PLAN, to)
        now = datetime.fromtimestamp(self.clock.seconds(), timezone.utc).replace(tzinfo=None)
        start = now if at is None else at
        with self.database.sessions.begin() as session:
            return store.create(session, text=text, recording=None, priority=priority,
                                target=to, targets=targets, start_at=start, now=now,
                                channel=channel)

    def tick(self, seconds=1.0):
        self.clock.advance(seconds)

    def ringing(self):
        return self.calls.pending()

    def deliveries(self, campaign_id):
        with self.database.session() as session:
            return {d.number: (d.state, d.attempts, d.outcome) for d in session.execute(
                select(Delivery).where(Delivery.campaign_id == campaign_id)).scalars()}

    def attempts(self):
        with self.database.session() as session:
            return [(a.leg, a.outcome) for a in session.execute(
                select(Attempt).order_by(Attempt.id)).scalars()]

    def status(self, campaign_id):
        with self.database.session() as session:
            return session.get(Campaign, campaign_id).status

    def answer(self, call, keys, hangup_after=None):
        """The household answers C{call} and presses C{keys}; the AGI script runs."""
        call.finish("answered", channel=f"PJSIP/{call.channel}-1")
        session = FakeSession(variables=dict(call.variables), keys=list(keys),
                              hangup_after=hangup_after)
        d = self.handler(session)
        self.dispatcher.note_hangup(call.channel_id)  # the call ends
        return session, d

    def close(self):
        self.dispatcher.stop()
        self.database.close()


@pytest.fixture
def lab(tmp_path):
    made = []

    def make(*args, **kwargs):
        made.append(Lab(tmp_path, *args, **kwargs))
        return made[-1]

    yield make
    for one in made:
        one.close()


def test_a_campaign_and_each_attempt_are_written_before_any_call(lab):
    one = lab()
    seen = []

    def placing(call):
        # At the moment of the originate, its attempt and delivery are in the database.
        attempt = int(call.variables["SWITCHBOARD_ATTEMPT"])
        with one.database.session() as session:
            row = session.get(Attempt, attempt)
            seen.append((row.leg, row.delivery.state, row.outcome))

    one.calls.on_originate = placing
    cid = one.send()
    assert one.calls.calls == []
    assert one.status(cid) == "scheduled"
    one.tick()
    assert one.status(cid) == "running"
    assert len(one.calls.calls) == 3                       # lines: 3
    assert all(call.channel_id.startswith(leg) and state == "calling" and outcome is None
               for call, (leg, state, outcome) in zip(one.calls.calls, seen))
    call = one.calls.calls[0]
    assert call.kwargs["context"] == CONTEXT and call.kwargs["exten"] == "s"
    assert call.channel == "PJSIP/87650001"
    assert call.variables["SWITCHBOARD_SOUND"].startswith("tts/")
    assert "SWITCHBOARD_AGI" not in call.variables       # the dialplan's list
    assert one.speech.rendered[0] == "明天九点停水"


def test_a_call_is_answered_first_by_the_instance_that_placed_it(lab):
    # Two instances share the dialplan's list; the one tracking the call
    # hears the 1 (the dialplan then tries the list: broadcast.conf).
    one = lab()
    one.dispatcher.fastagi = "agi://10.0.0.6:4573"
    one.send()
    one.tick()
    assert {c.variables["SWITCHBOARD_AGI"] for c in one.calls.calls} == {"agi://10.0.0.6:4573"}


def test_one_heard_is_never_called_again_and_two_repeats(lab):
    one = lab(households=2)
    cid = one.send()
    one.tick()
    first, second = one.ringing()
    session, d = one.answer(first, ["1"])
    assert d.result == "heard"
    assert ("set_variable", "SWITCHBOARD_RESULT", "OK") in session.commands
    session, d = one.answer(second, ["2", "1"])
    assert d.result == "heard"
    played = [c[1] for c in session.named("stream_file_result")]
    notice = second.variables["SWITCHBOARD_SOUND"]
    assert played.count(notice) == 2                        # the notice, then again
    assert one.deliveries(cid) == {number(1): ("heard", 0, "heard"),
                                   number(2): ("heard", 0, "heard")}
    assert one.status(cid) == "done"
    one.tick(3600)
    assert len(one.calls.calls) == 2                        # nobody called again
    with one.database.session() as session:
        assert [a.repeats for a in session.execute(select(Attempt)).scalars()] == [0, 1]


def test_a_line_that_comes_free_is_taken_again_at_once_not_at_the_next_poll(lab):
    one = lab(households=3, lines=1)
    one.send()
    one.tick()
    (first,) = one.ringing()
    one.tick(0.5)                                           # mid-poll
    session, d = one.answer(first, ["1"])
    assert d.result == "heard" and one.ringing() == []
    one.clock.advance(0.05)                                 # not the poll's 0.5 s more
    (second,) = one.ringing()
    assert second.channel != first.channel
    one.clock.advance(0.05)
    assert len(one.calls.calls) == 2                        # one line: nothing more


def test_busy_and_no_answer_are_called_again_after_retry_after_then_given_up(lab):
    one = lab(households=1, retries=2, retry_after=60.0)
    cid = one.send()
    one.tick()
    times = []
    for outcome in ("busy", "no-answer", "busy"):
        (call,) = one.ringing()
        times.append(one.clock.seconds())
        call.finish(outcome)
        one.tick(59)
        assert one.ringing() == []
        one.tick(1)
    assert [t - times[0] for t in times] == [0, 60, 120]   # retry_after after each
    assert one.ringing() == []
    assert one.deliveries(cid) == {number(1): ("failed", 3, "busy")}
    assert one.status(cid) == "done"
    one.tick(3600)
    assert len(one.calls.calls) == 3


def test_answered_without_a_one_is_unconfirmed_and_called_again(lab):
    one = lab(households=1, retries=1, plays=2)
    cid = one.send()
    one.tick()
    (call,) = one.ringing()
    session, d = one.answer(call, ["", ""])               # an answering machine: no key
    assert d.result == "unconfirmed"
    assert one.deliveries(cid)[number(1)] == ("pending", 1, "unconfirmed")
    one.tick(61)
    (call,) = one.ringing()
    session, d = one.answer(call, ["9"], hangup_after=2)  # hung up during the notice
    assert one.deliveries(cid)[number(1)] == ("failed", 2, "unconfirmed")


def test_a_busy_phone_counts_a_call_not_placed_does_not(lab):
    one = lab(households=1)
    cid = one.send()
    one.tick()
    (call,) = one.ringing()
    call.finish("busy")   # the AMI client read the Hangup cause (17) of a reason-0 failure
    assert one.deliveries(cid)[number(1)] == ("pending", 1, "busy")
    # Reason 0 and no cause: a call not placed, not counted, called again soon.
    one.tick(60)
    (call,) = one.ringing()
    call.refuse(reason=0, message="no such endpoint")
    assert one.deliveries(cid)[number(1)] == ("pending", 1, "busy")
    assert one.attempts()[-1][1] == "not-placed"
    one.tick(10)
    assert len(one.ringing()) == 1


def test_quiet_hours_hold_normal_notices_not_urgent_ones(lab):
    one = lab(households=2, quiet_hours=parse_hours("21:00-08:00"))
    night = datetime(2026, 12, 3, 22, 30, tzinfo=TZ).timestamp()
    one.clock.advance(night - one.clock.seconds())
    normal = one.send(to=f"building:1")
    one.tick()
    assert one.calls.calls == [] and one.dispatcher.quiet_now()
    urgent = one.send(to="all", priority="urgent", text="台风警报，请留在室内")
    one.tick()
    assert {c.variables["SWITCHBOARD_BROADCAST"] for c in one.calls.calls} == {str(urgent)}
    for call in one.ringing():
        one.answer(call, ["1"])
    one.tick(60)
    assert all(c.variables["SWITCHBOARD_BROADCAST"] == str(urgent) for c in one.calls.calls)
    morning = datetime(2026, 12, 4, 8, 0, tzinfo=TZ).timestamp()
    one.clock.advance(morning - one.clock.seconds() - 1)
    assert one.ringing() == []
    one.tick(1)
    assert {c.variables["SWITCHBOARD_BROADCAST"] for c in one.ringing()} == {str(normal)}
    assert one.status(normal) == "running"


def test_a_campaign_at_a_later_time_starts_then(lab):
    one = lab(households=1)
    start = datetime(2026, 12, 3, 3, 0)  # 11:00 local, in UTC
    cid = one.send(at=start)
    one.tick(3599 - 1)
    assert one.calls.calls == [] and one.status(cid) == "scheduled"
    one.tick(2)
    assert len(one.calls.calls) == 1


def test_pause_resume_and_cancel(lab):
    one = lab(households=6, lines=2)
    cid = one.send()
    one.tick()
    first, second = one.ringing()
    with one.database.sessions.begin() as session:
        assert store.change(session, cid, "pause", None) == "paused"
    one.tick()
    one.answer(first, ["1"])                 # a call up when paused ends as it will
    one.tick(30)
    assert len(one.calls.calls) == 2         # and no new one
    with one.database.sessions.begin() as session:
        assert store.change(session, cid, "resume", None) == "running"
        with pytest.raises(store.CampaignError, match="is running: cannot resume"):
            store.change(session, cid, "resume", None)
    one.tick()
    assert len(one.calls.calls) == 3
    with one.database.sessions.begin() as session:
        store.change(session, cid, "cancel", datetime(2026, 12, 3))
    one.tick()
    ringing = [c.channel_id for c in one.calls.calls if not c.deferred.called]
    assert set(ringing) <= set(one.calls.hangups) and len(ringing) == 2
    for call in one.ringing():
        call.finish("no-answer")             # Asterisk's answer to the hang-up
    states = sorted(s for s, _, _ in one.deliveries(cid).values())
    assert states == ["cancelled"] * 5 + ["heard"]
    one.tick(3600)
    assert len(one.calls.calls) == 3
    assert one.status(cid) == "cancelled"


def test_never_more_than_its_lines_and_broadcast_legs_yield_to_urgent_calls(lab):
    one = lab(households=6, lines=3, trunk_lines=4)
    cid = one.send()
    one.tick()
    assert len(one.ringing()) == 3
    one.tick(5)
    assert len(one.ringing()) == 3           # its share, not more
    # A #9: the alarm's legs are urgent and take two lines; one is free.
    alarm = one.trunk.placer(FakeCallPlacer(), urgent=True)
    for n in (1, 2):
        alarm.originate(f"PJSIP/neighbour{n}", context="a", exten="s", priority=1,
                        variables={}, caller_id="", timeout=30, channel_id=f"alarm-{n}")
    assert one.trunk.in_use(urgent=True) == 2
    assert one.trunk.in_use(urgent=False) == 2 and one.trunk.yielded == 1
    youngest = one.calls.calls[2]
    assert one.calls.hangups == [youngest.channel_id]
    youngest.finish("no-answer")             # hung up before it was answered
    assert one.attempts()[2][1] == "yielded"
    assert one.deliveries(cid)[youngest.channel.replace("PJSIP/", "+86591")][:2] == \
        ("pending", 0)                        # not counted
    one.tick(10)
    assert len(one.ringing()) == 2           # no line free: nothing new starts
    one.trunk.note_hangup("alarm-1")
    one.trunk.note_hangup("alarm-2")
    one.tick(1)
    assert len(one.ringing()) == 3


def test_an_answered_broadcast_call_is_hung_up_for_an_alarm_and_not_counted(lab):
    one = lab(households=1, lines=1, trunk_lines=1)
    cid = one.send()
    one.tick()
    (call,) = one.ringing()
    call.finish("answered", channel="PJSIP/87650001-1")
    alarm = one.trunk.placer(FakeCallPlacer(), urgent=True)
    alarm.originate("PJSIP/n", context="a", exten="s", priority=1, variables={},
                    caller_id="", timeout=30, channel_id="alarm-1")
    assert call.channel_id in one.calls.hangups or "PJSIP/87650001-1" in one.calls.hangups
    one.dispatcher.note_hangup(call.channel_id)
    assert one.deliveries(cid)[number(1)] == ("pending", 0, "")
    assert one.attempts()[0][1] == "yielded"


def test_a_restart_mid_campaign_calls_no_one_who_heard(lab):
    one = lab(households=4, lines=4)
    cid = one.send()
    one.tick()
    calls = one.ringing()
    one.answer(calls[0], ["1"])
    one.answer(calls[1], ["1"])
    # kill -9: calls[2] and calls[3] were ringing; nothing more is written.
    one.dispatcher.stop()
    one.start()                                 # the next server, same database
    assert sorted(s for s, _, _ in one.deliveries(cid).values()) == \
        ["heard", "heard", "pending", "pending"]
    assert [o for _, o in one.attempts()] == ["heard", "heard", "interrupted", "interrupted"]
    one.tick(1)
    assert len(one.calls.calls) == 4            # held: the old calls may still ring
    one.tick(35)
    again = one.calls.calls[4:]
    assert sorted(c.channel for c in again) == ["PJSIP/87650003", "PJSIP/87650004"]
    # The old call, answered after the restart, is still served and its 1 written.
    session = FakeSession(variables=dict(calls[2].variables), keys=["1"])
    assert one.handler(session).result == "heard"
    assert one.deliveries(cid)[number(3)][0] == "heard"


def test_a_campaign_with_nothing_to_play_fails_with_a_note(lab):
    class NoSpeech:
        def render(self, text, voice=None):
            return defer.fail(RuntimeError("espeak-ng is not installed"))

    one = lab(households=1, speech=NoSpeech())
    cid = one.send()
    one.tick()
    assert one.calls.calls == []
    with one.database.session() as session:
        campaign = session.get(Campaign, cid)
        assert campaign.status == "failed" and "espeak-ng" in campaign.note
    assert one.deliveries(cid)[number(1)][0] == "cancelled"


# Targets ---------------------------------------------------------------------------

def test_targets_select_households_from_the_registry(lab, tmp_path):
    one = lab(households=6)   # buildings 1, 1, 2, 2, 3, 3
    numbers = lambda spec: [t.number[-4:] for t in select_households(one.database, PLAN, spec)]
    assert numbers("all") == ["0001", "0002", "0003", "0004", "0005", "0006"]
    assert numbers("building:2") == ["0003", "0004"]
    assert numbers("building:2-3") == ["0003", "0004", "0005", "0006"]
    assert numbers("building:1,building:3") == ["0001", "0002", "0005", "0006"]
    assert numbers("community:Hualin") == numbers("all")
    listed = tmp_path / "visit.csv"
    listed.write_text("id,numbers\n2,\n,87650005\n", encoding="utf-8")
    assert numbers(str(listed)) == ["0002", "0005"]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,numbers\n99,\n,87659999\n,hello\n", encoding="utf-8")
    with pytest.raises(TargetError) as e:
        select_households(one.database, PLAN, str(bad))
    assert e.value.problems[0] == f"{bad}:4: numbers: " + e.value.problems[0].split(
        "numbers: ", 1)[1]
    assert f"{bad}:2: no household with id 99" in e.value.problems
    assert f"{bad}:3: landline +8659187659999 is not registered" in e.value.problems
    for spec, message in (("building:5-3", "N-M"), ("street:1", "not a target"),
                          ("community:Nowhere", "names no registered household")):
        with pytest.raises(TargetError, match=message):
            select_households(one.database, PLAN, spec)


# Settings, dialplan ----------------------------------------------------------------

def test_quiet_hours_across_midnight_and_bad_settings_located(tmp_path):
    from datetime import time
    hours = parse_hours("21:00-08:00")
    assert hours.contains(time(23, 0)) and hours.contains(time(7, 59))
    assert not hours.contains(time(8, 0)) and not hours.contains(time(20, 59))
    from switchboard import settings as settings_module
    from switchboard.yamlconf import ConfigError
    path = tmp_path / "s.yaml"
    path.write_text('database: sqlite:///x.db\nbroadcast:\n  lines: 0\n'
                    '  quiet_hours: "25:00-08:00"\n  colour: red\n')
    with pytest.raises(ConfigError) as e:
        settings_module.load(str(path))
    text = str(e.value)
    assert "s.yaml:3:" in text and "broadcast.lines" in text
    assert "s.yaml:4:" in text and "broadcast.quiet_hours" in text and "colour" in text


def test_the_notices_calls_go_through_the_trunk_chosen(tmp_path):
    one = Lab(tmp_path, households=1, trunk="mass")
    one.dispatcher.dialer = Dialer(PLAN, {"default": "PJSIP/{number}",
                                          "mass": "PJSIP/mass-lines/sip:{number}@gw"})
    one.send()
    one.tick()
    assert [c.channel for c in one.calls.calls] == ["PJSIP/mass-lines/sip:87650001@gw"]
    from switchboard import settings as settings_module
    from switchboard.yamlconf import ConfigError
    path = tmp_path / "s.yaml"
    path.write_text('database: sqlite:///x.db\ntrunks: {default: "PJSIP/{number}", '
                    'mass: "PJSIP/{number}@m"}\nbroadcast: {trunk: mass}\n')
    assert settings_module.load(str(path)).section("broadcast").trunk == "mass"
    path.write_text('database: sqlite:///x.db\nbroadcast:\n  trunk: bulk\n')
    with pytest.raises(ConfigError) as e:
        settings_module.load(str(path))
    assert "s.yaml:3:" in str(e.value) and "no trunk 'bulk'" in str(e.value)


def test_check_dialplan_wants_the_broadcast_context(tmp_path):
    from switchboard.dialplan_check import check
    path = tmp_path / "extensions.conf"
    path.write_text("#include switchboard.conf\n")
    assert any("missing context [switchboard-broadcast]" in p for p in check(str(path)))
    path.write_text("#include switchboard.conf\n#include broadcast.conf\n")
    assert check(str(path)) == []


# The staff's commands ----------------------------------------------------------------

def test_send_status_report_from_the_command_line(tmp_path, capsys):
    from switchboard.cli import main
    config = tmp_path / "switchboard.yaml"
    config.write_text(f"database: {databases.url(tmp_path, 'sb')}\n"
                      "numbers: {region: CN, area_code: \"591\"}\n"
                      f"alarm: {os.path.abspath('config/alarm.yaml')}\n")
    households = tmp_path / "h.csv"
    households.write_text("numbers,building,unit,room,residents\n"
                          "87650001,3,1,101,Chen Mei\n87650002,4,1,102,Lin Tao\n"
                          "87650003,5,1,103,=cmd\n", encoding="utf-8")

    def run(*argv):
        code = main(["--config", str(config), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    assert run("households", "import", str(households))[0] == 0
    code, out, err = run("broadcast", "send", "--recording", "custom/notice",
                         "--to", "building:3-4")
    assert (code, out) == (0, out) and out.startswith("campaign 1: 2 households, normal")
    code, _, err = run("broadcast", "send", "--recording", "x", "--to", "building:9")
    assert code == 1 and "names no registered household" in err
    code, _, err = run("broadcast", "send", "--to", "all")
    assert code == 1 and "--text TEXT or --recording" in err
    code, _, err = run("broadcast", "send", "--channel", "text", "--text", "长" * 500,
                       "--to", "all")
    assert code == 1 and "1500 bytes, more than the 1300" in err
    code, out, _ = run("broadcast", "status", "1")
    assert code == 0 and "0/2 done" in out and "2 pending" in out
    database = Database(databases.url(tmp_path, "sb"))
    with database.sessions.begin() as session:
        first = session.execute(select(Delivery).order_by(Delivery.id)).scalars().first()
        first.state, first.outcome = "heard", "heard"
        second = session.execute(select(Delivery).order_by(Delivery.id)).scalars().all()[1]
        second.state, second.outcome, second.attempts = "failed", "busy", 3
    database.close()
    code, out, _ = run("broadcast", "status", "1")
    assert "2/2 done" in out and "1 heard" in out and "1 failed" in out
    assert run("broadcast", "cancel", "1")[0] == 0
    code, _, err = run("broadcast", "pause", "1")
    assert code == 1 and "is cancelled: cannot pause" in err
    code, out, _ = run("broadcast", "report", "1", "--csv", "-")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:5] == ["household", "address", "number", "heard", "why not"]
    assert [r[2:5] for r in rows[1:]] == [["'+8659187650001", "yes", ""],
                                          ["'+8659187650002", "no", "busy"]]
    sheet = tmp_path / "r.xlsx"
    assert run("broadcast", "report", "1", "--xlsx", str(sheet))[0] == 0
    assert os.stat(sheet).st_mode & 0o077 == 0
    from openpyxl import load_workbook
    values = [[c.value for c in row] for row in load_workbook(sheet).active.iter_rows()]
    assert values[2][3:5] == ["no", "busy"]
    code, out, _ = run("broadcast", "send", "--channel", "text", "--text", "周六体检",
                       "--to", "building:5")
    assert (code, out.startswith("campaign 2: 1 households, normal, by text")) == (0, True)


# The trunk (switchboard/ringgroup/trunk.py) -------------------------------------------

def test_the_trunk_placer_is_a_call_placer_and_holds_a_line_until_the_call_is_over():
    from zope.interface.verify import verifyObject
    from switchboard.ringgroup import ICallPlacer, NoLineFree
    clock = task.Clock()
    trunk = Trunk(clock, lines=2, hold_limit=100.0)
    phones = FakeCallPlacer()
    normal = trunk.placer(phones)
    assert verifyObject(ICallPlacer, normal)

    def call(placer, cid):
        return placer.originate("PJSIP/x", context="c", exten="s", priority=1, variables={},
                                caller_id="", timeout=30, channel_id=cid)

    call(normal, "a")
    call(normal, "b")
    assert trunk.free() == 0
    refused = call(normal, "c")
    assert refused.called and isinstance(refused.result.value, NoLineFree)
    refused.addErrback(lambda f: None)
    phones.calls[0].finish("busy")            # over: its line is free
    assert trunk.free() == 1 and not trunk.holds("a")
    phones.calls[1].finish("answered")        # up: held until its Hangup
    assert trunk.holds("b")
    trunk.note_hangup("b")
    assert trunk.free() == 2
    call(normal, "d")
    phones.calls[-1].finish("answered")
    clock.advance(101)                        # its Hangup never came (AMI link lost)
    assert trunk.free() == 2


def test_urgent_calls_take_lines_from_the_youngest_normal_ones():
    clock = task.Clock()
    trunk = Trunk(clock, lines=3)
    given_back = []
    normal = trunk.placer(FakeCallPlacer(), on_yield=given_back.append)
    urgent = trunk.placer(FakeCallPlacer(), urgent=True)
    for cid in ("n1", "n2", "n3"):
        clock.advance(1)
        normal.originate("PJSIP/x", context="c", exten="s", priority=1, variables={},
                         caller_id="", timeout=30, channel_id=cid)
    for cid in ("u1", "u2"):
        urgent.originate("PJSIP/x", context="c", exten="s", priority=1, variables={},
                         caller_id="", timeout=30, channel_id=cid)
    assert given_back == ["n3", "n2"]
    assert trunk.in_use(urgent=True) == 2 and trunk.in_use(urgent=False) == 1
    for cid in ("u3", "u4"):                  # more urgent calls than lines: all placed
        urgent.originate("PJSIP/x", context="c", exten="s", priority=1, variables={},
                         caller_id="", timeout=30, channel_id=cid)
    assert given_back == ["n3", "n2", "n1"] and trunk.in_use() == 4
    assert trunk.free() == 0
    unlimited = Trunk(clock)
    assert unlimited.free() is None


def test_a_campaign_whose_last_call_ends_while_paused_is_done_once_resumed(lab):
    one = lab(households=1)
    cid = one.send()
    one.tick()
    (call,) = one.ringing()
    with one.database.sessions.begin() as session:
        store.change(session, cid, "pause", None)
    one.tick()
    one.answer(call, ["1"])
    assert one.status(cid) == "paused"
    with one.database.sessions.begin() as session:
        store.change(session, cid, "resume", None)
    one.tick()
    assert one.status(cid) == "done"


class FakeTexts:
    """A L{switchboard.texting.TextSender} whose messages the test settles."""

    def __init__(self):
        self.sent = []   # (to, body, Deferred)

    def send(self, to, body):
        d = defer.Deferred()
        self.sent.append((to, body, d))
        return d


def test_a_text_notice_is_sent_to_each_household_and_counted_like_a_call(lab):
    from switchboard.texting import TextResult
    texts = FakeTexts()
    one = lab(households=4, lines=3, retries=1, retry_after=60.0, texts=texts)
    cid = one.send(text="周六上午社区中心免费体检", channel="text")
    one.tick()
    assert one.calls.calls == [] and one.speech.rendered == []   # no call, nothing rendered
    assert [(to, body) for to, body, _ in texts.sent] == \
        [(number(i), "周六上午社区中心免费体检") for i in (1, 2, 3)]   # its share of lines
    texts.sent[0][2].callback(TextResult(number(1), True, "queued"))
    texts.sent[1][2].callback(TextResult(number(2), False, "no such endpoint"))
    one.tick()
    assert len(texts.sent) == 4                                  # a line is free again
    texts.sent[2][2].callback(TextResult(number(3), True, "queued"))
    texts.sent[3][2].callback(TextResult(number(4), True, "queued"))
    one.tick(60)
    texts.sent[4][2].callback(TextResult(number(2), False, "no such endpoint"))
    assert one.deliveries(cid) == {number(1): ("sent", 1, "sent"),
                                   number(2): ("failed", 2, "failed"),
                                   number(3): ("sent", 1, "sent"),
                                   number(4): ("sent", 1, "sent")}
    assert one.status(cid) == "done"
    with one.database.session() as session:
        (progress,) = store.progress(session, [cid])
        campaign, rows = store.report(session, cid)
    assert (progress.heard, progress.failed, progress.done) == (3, 1, 4)
    assert [(r.number[-4:], r.heard, r.why) for r in rows] == [
        ("0001", True, ""), ("0002", False, "failed"), ("0003", True, ""), ("0004", True, "")]
    from broadcast.cli import report_cells
    assert report_cells(rows[0], TZ, text=True)[3] == "sent"


def test_a_text_campaign_without_a_text_channel_fails_with_a_note(lab):
    one = lab(households=1)
    cid = one.send(channel="text")
    one.tick()
    with one.database.session() as session:
        campaign = session.get(Campaign, cid)
        assert campaign.status == "failed" and "no text channel" in campaign.note
