"""
The #9 alarm speaks Mandarin, against the lab Asterisk: a household's
announcement is rendered by the running server when the household is
registered with the CLI, and the neighbour who answers a #9 hears it: the
rendered file (not a stock English sound) is played on that leg, and the
RTP audio the SIPp neighbour received lasts as long as the rendering.
"""

import os
import re
import time

import pytest

from alarm import announcement
from alarm.speaking import make_speech
from lab.rtp import RtpCapture
from switchboard.settings import SpeechSettings
from tests.conftest import wait_for
from tests.e2e.server import Server, lab_sounds, start_in_step

pytestmark = pytest.mark.asterisk

ALARM = """\
neighbours: {max: 10, ring_timeout: 20, confirm_within: 40, retry_unanswered: 0}
escalation:
  repeat_every: 0
  stages:
    - {name: duty officer, after: 60, phones: ["87650190"]}
responder: {attempts: 2, digit_timeout: 5}
prompts:
  caller_hold: {say: "别着急，正在为您呼叫邻居，请不要挂机。"}
  responder_ask: {say: "能马上过去请按一，去不了请按二。"}
  responder_coming: {say: "谢谢您！现在为您接通求助人。"}
"""

CALLER, NEIGHBOUR = "87650001", "87650005"
CHEN_MEI = dict(community="华林花园", building="3", unit="1", room="101", residents="陈梅",
                notes="行动不便，独居")


def add(server, number, neighbours, **fields):
    args = ["households", "add", "--number", number]
    for name, value in fields.items():
        args += [f"--{name}", value]
    for n in neighbours:
        args += ["--neighbour", n]
    return server.cli(*args)


def log_time(text) -> str | None:
    """The time of the last line of Asterisk's log in C{text} ("2026-12-03 08:15:49.872")."""
    found = re.findall(r"(?m)^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\]", text)
    return found[-1] if found else None


def rendering(fields) -> str:
    """Where the running server puts the announcement of a household with C{fields}."""
    speech = make_speech(SpeechSettings(sounds_dir=lab_sounds()))
    assert speech.available, speech.unavailable_reason
    return speech.path(announcement.announcement(**fields))


@pytest.fixture(scope="module")
def server(asterisk, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("alarm-speech")
    alarm = workdir / "alarm.yaml"
    alarm.write_text(ALARM, encoding="utf-8")
    server = Server(workdir, alarm=str(alarm))
    add(server, CALLER, [NEIGHBOUR], **CHEN_MEI)
    start_in_step(server)   # the native test below rings from AstDB
    yield server
    server.stop()


def test_a_household_change_reaches_its_rendered_announcement(server):
    """The time from the CLI's change to the announcement on disk (the watcher polls every 5 s)."""
    fields = dict(community="华林花园", building="5", unit="2", room="301", residents="周敏")
    path = rendering(fields)
    if os.path.exists(path):
        os.unlink(path)
    changed = time.monotonic()
    add(server, "87650150", [NEIGHBOUR], **fields)
    committed = time.monotonic()
    wait_for(lambda: os.path.exists(path), 20, interval=0.05,
             message="the new household's announcement")
    took = time.monotonic() - committed
    print(f"\nhousehold change -> rendered announcement in place: {took:.2f} s after the CLI "
          f"returned ({time.monotonic() - changed:.2f} s after it started)")
    assert took < 8, "the watcher polls every 5 s; rendering takes well under a second"
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o640)


