"""The *0 callback feature: its handler, its table, its command, its dialplan."""

from __future__ import annotations

import pytest
import os
from datetime import datetime, timezone

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from callback.handler import NO_CALLER_ID, STOCK_CONFIRMATION, CallbackHandler
from callback.plugin import DIALPLAN, PROMPT
from callback.requests import Requests
from callback.service import CallbackService
from switchboard.agi.reply import Playback
from switchboard.numbers import NumberPlan
from tests import databases
from tests.test_hotline_support import FakeSession

PLAN = NumberPlan("CN", "591")


class FakeRequests:
    def __init__(self, result=None):
        self.added = []
        self.result = result if result is not None else defer.succeed(7)

    def add(self, caller, uniqueid, when):
        self.added.append((caller, uniqueid, when))
        return self.result


class HandlerTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1_790_000_000)

    def handler(self, requests, sound=None):
        return CallbackHandler(requests, PLAN, confirmation=lambda: sound, clock=self.clock)

    def test_the_request_is_recorded_before_it_is_confirmed(self):
        pending = defer.Deferred()
        requests = FakeRequests(pending)
        session = FakeSession()
        d = self.handler(requests, "switchboard-tts/abc")(session)
        assert requests.added == [("+8659187650001", "1790000000.1",
                                   datetime.fromtimestamp(1_790_000_000, timezone.utc))]
        assert session.named("stream_file_result") == []  # nothing said before the row
        pending.callback(7)
        assert self.successResultOf(d) == 7
        assert session.named("stream_file_result") == [
            ("stream_file_result", "switchboard-tts/abc", "")]
        assert session.set == {"SWITCHBOARD_RESULT": "OK"}

    def test_without_a_rendering_the_stock_sound_confirms(self):
        session = FakeSession()
        self.successResultOf(self.handler(FakeRequests())(session))
        assert [c[1] for c in session.named("stream_file_result")] == [STOCK_CONFIRMATION]

    def test_a_rendering_that_cannot_be_played_is_followed_by_the_stock_sound(self):
        session = FakeSession(stream_file_result=[Playback("", 0, True)])
        self.successResultOf(self.handler(FakeRequests(), "switchboard-tts/gone")(session))
        assert [c[1] for c in session.named("stream_file_result")] == [
            "switchboard-tts/gone", STOCK_CONFIRMATION]

    def test_an_anonymous_caller_is_not_recorded(self):
        requests = FakeRequests()
        session = FakeSession({"callerid": "anonymous"})
        self.successResultOf(self.handler(requests)(session))
        assert requests.added == []
        assert [c[1] for c in session.named("stream_file_result")] == [NO_CALLER_ID]

    def test_a_database_that_refuses_fails_the_call_for_the_dialplan(self):
        session = FakeSession()
        d = self.handler(FakeRequests(defer.fail(RuntimeError("disk full"))))(session)
        self.failureResultOf(d, RuntimeError)
        assert "SWITCHBOARD_RESULT" not in session.set  # the dialplan says: try later
        assert session.named("stream_file_result") == []


def _database(tmp_path):
    from switchboard import migrations
    from switchboard.storage import Database
    database = Database(databases.url(tmp_path, "db"))
    migrations.upgrade(database.engine)
    return database


@pytest.mark.database
def test_requests_are_written_on_the_pool_and_listed_newest_first(tmp_path):
    database = _database(tmp_path)
    ran = []

    def run(work):  # Database.run, on this thread
        ran.append(work)
        with database.sessions.begin() as session:
            return defer.succeed(work(session))

    database.run = run
    requests = Requests(database)
    first = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)
    one = requests.add("+8659187650001", "1.1", first)
    two = requests.add("9" * 100, "", first.replace(hour=2))
    assert len(ran) == 2
    assert (one.result, two.result) == (1, 2)
    rows = requests.recent(5)
    assert [(r.caller, r.uniqueid) for r in rows] == [("9" * 64, None), ("+8659187650001", "1.1")]
    assert rows[0].requested_at == first.replace(hour=2)
    assert [r.id for r in requests.recent(1)] == [2]
    database.close()


@pytest.mark.database
def test_switchboard_callbacks_lists_them_in_local_time(tmp_path, capsys):
    from switchboard.cli import main
    config = tmp_path / "switchboard.yaml"
    config.write_text(f"database: {databases.url(tmp_path, 'sb')}\n")
    assert main(["--config", str(config), "callbacks"]) == 0
    assert capsys.readouterr().out == "no callback requests\n"
    from switchboard.storage import Database
    from callback.models import CallbackRequest
    database = Database(databases.url(tmp_path, "sb"))
    with database.session() as session:
        session.add(CallbackRequest(caller="+8659187650001", uniqueid="1.1",
                                    requested_at=datetime(2026, 3, 1, 1, 30, tzinfo=timezone.utc)))
        session.commit()
    database.close()
    assert main(["--config", str(config), "callbacks", "--limit", "1"]) == 0
    assert capsys.readouterr().out == "     1  2026-03-01 09:30:00  +8659187650001\n"


class FakeSpeech:
    def __init__(self):
        self.rendered = []

    def render(self, text):
        self.rendered.append(text)
        return defer.succeed("switchboard-tts/x")

    def sound_name(self, text):
        return "switchboard-tts/x" if text in self.rendered else None


def test_the_service_renders_the_prompt_at_start_and_plays_it_once_rendered():
    speech = FakeSpeech()
    service = CallbackService(None, PLAN, PROMPT, speech=speech, reactor=task.Clock())
    assert service.handler.confirmation() is None  # before: the stock sound
    service.start()
    assert speech.rendered == [PROMPT]
    assert service.handler.confirmation() == "switchboard-tts/x"
    assert set(service.handlers) == {"callback"}


def test_the_prompt_can_be_said():
    from switchboard.speech import Speech
    speech = Speech("/nonexistent", reactor=task.Clock())
    assert speech.problems(PROMPT) == []


def test_the_dialplan_snippet_falls_back_when_the_server_does_not_confirm():
    from switchboard.dialplan_check import check, parse
    assert check(DIALPLAN, features=[]) == []
    steps = parse(DIALPLAN)["switchboard-callback"]["*0"]
    apps = [s.app for s in steps]
    agi = apps.index("Gosub")  # switchboard-agi: each FastAGI server in turn
    assert apps[agi + 1] == "GotoIf" and "SWITCHBOARD_RESULT" in steps[agi + 1].args
    assert "Playback" in apps
    assert steps[agi].args == "switchboard-agi,s,1(callback?key=${SWITCHBOARD_KEY})"
    assert os.path.basename(DIALPLAN) == "callback.conf"
