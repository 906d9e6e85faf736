"""FastAGI against the real Asterisk: every helper on a live channel."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT, wait_for

pytestmark = pytest.mark.asterisk


def run_probe(asterisk, results, script, application, within):
    """
    Serve tests.e2e.agi_probe's handlers, originate
    Local/agi-SCRIPT@switchboard-lab-test (;2 runs the handler, ;1 runs
    C{application}), and return what the handler wrote.
    """
    server = subprocess.Popen([sys.executable, "-m", "tests.e2e.agi_probe", str(results)],
                              cwd=PROJECT, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening"
        asterisk.cli(f"channel originate Local/agi-{script}@switchboard-lab-test "
                     f"application {application}")
        wait_for(lambda: results.exists(), within, message=f"the {script} probe's results")
    finally:
        server.terminate()
        server.wait(10)
    return json.loads(results.read_text())


def test_every_agi_helper_on_a_live_channel(asterisk, tmp_path):
    # ;1 waits 6 s then hangs up, which the probe must notice.
    r = run_probe(asterisk, tmp_path / "probe.json", "probe", "Wait 6", 30)
    assert r["script"] == "probe"
    assert r["env"]["context"] == "switchboard-lab-test"
    assert r["env"]["extension"] == "agi-probe"
    assert r["env"]["channel"].startswith("Local/agi-probe@switchboard-lab-test")
    assert r["channel_status"] == 6  # up
    assert r["get_variable"] == 'said "hi" \\ back'
    assert r["get_variable_unset"] is None
    assert r["get_full_variable"] == 'said "hi" \\ back/Up'
    assert r["database_get"] == "value with spaces"
    assert r["database_get_deleted"] is None
    assert r["stream_file"] == ""
    assert r["get_data"] == ""
    assert r["get_option"] == ""
    assert r["after_exec"] == "done"
    assert r["exec_unknown"] == "AGICommandError"
    assert r["hangup"] in ("AGIHangup", "AGIConnectionLost")
    # Asterisk writes its messages log a moment later (on a fresh lab the
    # file may not exist yet when the call ends): wait for the line.
    def logged():
        text = asterisk.log(300)
        return text if "switchboard probe says hello" in text else None

    wait_for(logged, 10, message="the VERBOSE line in Asterisk's log")


def test_the_rest_of_the_agi_api_on_a_live_channel(asterisk, tmp_path):
    """
    The commands beyond the first probe, on a channel whose other end plays
    a 30 s prompt (what RECORD FILE hears); their parsed replies as
    Asterisk 22 sends them.
    """
    try:
        r = run_probe(asterisk, tmp_path / "commands.json", "commands",
                      "Playback demo-congrats", 60)
    finally:
        asterisk.hang_up_all()
    print("PROBE", json.dumps({k: v for k, v in r.items() if k != "env"}))
    assert r["channel_status"] == 6
    assert r["channel_status_own"] == 6
    assert r["channel_status_other"] == 6  # the ;1 leg, playing
    assert r["channel_status_nosuch"] is None
    assert r["noop"] is None
    # A missing file: result=-1 endpos=0, not a hangup; the call goes on.
    assert r["stream_missing"] == {"digit": "", "endpos": 0, "failed": True}
    assert r["stream_beep"]["failed"] is False and r["stream_beep"]["endpos"] > 100
    assert r["control_missing"] == {"digit": "", "endpos": -1, "failed": True}
    assert r["control_beep"] == {"digit": "", "endpos": -1, "failed": False}
    assert r["option_missing"] == {"digit": "", "endpos": 0, "failed": True}
    for said in ("say_number_negative", "say_number_gender", "say_alpha", "say_phonetic",
                 "say_date", "say_time", "say_datetime"):
        assert r[said] == "", said
    assert r["get_data"] == {"digits": "", "timeout": True}
    # DATABASE DELTREE: result=0 when keys went, 1 when there were none.
    assert r["deltree"] is True
    assert r["deltree_again"] is False
    assert r["deleted"] is None
    assert r["full_variable_other"] == "Up"
    assert r["full_variable_nosuch"] is None
    assert r["context"] == "switchboard-bench"
    assert r["extension"] == "wait"
    assert r["gosub"] is True
    assert r["gosub_retval"] == "back from sub"
    assert r["gosub_args"] == "x y|7"
    assert r["gosub_nosuch"]["error"] == "AGICommandError"
    assert "Gosub label not found" in r["gosub_nosuch"]["text"]
    assert r["speech_create"]["error"] == "AGICommandError"
    assert r["tdd_mode"] is False  # only DAHDI channels have a TDD mode
    assert r["set_music_on"] is None and r["set_music_off"] is None
    assert r["asyncagi_break"] is None
    # RECORD FILE: a 1 s limit ends by timeout with about 8000 samples heard.
    timeout = r["record_timeout"]
    assert timeout["reason"] == "timeout" and timeout["digit"] == ""
    assert 4000 < timeout["endpos"] <= 9000, timeout
    # Ended by the autohangup 1.5 s later: the hangup still gives its endpos.
    hangup = r["record_hangup"]
    assert hangup["reason"] == "hangup", hangup
    assert hangup["endpos"] > 4000, hangup
    assert r["after_hangup"]["error"] == "AGIHangup"
    root = os.environ.get("SWITCHBOARD_LAB_ROOT", "/var/lib/switchboard/asterisk-root")
    for name, result in ((r["record_path"], timeout), (r["record_path"] + "-hangup", hangup)):
        path = root + name + ".ulaw"
        assert os.path.getsize(path) == result["endpos"]  # ulaw: one byte a sample
        os.unlink(path)
