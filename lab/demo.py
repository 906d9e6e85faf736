"""
The demo: switchboard on its embedded defaults (SQLite, config/) against the
real lab Asterisk, with SIPp phones standing in for residents, departments
and neighbours.

1. a resident calls the hotline 12345 and presses 1 (the residents' committee);
2. a resident dials #9: ten neighbours' phones ring at once, one presses 1
   and is put through; the alarm's timeline is printed.
3. a voice broadcast: a short notice to four households, whose phones
   press 1, press 2 (again) then 1, are busy then press 1 when called
   again, and never answer; then its report, as staff get it.
4. the duty board (http://127.0.0.1:8573/board/) shows it live: a duty
   account "demo" is made with a random password, printed once; at a
   terminal the server and its board stay up afterwards until Ctrl-C.

Run it with ./dev demo (root: the lab Asterisk runs in a chroot).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

from datetime import datetime
from zoneinfo import ZoneInfo

from lab.sipp import Phones, SippFactory

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(PROJECT, "lab", "asterisk-lab")
WORK = os.path.join(PROJECT, "var", "demo")
TIMEZONE = "Asia/Shanghai"  # config/switchboard.yaml's
BOARD = "http://127.0.0.1:8573/board/"  # config/switchboard.yaml's http: port
# The lab Asterisk's manager secret (lab/asterisk/manager.conf), given the
# way config/switchboard.yaml asks: in the environment, not in the file.
ENVIRONMENT = dict(os.environ, SWITCHBOARD_AMI_SECRET="lab-secret-not-for-production")
LAB_SOUNDS = os.path.join(os.environ.get("SWITCHBOARD_LAB_ROOT", "/var/lib/switchboard/asterisk-root"),
                          "usr/share/asterisk/sounds")
BROADCAST = ("\nbroadcast: {lines: 4, retries: 1, retry_after: 4, ring_timeout: 8, "
             "quiet_hours: null}\n")
NOTICE = "今晚八点到十点，三号楼停水。"
# Chen Mei's household as staff in Fuzhou would write it (the sample CSV is in English).
CHEN_MEI = dict(community="华林花园", building="3", unit="1", room="101", residents="陈梅",
                notes="行动不便，独居，听力不好")


def say(text: str = "") -> None:
    print(text, flush=True)


def switchboard(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "switchboard.cli", "--config",
                             os.path.join(WORK, "switchboard.yaml"), *args],
                            cwd=PROJECT, capture_output=True, text=True, env=ENVIRONMENT)
    if result.returncode != 0:
        raise SystemExit(f"switchboard {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def write_config() -> None:
    """config/switchboard.yaml as it is, with a fresh database of the demo's own."""
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK, mode=0o700)  # its database holds the sample residents
    with open(os.path.join(PROJECT, "config", "switchboard.yaml"), encoding="utf-8") as f:
        text = f.read()
    config_dir = os.path.join(PROJECT, "config")
    text = re.sub(r"(?m)^database: .*$", f"database: sqlite:///{WORK}/switchboard.db", text)
    for key in ("routing", "alarm", "households"):
        text = re.sub(rf"(?m)^{key}: (\S+)", lambda m, k=key: f"{k}: {os.path.join(config_dir, m.group(1))}", text)
    # Prompts are rendered where the lab Asterisk reads its sounds.
    text = re.sub(r"(?m)^  sounds_dir: .*$", f"  sounds_dir: {LAB_SOUNDS}", text)
    # The broadcast at any hour, retried within seconds (the demo is short).
    text += BROADCAST
    with open(os.path.join(WORK, "switchboard.yaml"), "w", encoding="utf-8") as f:
        f.write(text)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"demo: timed out waiting for {what}")


