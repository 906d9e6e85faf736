"""
A hotline menu written as text, end to end: the server renders it when the
routing is loaded into the lab Asterisk's sounds folder, and a SIPp
resident who dials 12345 hears that rendering (Asterisk's log names the
file it played, in the call's language) before pressing 1 for the desk.
"""

import os
from datetime import datetime

import pytest

from tests.conftest import wait_for
from tests.e2e.server import Server, lab_sounds, wait_log

pytestmark = pytest.mark.asterisk

MENU = "居委会请按1，人工服务请按0。"
ROUTING = f"""\
hotline: {{numbers: ["12345"], menu: main, operator: operator, language: zh}}
timezone: Asia/Shanghai
menus:
  main: {{prompt: {{say: "{MENU}", fallback: beep}}, options: {{1: desk}}, timeout: 8}}
destinations:
  desk: {{type: department, label: 居委会, phones: [87650061], ring_timeout: 10,
         overflow: [operator]}}
  operator: {{type: operator, phones: [87650100]}}
"""
SUBDIR = "switchboard-tts-e2e"  # this test's renderings only, removed after it


@pytest.fixture
def spoken(asterisk, tmp_path):
    folder = os.path.join(lab_sounds(), SUBDIR)
    # Made as the lab makes switchboard-tts (an administrator's step): Asterisk's
    # group, setgid. Left to the server, the folder took the mode of whichever
    # renderer came first: the alarm's (0750, root's group) made the menu
    # unreadable to Asterisk.
    asterisks = os.stat(os.path.join(lab_sounds(), "switchboard-tts")).st_gid
    os.makedirs(folder, exist_ok=True)
    os.chown(folder, -1, asterisks)
    os.chmod(folder, 0o2750)
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING, encoding="utf-8")
    server = Server(tmp_path, routing=str(routing),
                    extra=f"speech: {{sounds_dir: {lab_sounds()}, subdir: {SUBDIR}, voice: zh}}\n")
    server.start()
    yield server, folder
    assert server.stop() == 0, server.log()[-3000:]
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        os.unlink(os.path.join(folder, name))


def test_the_caller_hears_the_rendered_menu_before_pressing_a_key(spoken, sipp, asterisk):
    server, folder = spoken
    try:
        wait_log(server, "1 of 1 text prompt(s) rendered", 30)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{server.log()[-3000:]}")
    # The alarm's prompts are rendered into the same folder: find the menu's.
    from switchboard.speech import Speech
    rendered = os.path.basename(Speech(lab_sounds(), subdir=SUBDIR).path(MENU, "zh"))
    assert rendered in os.listdir(folder), os.listdir(folder)
    name, extension = os.path.splitext(rendered)
    assert extension == ".sln"
    seconds = os.path.getsize(os.path.join(folder, rendered)) / 16000  # 8 kHz, 16 bits
    assert 1.5 < seconds < 8, seconds  # a sentence, not a stock beep

    desk = sipp.phone("87650061", "answer", ring_ms=300, timeout_s=40)
    # The key comes once the menu has played to its end (GET DATA waits 8 s after).
    caller = sipp.call("12345", "87650091", keys="1", before_ms=int(seconds * 1000) + 1500,
                       hold_ms=2000, timeout_s=40)
    assert caller.wait(40) == 0
    assert len(desk.invite_times()) == 1 and desk.received("ACK")
    log = wait_for(lambda: (lambda text: f"Playing '{SUBDIR}/{name}.slin' (language 'zh')"
                            in text and text)(asterisk.log(400)), 10,
                   message="Asterisk's log of the rendered menu being played")
    lines = log.splitlines()
    played = next(i for i, line in enumerate(lines) if f"Playing '{SUBDIR}/{name}" in line)
    dialled = next(i for i, line in enumerate(lines) if i > played
                   and "Executing Application: (Dial) Options: (PJSIP/87650061" in line)
    assert not any("Playing 'beep" in line for line in lines[played:dialled])  # no fallback
    heard = (_when(lines[dialled]) - _when(lines[played])).total_seconds()
    assert heard >= seconds - 0.3, (heard, seconds)  # played to its end before the key
    wait_for(lambda: "+8659187650091" in server.cli("calls"), 10, message="the call record")


def _when(line: str) -> datetime:
    """The time of a line of Asterisk's log: C{[2026-12-03 08:15:40.744] ...}."""
    return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S.%f")
