"""
Two Asterisk servers, one switchboard (issue 18): the lab's second Asterisk,
C{b}, runs from a root of its own on 127.0.0.2 (same ports as the first's on
127.0.0.1, loopback only), its trunk to the first is its PJSIP endpoint
C{lab-peer}. The switchboard keeps an AMI link to each (C{asterisks:}).

- A #9 dialled on C{b} rings the caller's neighbours from C{b} (through its
  trunk to C{a}, where their phones are), and the neighbour who presses 1 is
  put into the caller's room on C{b}.
- C{b} stopped in the middle of calls: a hotline call and an alarm on C{a}
  go on as if nothing happened.
- No AMI link to C{b}: a #9 on C{b} is rung natively there (its AstDB).
- AstDB is written on both, each with its own dial strings, and on C{b}
  again when it comes back.
"""

from __future__ import annotations

import os
import re

import pytest

from lab.sipp import SippFactory
from tests.conftest import LabAsterisk, _unavailable, wait_for
from tests.e2e.server import Server, first_invite_sent
from tests.e2e.test_alarm_real import ALARM
from tests.e2e.test_hotline_real import ROUTING

pytestmark = pytest.mark.asterisk

SECOND = "127.0.0.2"

SERVERS = """\
asterisks:
  - {name: a, host: 127.0.0.1}
  - {name: b, host: 127.0.0.2, trunks: {default: "PJSIP/{number}@lab-peer"}}
"""


@pytest.fixture(scope="module")
def second_asterisk(asterisk):
    """
    The second lab Asterisk (lab/asterisk-lab with SWITCHBOARD_LAB_*): its root
    is the first's copied beside it (C{ROOT2}) the first time. Under CI
    (SWITCHBOARD_REQUIRE_ASTERISK=1) a second that cannot start fails the tests.
    """
    first = os.environ.get("SWITCHBOARD_LAB_ROOT", "/var/lib/switchboard/asterisk-root")
    lab = LabAsterisk({"SWITCHBOARD_LAB_ROOT": first + "2", "SWITCHBOARD_LAB_SOURCE": first,
                       "SWITCHBOARD_LAB_ADDRESS": SECOND, "SWITCHBOARD_LAB_NAME": "b",
                       "SWITCHBOARD_LAB_PEER": asterisk.address,
                       "SWITCHBOARD_LAB_RTP": "30000-39999"})
    try:
        lab.start()
    except Exception as e:
        said = getattr(e, "stderr", None) or b""
        _unavailable("the second lab Asterisk did not start: "
                     + (said.decode(errors="replace") if said else str(e))[-2000:])
    yield lab
    lab.stop()


@pytest.fixture
def phones_b(tmp_path, second_asterisk):
    """SIPp phones and callers of the second Asterisk (on 127.0.0.2)."""
    factory = SippFactory(str(tmp_path / "b"), address=SECOND)
    os.makedirs(factory.workdir, exist_ok=True)
    yield factory
    try:
        second_asterisk.hang_up_all()
    finally:
        factory.stop_all()


@pytest.fixture
def server(asterisk, second_asterisk, tmp_path):
    """A switchboard linked to both, the sample registry in its database (not started)."""
    alarm = tmp_path / "alarm.yaml"
    alarm.write_text(ALARM.replace("ring_timeout: 8", "ring_timeout: 20"))
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING, encoding="utf-8")
    server = Server(tmp_path, alarm=str(alarm), routing=str(routing), extra=SERVERS)
    server.cli("households", "import", os.path.join(os.path.dirname(__file__), "..", "..",
                                                    "config", "households.csv"))
    yield server
    server.kill()


def alarm_on_record(server) -> str:
    return wait_for(lambda: re.findall(r"(?m)^\s+(\d+)\s+\d{4}-", server.cli("alarms")), 15,
                    message="the alarm on record")[0]


def astdb(lab, key) -> str:
    out = lab.cli(f"database get swb_ring {key}")
    return out.split("Value:", 1)[1].strip() if "Value:" in out else ""


def test_astdb_is_written_on_both(server, asterisk, second_asterisk):
    key = "01/8659187650001"
    for lab in (asterisk, second_asterisk):
        lab.cli("database deltree swb_ring")
        assert astdb(lab, key) == ""
    server.start()
    wait_for(lambda: astdb(asterisk, key) and astdb(second_asterisk, key), 30,
             message="household 87650001's key in both AstDBs")
    # Each with its own dial strings: b reaches a's phones through its trunk.
    assert "PJSIP/87650002" in astdb(asterisk, key)
    assert "@lab-peer" not in astdb(asterisk, key)
    assert "PJSIP/87650002@lab-peer" in astdb(second_asterisk, key)
    assert astdb(second_asterisk, "duty")
    # b restarted with its AstDB emptied meanwhile: b's own reconnect puts it
    # right (AstDB survives a restart; the deltree stands for what changed).
    second_asterisk.cli("database deltree swb_ring")
    second_asterisk.restart()
    wait_for(lambda: "PJSIP/87650002@lab-peer" in astdb(second_asterisk, key), 30,
             message="b's AstDB put right after its restart")
    assert server.process.poll() is None


