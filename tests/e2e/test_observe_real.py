"""
/metrics and /healthz of a real server against the lab Asterisk: a SIPp
resident dials #9, a neighbour presses 1, and the scrape shows the alarm,
its first ring and first confirmation, its legs and the AMI link.
"""

import json
import os
import urllib.error
import urllib.request

import pytest

from tests.conftest import PROJECT, wait_for
from tests.e2e.server import Server
from tests.e2e.test_alarm_real import ALARM, CALLER, NEIGHBOURS

pytestmark = pytest.mark.asterisk

HTTP = "http://127.0.0.1:8573"


def get(path):
    """C{(status, body)} of C{GET path} on the server's HTTP port."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
    try:
        with direct.open(HTTP + path, timeout=5) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8")


def metric(text, name):
    """The value of the sample C{name} (with its labels, as written) in C{text}."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_9_alarm_seen_in_metrics_and_healthz(asterisk, sipp, tmp_path):
    alarm = tmp_path / "alarm.yaml"
    alarm.write_text(ALARM)
    server = Server(tmp_path, alarm=str(alarm))
    server.cli("households", "import", os.path.join(PROJECT, "config", "households.csv"))
    try:
        server.start()
        status, body = get("/healthz")
        assert status == 200, body
        health = json.loads(body)
        print("\n/healthz:", body.strip())
        assert (health["status"], health["fastagi"], health["ami"]) == \
            ("ok", "listening", "connected")

        for n in NEIGHBOURS:
            if n == "87650005":
                sipp.phone(n, "answer", ring_ms=1500, keys="1", before_ms=5000, timeout_s=60)
            else:
                sipp.phone(n, "ring", timeout_s=60)
        caller = sipp.call("#9", CALLER, before_ms=300, hold_ms=12000, timeout_s=60)

        def confirmed_scrape():
            text = get("/metrics")[1]
            return text if metric(text, "switchboard_alarm_first_confirmation_seconds_count") \
                else None

        text = wait_for(confirmed_scrape, 30, message="a confirmation in /metrics")
        caller.wait(40)

        assert metric(text, "switchboard_alarms_raised_total") == 1
        assert metric(text, "switchboard_alarm_legs_placed_total") >= 10
        assert metric(text, 'switchboard_alarm_legs_total{outcome="confirmed"}') == 1
        assert metric(text, "switchboard_alarm_first_ring_seconds_count") == 1
        first_ring = metric(text, "switchboard_alarm_first_ring_seconds_sum")
        confirmed = metric(text, "switchboard_alarm_first_confirmation_seconds_sum")
        assert 0 <= first_ring < 0.5, first_ring
        assert first_ring < confirmed < 30, confirmed
        assert metric(text, "switchboard_ami_up") == 1
        assert metric(text, "switchboard_fastagi_listening") == 1
        assert metric(text, 'switchboard_routing_loads_total{result="in_force"}') == 1
        assert metric(text, "switchboard_reactor_lag_seconds_count") > 0
        print(f"\nfirst ring {first_ring * 1000:.1f} ms after the #9, first confirmation "
              f"{confirmed:.2f} s")
    finally:
        server.stop()
    # Stopped: nothing listens any more.
    with pytest.raises(OSError):
        get("/healthz")