def main() -> int:
    if os.geteuid() != 0:
        raise SystemExit("demo: run as root (the lab Asterisk runs in a chroot): sudo ./dev demo")
    say("== starting the lab Asterisk 22 (lab/asterisk-lab start)")
    subprocess.run([LAB, "start"], check=True)
    write_config()
    say("== importing the sample households (config/households.csv)")
    say(switchboard("households", "import", os.path.join(PROJECT, "config", "households.csv")).strip())
    say(switchboard("households", "import", chen_mei_in_chinese()).strip())
    login = demo_staff()
    say("== starting switchboard run")
    log_path = os.path.join(WORK, "server.log")
    log = open(log_path, "w")
    server = subprocess.Popen([sys.executable, "-m", "switchboard.cli", "--config",
                               os.path.join(WORK, "switchboard.yaml"), "run"],
                              cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT, env=ENVIRONMENT)
    phones = SippFactory(os.path.join(WORK, "sipp"))
    os.makedirs(phones.workdir, exist_ok=True)
    try:
        wait_for(lambda: "AMI connected" in open(log_path).read(), 30, "the server")
        say(f"   the duty board: {BOARD}  login {login[0]} / {login[1]} (shown once)")
        hotline(phones)
        phones.stop_all()
        announcement_wav(log_path)
        alarm(phones)
        phones.stop_all()
        broadcast(phones)
        keep_board(login)
    finally:
        phones.stop_all()
        server.terminate()
        server.wait(15)
        subprocess.run([LAB, "stop"], capture_output=True)
    say(f"\nserver log: {log_path}")
    return 0


def demo_staff() -> tuple:
    """A duty account for the board, with a random password (printed once, never stored)."""
    import secrets
    password = secrets.token_urlsafe(12)
    result = subprocess.run([sys.executable, "-m", "switchboard.cli", "--config",
                             os.path.join(WORK, "switchboard.yaml"), "staff", "add", "demo",
                             "--role", "duty", "--password-stdin"], cwd=PROJECT,
                            input=password + "\n", capture_output=True, text=True,
                            env=ENVIRONMENT)
    if result.returncode != 0:
        raise SystemExit(f"switchboard staff add failed:\n{result.stderr}")
    return "demo", password