def test_the_neighbour_hears_the_rendered_announcement(server, sipp, asterisk):
    path = wait_for(lambda: os.path.exists(rendering(CHEN_MEI)) and rendering(CHEN_MEI), 30,
                    message="Chen Mei's announcement rendered at start-up")
    seconds = os.path.getsize(path) / 2 / 8000  # 8 kHz signed linear
    assert 4 < seconds < 30, seconds
    sound = "switchboard-tts/" + os.path.basename(path).rsplit(".", 1)[0]
    # The neighbour presses 1 once the sentence (which ends with the question) is over.
    phone = sipp.phone(NEIGHBOUR, "answer", ring_ms=500, keys="1",
                       before_ms=int(seconds * 1000) + 1500, timeout_s=90)
    # Earlier tests' calls are in Asterisk's log too: read only what comes after this.
    since = log_time(asterisk.log(5)) or ""
    capture = RtpCapture(phone.media)
    try:
        caller = sipp.call("#9", CALLER, before_ms=300, hold_ms=int(seconds * 1000) + 12000,
                           timeout_s=90)
        wait_for(lambda: "confirmed" in server.cli("alarms"), 60, message="a confirmation")
        caller.wait(60)
    finally:
        capture.stop()
    log = "\n".join(line for line in asterisk.log(4000).splitlines()
                    if (log_time(line) or "") > since)
    plays = re.findall(r"<(PJSIP/[\w-]+)> Playing '([^']+)'", log)
    # Asterisk names what it plays with the format's extension ("slin").
    on_leg = [name.rsplit(".", 1)[0] for channel, name in plays
              if channel.startswith(f"PJSIP/{NEIGHBOUR}-")]
    assert on_leg and on_leg[0] == sound, (on_leg, sound)
    assert all(name.startswith("switchboard-tts/") for name in on_leg), \
        f"no stock English prompt on the neighbour's leg: {on_leg}"
    on_caller = [name for channel, name in plays if channel.startswith(f"PJSIP/{CALLER}-")]
    assert on_caller and on_caller[0].startswith("switchboard-tts/"), on_caller
    # What the phone received: the first burst of audio is the announcement.
    bursts = capture.bursts()
    assert bursts, "no RTP reached the neighbour's phone"
    audio, spread = bursts[0]
    print(f"\nannouncement {seconds:.2f} s rendered; neighbour received {audio:.2f} s of audio "
          f"in {spread:.2f} s (bursts: {[(round(a, 2), round(s, 2)) for a, s in bursts[:4]]})")
    assert abs(audio - seconds) < 0.5, (audio, seconds)


def test_with_the_server_down_the_neighbour_hears_the_household_natively(server, sipp, asterisk):
    # The running server linked the landline's name to Chen Mei's announcement
    # and wrote the Mandarin digits; then it stops, and Asterisk alone rings.
    path = wait_for(lambda: os.path.exists(rendering(CHEN_MEI)) and rendering(CHEN_MEI), 30,
                    message="Chen Mei's announcement rendered at start-up")
    folder = os.path.dirname(path)
    link = os.path.join(folder, "alarm-native-who-8659187650001.sln")
    wait_for(lambda: os.path.exists(link), 30, message="the landline's link")
    assert os.readlink(link) == os.path.basename(path)
    assert os.path.exists(os.path.join(folder, "alarm-native-digit-8.sln"))
    seconds = os.path.getsize(path) / 2 / 8000
    assert server.stop() == 0
    try:
        phone = sipp.phone(NEIGHBOUR, "answer", ring_ms=500, keys="1",
                           before_ms=int(seconds * 1000) + 1500, timeout_s=90)
        since = log_time(asterisk.log(5)) or ""
        caller = sipp.call("#9", CALLER, before_ms=300, hold_ms=3000, timeout_s=90)
        assert caller.wait(90) == 0
        assert phone.received("ACK")
    finally:
        server.start()
    log = "\n".join(line for line in asterisk.log(4000).splitlines()
                    if (log_time(line) or "") > since)
    assert "rung natively" in log
    plays = re.findall(r"<((?:PJSIP|Local)/[^>]+)> Playing '([^']+)'", log)
    on_phone = [name.rsplit(".", 1)[0] for channel, name in plays
                if channel.startswith(f"PJSIP/{NEIGHBOUR}-")]
    # Who needs help and where, in Mandarin, then the question it ends with.
    assert on_phone == ["switchboard-tts/alarm-native-who-8659187650001"], on_phone
    # Once 1 is pressed, the caller's number, digit by digit in Mandarin.
    digits = [name.rsplit(".", 1)[0] for channel, name in plays if channel.startswith("Local/")]
    assert digits == [f"switchboard-tts/alarm-native-digit-{d}" for d in CALLER], digits
