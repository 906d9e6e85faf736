"""
Requests end to end: a SIPp resident calls the hotline on the lab Asterisk,
is put through to an office's mailbox and leaves a message; the server finds
it in Asterisk's voicemail spool and `switchboard requests list` shows it
with its recording; `requests callback` rings a staff phone through AMI and,
once it answers, the resident.
"""

import json
import os
import shutil

import pytest

from tests.conftest import wait_for
from tests.e2e.server import Server

pytestmark = pytest.mark.asterisk

ROUTING = """\
hotline: {numbers: ["12345"], menu: main, operator: operator}
timezone: Asia/Shanghai
defaults: {voicemail_context: switchboard}
menus:
  main: {prompt: beep, options: {1: committee_voicemail}, timeout: 5, retries: 1}
destinations:
  operator: {type: operator, phones: [87650100]}
  committee_voicemail: {type: voicemail, label: 居委会留言箱, mailbox: "200", greeting: beep}
"""

RESIDENT = "87650075"
STAFF = "87650076"


def spool() -> str:
    root = os.environ.get("SWITCHBOARD_LAB_ROOT", "/var/lib/switchboard/asterisk-root")
    return os.path.join(root, "var", "spool", "asterisk", "voicemail")


@pytest.fixture(scope="module")
def server(asterisk, tmp_path_factory):
    # Messages of an earlier run would be requests too: the mailbox starts empty.
    shutil.rmtree(os.path.join(spool(), "switchboard", "200"), ignore_errors=True)
    workdir = tmp_path_factory.mktemp("requests")
    routing = workdir / "routing.yaml"
    routing.write_text(ROUTING, encoding="utf-8")
    started = Server(workdir, routing=str(routing),
                     extra=f"callback: {{voicemail_spool: {spool()}}}\n").start()
    yield started
    assert started.stop() == 0, started.log()[-3000:]


def test_a_voicemail_left_at_an_office_is_a_request_with_its_recording(server, sipp):
    caller = sipp.call("12345", RESIDENT, keys="1", before_ms=1500, hold_ms=9000, timeout_s=40)
    assert caller.wait(40) == 0
    line = wait_for(lambda: next((l for l in server.cli("requests", "list").splitlines()
                                  if f"+86591{RESIDENT}" in l), None), 20,
                    message="the voicemail as a request")
    assert "居委会留言箱" in line and "[open]" in line
    listing = server.cli("requests", "list")
    recording = listing.split("recording: ", 1)[1].splitlines()[0].strip()
    assert recording.startswith(os.path.join(spool(), "switchboard", "200", "INBOX", "msg"))
    # The hotline call that left it, from the call log: the way it came.
    assert "call: " in listing and "voicemail 200@switchboard" in listing, listing
    with open(recording, "rb") as f:  # Asterisk's file (SIPp's caller sends no sound)
        assert f.read(4) == b"RIFF"
    request_id = line.split()[0].lstrip("!")

    # Calling back: the staff phone rings first; once answered, the resident's.
    staff = sipp.phone(STAFF, "answer", ring_ms=300, timeout_s=40)
    resident = sipp.phone(RESIDENT, "answer", ring_ms=300, timeout_s=40)
    out = server.cli("requests", "callback", request_id, "--from", STAFF)
    assert f"{STAFF} answered" in out, out
    wait_for(lambda: resident.invite_times(), 15, message="the resident's phone ringing")
    assert staff.invite_times()[0] < resident.invite_times()[0]

    server.cli("requests", "done", request_id, "--note", "回过电话了")
    done = server.cli("requests", "list", "--all")
    assert "[done]" in done and "回过电话了" in done and f"called back" in done
    assert f"+86591{RESIDENT}" not in server.cli("requests", "list")


def test_switchboard_status_reads_the_running_server(server):
    status = json.loads(server.cli("status", "--json"))
    assert status["lights"]["ami"] == "ok" and status["ami"]["state"] == "connected"
    assert status["lights"]["config"] == "ok"
    assert {f["what"] for f in status["files"]} == {"routing", "alarm"}
    assert [d["name"] for d in status["departments"]] == ["operator"]
    assert status["astdb"]["state"] in ("in step", "syncing")
    text = server.cli("status")
    assert "OK   AMI       connected" in text and "routing now:" in text