def keep_board(login) -> None:
    """At a terminal, the server (and its board) stays up until Ctrl-C."""
    if not sys.stdin.isatty():
        say(f"\n(not a terminal: the server stops; at one, the board at {BOARD} stays up)")
        return
    say(f"\n== the duty board stays up: {BOARD}  login {login[0]} / {login[1]}")
    say("   (the demo's alarm is under 最近的警报 with its timeline; Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        say("")


def chen_mei_in_chinese() -> str:
    """A one-row CSV that rewrites household 87650001 in Chinese (same phones and neighbours)."""
    import csv
    with open(os.path.join(PROJECT, "config", "households.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    row = next(r for r in rows if r["numbers"] == "87650001")
    row.update(CHEN_MEI)
    path = os.path.join(WORK, "chen-mei.csv")
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerow(row)
    return path


def announcement_wav(log_path: str) -> None:
    """
    The file the server rendered for Chen Mei's neighbours (as Asterisk plays
    it: 8 kHz signed linear), copied to a WAV file next to the server log.
    """
    import wave

    from alarm.announcement import announcement
    from alarm.speaking import make_speech
    from switchboard.settings import SpeechSettings
    text = announcement(**CHEN_MEI)
    speech = make_speech(SpeechSettings(sounds_dir=LAB_SOUNDS))
    say("\n== what Chen Mei's neighbours hear")
    say(text)
    if not speech.available:
        say(f"(not rendered: {speech.unavailable_reason}; neighbours hear the stock prompts)")
        return
    rendered = speech.path(text)
    wait_for(lambda: os.path.exists(rendered), 60, "the announcement to be rendered")
    with open(rendered, "rb") as f:
        audio = f.read()
    out = os.path.join(os.path.dirname(log_path), "announcement-87650001.wav")
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(speech.rate)
        w.writeframes(audio)
    os.chmod(out, 0o600)  # a resident's name and where she lives
    say(f"{out} ({len(audio) / 2 / speech.rate:.1f} s, rendered as {rendered})")


def hotline(phones: SippFactory) -> None:
    say("\n== 1. a resident (0591-87650088) calls the hotline 12345 and presses 1")
    now = datetime.now(ZoneInfo(TIMEZONE)).strftime("%Y-%m-%d %H:%M")
    say(switchboard("route", "--at", now, "--digits", "1").rstrip())
    # Every phone the call might reach answers, so the demo shows where it went.
    for number in ("87650001", "87650002", "87650190", "87650100"):
        phones.phone(number, "answer", ring_ms=1500, timeout_s=40)
    caller = phones.call("12345", "87650088", keys="1", before_ms=2000, hold_ms=6000, timeout_s=40)
    caller.wait(45)
    wait_for(lambda: "+8659187650088" in switchboard("calls"), 15, "the call record")
    say("\n-- switchboard calls")
    say(switchboard("calls", "--limit", "1").rstrip())


def alarm(phones: SippFactory) -> None:
    say("\n== 2. Chen Mei (87650001, 华林花园3号楼1单元101室) dials #9 (on the board too)")
    neighbours = [f"876500{n:02d}" for n in range(2, 12)]
    for number in neighbours:
        if number == "87650005":
            # This neighbour answers, hears who needs help and where, and presses 1.
            phones.phone(number, "answer", ring_ms=2000, keys="1", before_ms=9000, timeout_s=60)
        else:
            phones.phone(number, "ring", timeout_s=60)
    caller = phones.call("#9", "87650001", before_ms=500, hold_ms=30000, timeout_s=60)
    time.sleep(3)
    rang = [p for p in phones.running if p.name.startswith("phone-") and p.invite_times()]
    times = sorted(t for p in rang for t in p.invite_times()[:1])
    if times:
        spread = (times[-1] - times[0]).total_seconds() * 1000
        say(f"{len(rang)} neighbours' phones rang, all within {spread:.0f} ms")
    caller.wait(60)
    listing = switchboard("alarms")
    say("\n-- switchboard alarms")
    say(listing.rstrip())
    ids = re.findall(r"(?m)^\s*#?(\d+)\b", listing)
    if ids:
        say(f"\n-- switchboard alarms show {ids[0]}")
        say(switchboard("alarms", "show", ids[0]).rstrip())



def broadcast(phones: SippFactory) -> None:
    say(f"\n== 3. a voice broadcast to four households: {NOTICE}")
    answer = dict(ring_ms=800, before_ms=2500)
    plans = {"87650002": [("answer", dict(answer, keys="1"))],
             "87650003": [("answer", dict(answer, keys="21"))],
             "87650004": [("busy", {}), ("answer", dict(answer, keys="1"))],
             "87650006": [("ring", {}), ("ring", {})]}
    say("   87650002 presses 1; 87650003 presses 2 (again), then 1; 87650004 is busy, "
        "then presses 1; 87650006 never answers")
    visit = os.path.join(WORK, "broadcast-households.csv")
    with open(visit, "w", encoding="utf-8") as f:
        f.write("numbers\n" + "".join(f"{n}\n" for n in plans))
    sequence = Phones(phones, plans)
    try:
        say(switchboard("broadcast", "send", "--text", NOTICE, "--to", visit).rstrip())
        wait_for(lambda: "done:" in switchboard("broadcast", "status", "1"), 90,
                 "the broadcast to end")
    finally:
        sequence.stop()
    say("\n-- switchboard broadcast status 1")
    say(switchboard("broadcast", "status", "1").rstrip())
    say("\n-- switchboard broadcast report 1 --csv -")
    say(switchboard("broadcast", "report", "1", "--csv", "-").rstrip())


if __name__ == "__main__":
    sys.exit(main())