def test_a_hash9_on_the_second_rings_from_there_and_the_1_joins_the_caller_there(
        server, sipp, phones_b, asterisk, second_asterisk):
    server.start()
    wait_for(lambda: "AMI connected to Asterisk b" in server.log(), 15,
             message="the AMI link to b")
    neighbour = sipp.phone("87650005", "answer", ring_ms=1500, keys="1", before_ms=5000,
                           timeout_s=60)
    ringing = [sipp.phone(n, "ring", timeout_s=60) for n in ("87650002", "87650003")]
    caller = phones_b.call("#9", "87650001", before_ms=300, hold_ms=16000, timeout_s=60)
    invite = first_invite_sent(caller)
    rung = wait_for(neighbour.invite_times, 15, message="the neighbour ringing")[0]
    alarm_id = alarm_on_record(server)
    wait_for(lambda: "confirmed" in server.cli("alarms", "show", alarm_id), 25,
             message="the neighbour's 1")
    assert caller.wait(40) == 0
    text = server.cli("alarms", "show", alarm_id)
    assert re.search(r"confirmed\s+\+8659187650005", text), text
    print(f"\n#9 on b: neighbour on a rang {(rung - invite).total_seconds():.3f} s after "
          f"the INVITE, through b's trunk")
    log_b = second_asterisk.log(5000)
    # Originated on b (the caller's), reaching a's phone through b's trunk,
    # answered there over FastAGI and put into the caller's room on b.
    assert "Called 87650005@lab-peer" in log_b
    assert re.search(rf'switchboard-alarm-responder:1\] NoOp\("PJSIP/lab-peer-\w+", '
                     rf'"switchboard: alarm {alarm_id} leg', log_b)
    assert f"(alarm-{alarm_id},alarm_bridge,alarm_responder)" in log_b
    assert f"(alarm-{alarm_id},alarm_bridge,alarm_caller" in log_b
    for phone in ringing:
        assert phone.invite_times()


def test_one_asterisk_stopped_mid_call_leaves_the_others_calls_alone(
        server, sipp, phones_b, asterisk, second_asterisk):
    server.start()
    wait_for(lambda: "AMI connected to Asterisk b" in server.log(), 15,
             message="the AMI link to b")
    # A hotline call on b, under way when b stops.
    desk_b = phones_b.phone("87650061", "answer", ring_ms=500, timeout_s=60)
    caller_b = phones_b.call("12345", "87650072", keys="1", before_ms=1500, hold_ms=20000,
                             timeout_s=60)
    wait_for(desk_b.invite_times, 15, message="b's hotline call put through")
    # On a: a hotline call, and an alarm whose neighbour presses 1 after b is gone.
    desk_a = sipp.phone("87650061", "answer", ring_ms=500, timeout_s=60)
    caller_a = sipp.call("12345", "87650071", keys="1", before_ms=1500, hold_ms=9000,
                         timeout_s=60)
    neighbour = sipp.phone("87650005", "answer", ring_ms=6000, keys="1", before_ms=4000,
                           timeout_s=60)
    alarm_caller = sipp.call("#9", "87650001", before_ms=300, hold_ms=20000, timeout_s=60)
    wait_for(neighbour.invite_times, 15, message="the neighbour on a ringing")
    wait_for(desk_a.invite_times, 15, message="a's hotline call put through")
    try:
        second_asterisk.stop()  # mid-call on b, and on a
        lost_b = r"AMI [^\n]*127\.0\.0\.2[^\n]*(lost|cannot connect)"
        wait_for(lambda: re.search(lost_b, server.log(), re.I), 15,
                 message="the switchboard to lose b")
        alarm_id = alarm_on_record(server)
        wait_for(lambda: "confirmed" in server.cli("alarms", "show", alarm_id), 30,
                 message="the neighbour's 1 on a, b stopped")
        assert caller_a.wait(40) == 0
        assert alarm_caller.wait(40) == 0
        text = server.cli("alarms", "show", alarm_id)
        assert re.search(r"confirmed\s+\+8659187650005", text), text
        calls = wait_for(lambda: "+8659187650071" in server.cli("calls") and server.cli("calls"),
                         10, message="a's call record")
        line = next(l for l in calls.splitlines() if "+8659187650071" in l)
        assert "answered" in line, calls
        assert server.process.poll() is None, "the switchboard went down with b"
        log = asterisk.log(5000)
        assert f"(alarm-{alarm_id},alarm_bridge,alarm_responder)" in log
    finally:
        caller_b.stop()
        second_asterisk.start()


def test_without_a_link_to_the_callers_asterisk_it_rings_natively_there(
        server, sipp, phones_b, asterisk, second_asterisk):
    # b's AstDB in step first; then the switchboard restarted unable to reach
    # b's AMI (a wrong port): a #9 on b is today's no-link fallback, the
    # dialplan's ring-all from b's own AstDB (through b's trunk to a's phones).
    key = "01/8659187650001"
    server.start()
    wait_for(lambda: "@lab-peer" in astdb(second_asterisk, key), 30, message="b's AstDB")
    server.stop()
    server.rewrite_config("{name: b, host: 127.0.0.2,", "{name: b, host: 127.0.0.2, port: 5099,")
    server.start()
    neighbour = sipp.phone("87650005", "answer", ring_ms=1000, keys="1", before_ms=1000,
                           timeout_s=60)
    ringing = [sipp.phone(n, "ring", timeout_s=60) for n in ("87650002", "87650003")]
    caller = phones_b.call("#9", "87650001", before_ms=300, hold_ms=9000, timeout_s=60)
    alarm_id = alarm_on_record(server)
    assert caller.wait(40) == 0
    wait_for(lambda: "native" in server.cli("alarms", "show", alarm_id), 10,
             message="the alarm on record as rung natively")
    assert neighbour.received("ACK")
    for phone in ringing:
        assert phone.invite_times()
    log_b = second_asterisk.log(3000)
    assert "ALARM from 87650001 rung natively" in log_b
    assert "87650005@lab-peer" in log_b
    assert server.process.poll() is None
