"""FastAGI against the real Asterisk: every helper on a live channel."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT, wait_for

pytestmark = pytest.mark.asterisk


def test_every_agi_helper_on_a_live_channel(asterisk, tmp_path):
    results = tmp_path / "probe.json"
    server = subprocess.Popen([sys.executable, "-m", "tests.e2e.agi_probe", str(results)],
                              cwd=PROJECT, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening"
        # ;2 runs the probe; ;1 waits 6 s then hangs up, which the probe must notice.
        asterisk.cli("channel originate Local/agi-probe@switchboard-lab-test application Wait 6")
        wait_for(lambda: results.exists(), 30, message="the probe's results")
    finally:
        server.terminate()
        server.wait(10)
    r = json.loads(results.read_text())
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
    # Right after Asterisk's first start its messages log may not be written yet.
    wait_for(lambda: "switchboard probe says hello" in asterisk.log(300), 10,
             message="the probe's Verbose line in Asterisk's log")
