"""
Requests to call residents back: a *0 and a voicemail left at an office
are one kind of thing (callback.requests), listed, marked done with a
note, called back through AMI (callback.ringback), and voicemails found in
Asterisk's spool become requests once (callback.voicemail).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from twisted.internet import defer, task

from callback import cli as callback_cli
from callback.models import CALLBACK, VOICEMAIL
from callback.requests import NoSuchRequest, Requests, as_dict
from callback.ringback import CannotCallBack, call_back
from callback.voicemail import VoicemailWatcher, caller_number, scan
from switchboard import migrations
from switchboard.ami.originate import OriginateResult
from tests.test_hotline_support import DIALER, PLAN, SHANGHAI, SyncDatabase
from tests import databases

pytestmark = pytest.mark.database

LEFT = 1_796_300_000  # 2026-12-03 ...


def info(msg_id, callerid='"Chen Mei" <87650061>', origtime=LEFT, extra=""):
    return (";\n; Message Information file\n;\n[message]\norigmailbox=100\n"
            "context=switchboard-hotline\nexten=12345\ncallerchan=PJSIP/87650061-00000001\n"
            f"callerid={callerid}\norigdate=Thu Dec  3 10:13:20 AM UTC 2026\n"
            f"origtime={origtime}\ncategory=\nmsg_id={msg_id}\nflag=\nduration=7\n{extra}")


def leave(spool, box, n, msg_id, *, context="switchboard", folder="INBOX", sound=True, **kw):
    where = os.path.join(spool, context, box, folder)
    os.makedirs(where, exist_ok=True)
    with open(os.path.join(where, f"msg{n:04d}.txt"), "w") as f:
        f.write(info(msg_id, **kw))
    if sound:
        with open(os.path.join(where, f"msg{n:04d}.wav"), "wb") as f:
            f.write(b"RIFF....")
    return os.path.join(where, f"msg{n:04d}")


def database(tmp_path):
    db = SyncDatabase(databases.url(tmp_path, "db"))
    migrations.upgrade(db.engine)
    return db


class Clock(task.Clock):
    pass


def test_a_message_is_read_from_its_text_file_with_its_recording(tmp_path):
    spool = str(tmp_path)
    stem = leave(spool, "200", 0, "1796300000-00000001")
    leave(spool, "100", 3, "1796300001-00000002", callerid="<+8659187650062>",
          origtime=LEFT + 1, folder="Urgent", sound=False)
    leave(spool, "900", 0, "ignored", context="staff")
    problems = {}
    with open(os.path.join(spool, "switchboard", "200", "INBOX", "msg0001.txt"), "w") as f:
        f.write("[message]\ncallerid=<87650063>\n")  # no msg_id: not Asterisk's
    found = scan(spool, ["switchboard"], PLAN, problems=problems)
    assert [(m.message_id, m.mailbox, m.caller, m.recording) for m in found] == [
        ("1796300000-00000001", "200@switchboard", "+8659187650061", stem + ".wav"),
        ("1796300001-00000002", "100@switchboard", "+8659187650062", ""),
    ]
    assert found[0].left_at == datetime.fromtimestamp(LEFT, timezone.utc)
    assert found[0].duration == 7
    assert list(problems) == [os.path.join(spool, "switchboard", "200", "INBOX", "msg0001.txt")]
    cache = {}
    assert len(scan(spool, ["switchboard"], PLAN, cache=cache)) == 2
    assert len(cache) == 2  # the bad file is not kept
    os.unlink(stem + ".txt")
    assert [m.mailbox for m in scan(spool, ["switchboard"], PLAN, cache=cache)] == [
        "100@switchboard"]
    assert len(cache) == 1
    assert scan(spool, ["nowhere"], PLAN) == []


def test_a_caller_id_is_untrusted_text():
    assert caller_number('"x" <87650061>') == "87650061"
    assert caller_number('"<b>\x1b[2J" <1\n2>') == "1\\x0a2"
    assert caller_number("") == "unknown"
    assert len(caller_number("9" * 500)) == 64


def test_the_watcher_records_each_message_once_across_restarts(tmp_path):
    spool = str(tmp_path / "spool")
    db = database(tmp_path)
    clock = Clock()
    clock.advance(LEFT + 60)
    requests = Requests(db, clock=clock)
    sync = lambda f, *a, **kw: defer.maybeDeferred(f, *a, **kw)  # noqa: E731
    watcher = VoicemailWatcher(requests, spool, ["switchboard"], PLAN, clock=clock,
                               interval=5, run_in_thread=sync)
    told = []
    watcher.listeners.append(lambda request_id, message: told.append(request_id))
    watcher.start()  # the spool is not there yet: nothing, no error
    assert told == []
    stem = leave(spool, "200", 0, "m-1")
    clock.advance(5)
    assert told == [1]
    clock.advance(5)
    assert told == [1]
    watcher.stop()
    # A restarted server (or a second one) records nothing again.
    again = VoicemailWatcher(Requests(db, clock=clock), spool, ["switchboard"], PLAN,
                             clock=clock, run_in_thread=sync)
    assert again.poll().result == 0
    leave(spool, "200", 1, "m-2", origtime=LEFT + 30)
    assert again.poll().result == 1
    shot = requests.snapshot(labels={"200@switchboard": "居委会留言箱"}).result
    assert [(r["id"], r["kind"], r["office_label"], r["caller"]) for r in shot["open"]] == [
        (1, VOICEMAIL, "居委会留言箱", "+8659187650061"), (2, VOICEMAIL, "居委会留言箱",
                                                          "+8659187650061")]
    assert shot["open"][0]["recording"] == stem + ".wav"
    assert shot["open"][0]["call"] is None  # no hotline call on record
    json.dumps(shot)  # plain values only
    # Heard on the office phone: Asterisk moves it to Old under another name.
    old = os.path.join(spool, "switchboard", "200", "Old")
    os.makedirs(old)
    for ext in ("txt", "wav"):
        os.rename(f"{stem}.{ext}", os.path.join(old, f"msg0005.{ext}"))
    assert again.poll().result == 0
    moved = requests.snapshot().result["open"][0]
    assert (moved["id"], moved["recording"]) == (1, os.path.join(old, "msg0005.wav"))


def test_a_database_that_refuses_leaves_the_message_for_the_next_look(tmp_path):
    spool = str(tmp_path / "spool")
    leave(spool, "100", 0, "m-1")
    db = database(tmp_path)
    clock = Clock()
    watcher = VoicemailWatcher(Requests(db, clock=clock), spool, ["switchboard"], PLAN,
                               clock=clock, run_in_thread=lambda f, *a, **kw: defer.maybeDeferred(
                                   f, *a, **kw))
    watcher.poll()  # reads the known ids
    db.fail_next = 1
    leave(spool, "100", 1, "m-2")
    assert watcher.poll().result is None  # logged; m-2 not recorded
    assert watcher.poll().result == 1
    assert set(watcher.known) == {"m-1", "m-2"}


def test_a_voicemail_shows_the_hotline_call_that_left_it(tmp_path):
    from switchboard.calllog import CallRecord
    db = database(tmp_path)
    left = datetime.fromtimestamp(LEFT, timezone.utc)

    def call(caller, started, outcome="voicemail", path=("menu main", "voicemail 200@switchboard")):
        with db.session() as session:
            session.add(CallRecord(caller=caller, hotline="12345", path=json.dumps(list(path)),
                                   outcome=outcome, started=started))
            session.commit()

    call("+8659187650061", left - timedelta(hours=1))                 # too early
    call("+8659187650061", left - timedelta(seconds=20))              # this one
    call("+8659187650061", left - timedelta(seconds=10), "answered")  # not to a mailbox
    call("+8659187650099", left - timedelta(seconds=5))               # someone else
    spool = str(tmp_path / "spool")
    leave(spool, "200", 0, "m-1")
    requests = Requests(db)
    requests.add_voicemail(scan(spool, ["switchboard"], PLAN)[0])
    [entry] = requests.snapshot().result["open"]
    assert entry["call"]["id"] == 2
    assert entry["call"]["path"] == ["menu main", "voicemail 200@switchboard"]


def test_open_requests_older_than_a_day_are_overdue_and_done_ones_keep_their_note(tmp_path):
    db = database(tmp_path)
    clock = Clock()
    now = datetime(2026, 12, 3, 2, 0, tzinfo=timezone.utc)
    clock.advance(now.timestamp())
    requests = Requests(db, clock=clock)
    told = []
    requests.listeners.add(lambda request_id, what: told.append((request_id, what)))
    requests.add("+8659187650001", "1.1", now - timedelta(days=1, minutes=1))
    requests.add("+8659187650002", "1.2", now - timedelta(hours=23))
    requests.done(2, "called back, the lift is fixed")
    shot = requests.snapshot().result
    assert [(r["id"], r["overdue"], r["status"]) for r in shot["open"]] == [(1, True, "open")]
    assert shot["overdue"] == 1
    assert shot["done"][0]["note"] == "called back, the lift is fixed"
    assert shot["done"][0]["done_at"] == now.isoformat()
    # The server's pages do it on the database's pool, with who did it.
    assert requests.mark_called_back(1, "87650070").result is None
    clock.advance(60)
    requests.mark_done(1, "no answer twice; letter left", by="li").result
    assert requests.snapshot().result["done"][0]["done_by"] == "li"
    assert told == [(1, "callback"), (2, "callback"), (1, "called back"), (1, "done")]
    missing = requests.mark_done(99, "x")
    assert isinstance(missing.result.value, NoSuchRequest)
    missing.addErrback(lambda f: None)
    row = requests.get(1)
    assert row.called_back_from == "87650070"
    assert as_dict(row, now + timedelta(days=3))["age_seconds"] == (4 * 86400 + 60)


class FakeAMI:
    def __init__(self, outcome="answered"):
        self.calls = []
        self.outcome = outcome

    def originate(self, channel, **kw):
        self.calls.append((channel, kw))
        return defer.succeed(OriginateResult("x", self.outcome, 4, "ok"))


def test_a_call_back_rings_the_staff_phone_then_the_resident_from_it():
    ami = FakeAMI()
    result = call_back(ami, DIALER, "+8659187650061", "87650070").result
    assert result.answered
    channel, kw = ami.calls[0]
    assert channel == "PJSIP/87650070"
    assert kw["application"] == "Dial"
    assert kw["data"].startswith("PJSIP/87650061,")
    assert "+8659187650061" in kw["caller_id"]
    assert call_back(ami, DIALER, "PJSIP/87650061", "PJSIP/desk").result.answered
    for caller, phone in (("unknown", "87650070"), ("+8659187650061", "desk; rm")):
        d = call_back(ami, DIALER, caller, phone)
        assert d.called and isinstance(d.result.value, CannotCallBack)
        d.addErrback(lambda f: None)
    assert len(ami.calls) == 2


def context_for(tmp_path, **extra):
    db = database(tmp_path)
    out = []

    class Out:
        def write(self, text):
            out.append(text)

        def flush(self):
            pass

    settings = SimpleNamespace(routing=None, trunks={"default": "x"})
    context = SimpleNamespace(database=lambda: db, tz=SHANGHAI, settings=settings,
                              numbers=PLAN, dialer=DIALER, stdout=Out(), **extra)
    return context, db, lambda: "".join(out)


def args(**kw):
    return SimpleNamespace(**kw)


def test_requests_list_done_and_callback_commands(tmp_path):
    calls = []

    def originate(caller, phone):
        calls.append((caller, phone))
        return OriginateResult("x", "answered" if phone == "87650070" else "no-answer", 4,
                               "rang")

    context, db, output = context_for(tmp_path, originate=originate)
    requests = Requests(db)
    requests.add("+8659187650001", "1.1", datetime.now(timezone.utc) - timedelta(days=2))
    spool = str(tmp_path / "spool")
    stem = leave(spool, "200", 0, "m-1")
    message = scan(spool, ["switchboard"], PLAN)[0]
    requests.add_voicemail(message)
    assert requests.add_voicemail(message).result is None  # once only
    listing = args(all=False, limit=100, json=False)
    assert callback_cli.list_command(listing, context) == 0
    text = output()
    assert "!    1" in text and "*0" in text  # over a day: flagged
    assert "200@switchboard" in text and f"recording: {stem}.wav" in text
    assert callback_cli.callback_command(args(id=2, from_phone="87650071"), context) == 1
    assert callback_cli.callback_command(args(id=2, from_phone="87650070"), context) == 0
    assert calls == [("+8659187650061", "87650071"), ("+8659187650061", "87650070")]
    assert callback_cli.callback_command(args(id=9, from_phone="87650070"), context) == 1
    assert callback_cli.done_command(args(id=2, note="  "), context) == 2
    assert callback_cli.done_command(args(id=2, note="rang back, tap fixed", by="wang"),
                                     context) == 0
    assert callback_cli.done_command(args(id=9, note="x"), context) == 1
    rows = Requests(db).listing(include_done=True)
    assert [(r["id"], r["status"]) for r in rows] == [(1, "open"), (2, "done")]
    assert rows[1]["called_back_from"] == "87650070" and rows[1]["note"] == "rang back, tap fixed"
    assert rows[1]["done_by"] == "wang"
    before = len(output())
    assert callback_cli.list_command(args(all=False, limit=100, json=True), context) == 0
    assert [r["id"] for r in json.loads(output()[before:])] == [1]
    assert [r.kind for r in Requests(db).recent(5, kind=CALLBACK)] == [CALLBACK]


def test_voicemail_settings_are_checked(tmp_path):
    from switchboard import settings as settings_module
    from switchboard.yamlconf import ConfigError
    config = tmp_path / "switchboard.yaml"
    config.write_text(f"database: sqlite:///{tmp_path}/sb.db\ncallback:\n"
                      "  voicemail_spool: spool\n  voicemail_contexts: [switchboard, ../etc]\n")
    with pytest.raises(ConfigError) as refused:
        settings_module.load(str(config))
    assert "callback.voicemail_contexts[1]" in str(refused.value)
    assert f"{config}:4:" in str(refused.value)
    config.write_text(f"database: sqlite:///{tmp_path}/sb.db\ncallback:\n"
                      "  voicemail_spool: spool\n")
    mine = settings_module.load(str(config)).section("callback")
    assert mine.voicemail_spool == str(tmp_path / "spool")
    assert mine.voicemail_contexts == ("switchboard",)
