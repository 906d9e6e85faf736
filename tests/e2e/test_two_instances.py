"""
Two switchboard instances on different FastAGI ports, one PostgreSQL, one lab
Asterisk whose SWITCHBOARD_AGI lists both: one leads the singleton duties
(AstDB), the other takes over when it is killed, and a #9 dialled while the
first server is down is served by the second (switchboard-agi), end to end.

Run with C{pytest -s} to see the figures.
"""

from __future__ import annotations

import os
import signal
import re
import time

import pytest

from tests.conftest import PROJECT, wait_for
from tests.e2e.server import Server, first_invite_sent
from tests.e2e.test_alarm_real import ALARM
from tests.e2e.test_broadcast_real import (
    BROADCAST,
    NOTICE,
    PRESSES_1,
    PRESSES_2_THEN_1,
    Phones,
    households_csv,
    report,
)
from tests.postgres import require_cluster

pytestmark = pytest.mark.asterisk

PORTS = (4581, 4582)
LEADS = "switchboard alarm singleton duties: this instance leads"
LEFT = "switchboard alarm singleton duties: this instance no longer leads"


def two_servers(asterisk, tmp_path, extra=""):
    """Two servers on one fresh PostgreSQL database (not started); the lab's AGI after."""
    cluster = require_cluster()
    url = cluster.create_database()
    alarm = tmp_path / "alarm.yaml"
    alarm.write_text(ALARM)
    servers = []
    for n, port in enumerate(PORTS):
        workdir = tmp_path / f"instance{n}"
        workdir.mkdir()
        servers.append(Server(workdir, alarm=str(alarm), port=port, database=url,
                              extra=f"journal: {workdir}/journal\n"
                                    f"http: {{port: {8591 + n}}}\n" + extra))
    servers[0].cli("households", "import", os.path.join(PROJECT, "config", "households.csv"))
    asterisk.cli("dialplan set global SWITCHBOARD_AGI "
                 + "&".join(f"agi://127.0.0.1:{p}" for p in PORTS))
    try:
        yield servers
    finally:
        asterisk.cli("dialplan set global SWITCHBOARD_AGI agi://127.0.0.1:4573")
        for server in servers:
            server.kill()
        cluster.drop_database(url)


@pytest.fixture
def pair(asterisk, tmp_path):
    yield from two_servers(asterisk, tmp_path)


@pytest.fixture
def broadcasting_pair(asterisk, tmp_path):
    yield from two_servers(asterisk, tmp_path, extra=BROADCAST)


def leads(server) -> bool:
    text = server.log()
    return text.rfind(LEADS) > text.rfind(LEFT)


def test_one_leads_the_other_takes_over_and_serves_a_hash9(pair, sipp, asterisk):
    first, second = pair
    first.start()
    wait_for(lambda: leads(first), 10, message="the first instance to lead")
    wait_for(lambda: "AstDB swb_ring" in first.log(), 20, message="the first's AstDB sync")
    second.start()
    time.sleep(3)
    assert not leads(second), "two leaders"
    assert "AstDB swb_ring" not in second.log()  # AstDB is written by the leader only

    first.kill()  # kill -9: its database connection ends with it
    killed = time.monotonic()
    wait_for(lambda: leads(second), 10, interval=0.05, message="the second to lead")
    took = time.monotonic() - killed
    wait_for(lambda: "AstDB swb_ring" in second.log(), 20, message="the second's AstDB sync")

    # A #9 now: the first FastAGI server refuses, the second serves it.
    phones = {n: sipp.phone(n, "answer", ring_ms=1500, keys="1", before_ms=5000, timeout_s=60)
              if n == "87650005" else sipp.phone(n, "ring", timeout_s=60)
              for n in ("87650002", "87650003", "87650004", "87650005")}
    caller = sipp.call("#9", "87650001", before_ms=300, hold_ms=14000, timeout_s=60)
    invite = first_invite_sent(caller)
    rung = wait_for(lambda: phones["87650002"].invite_times(), 15, message="a neighbour ringing")
    first_ring = (rung[0] - invite).total_seconds()
    alarms = wait_for(lambda: re.findall(r"(?m)^\s+(\d+)\s+\d{4}-", second.cli("alarms")), 10,
                      message="the alarm on record")
    alarm_id = alarms[0]
    wait_for(lambda: "confirmed" in second.cli("alarms", "show", alarm_id), 25,
             message="the neighbour's 1")
    caller.wait(40)
    text = second.cli("alarms", "show", alarm_id)
    print(f"\nthe second instance led {took:.2f} s after the first was killed; #9 with the "
          f"first FastAGI server down: first neighbour rang {first_ring:.3f} s after the INVITE")
    assert re.search(r"confirmed\s+\+8659187650005", text)
    assert took < 3
    log = asterisk.log(3000)
    assert "Connecting to '127.0.0.1:4581' failed" in log
    assert f"(alarm-{alarm_id},alarm_bridge,alarm_responder)" in log


def test_a_neighbour_is_answered_by_the_instance_that_holds_the_alarm(pair, sipp, asterisk,
                                                                       tmp_path):
    # Both instances up; the #9 lands on the second (listed first for it), then
    # the dialplan lists the first first again while the neighbour's phone
    # rings. The leg carries its alarm's instance (agi.advertise), which alone
    # can ask the neighbour to press 1 and put them through.
    first, second = pair
    (tmp_path / "alarm.yaml").write_text(ALARM.replace("ring_timeout: 8", "ring_timeout: 25"))
    first.start()
    second.start()
    wait_for(lambda: "AstDB swb_ring" in first.log() + second.log(), 20,
             message="the leader's AstDB sync")
    asterisk.cli("dialplan set global SWITCHBOARD_AGI "
                 + "&".join(f"agi://127.0.0.1:{p}" for p in reversed(PORTS)))
    neighbour = sipp.phone("87650005", "answer", ring_ms=6000, keys="1", before_ms=4000,
                           timeout_s=60)
    others = [sipp.phone(n, "ring", timeout_s=60) for n in ("87650002", "87650003")]
    caller = sipp.call("#9", "87650001", before_ms=300, hold_ms=25000, timeout_s=60)
    wait_for(neighbour.invite_times, 15, message="the neighbour ringing")
    asterisk.cli("dialplan set global SWITCHBOARD_AGI "
                 + "&".join(f"agi://127.0.0.1:{p}" for p in PORTS))
    alarm_id = wait_for(lambda: re.findall(r"(?m)^\s+(\d+)\s+\d{4}-", second.cli("alarms")), 10,
                        message="the alarm on record")[0]
    wait_for(lambda: "confirmed" in second.cli("alarms", "show", alarm_id), 30,
             message="the neighbour's 1, heard by the second instance")
    text = second.cli("alarms", "show", alarm_id)
    assert re.search(r"confirmed\s+\+8659187650005", text), text
    log = asterisk.log(3000)
    assert f"AGI(\"PJSIP/87650005" in log
    assert "agi://127.0.0.1:4582/alarm-responder" in log
    assert "agi://127.0.0.1:4581/alarm-responder" not in log
    caller.wait(50)
    for phone in others:
        phone.stop()



def test_a_ringing_alarm_is_taken_over_when_its_instance_is_killed(pair, sipp, asterisk,
                                                                   tmp_path):
    # The #9 is served by the only instance up, which also leads. A second
    # instance starting while the phones ring leaves that alarm alone (it is
    # held). The first is killed (-9): the second leads, and once the lease
    # has run out takes the alarm over: the phones still ringing are
    # followed (none rung again), the duty stage rings when it was due, and
    # a neighbour answering after the hand-over hears the alarm from the
    # second and is put through to the caller.
    first, second = pair
    (tmp_path / "alarm.yaml").write_text(ALARM.replace("ring_timeout: 8", "ring_timeout: 30"))
    first.start()
    wait_for(lambda: leads(first), 10, message="the first instance to lead")
    wait_for(lambda: "AstDB swb_ring" in first.log(), 20, message="the leader's AstDB sync")
    neighbour = sipp.phone("87650005", "answer", ring_ms=16000, keys="1", before_ms=5000,
                           timeout_s=90)
    others = {n: sipp.phone(n, "ring", timeout_s=90) for n in ("87650002", "87650003")}
    duty = sipp.phone("87650190", "ring", timeout_s=90)
    caller = sipp.call("#9", "87650001", before_ms=300, hold_ms=40000, timeout_s=90)
    invite = first_invite_sent(caller)
    wait_for(neighbour.invite_times, 15, message="the neighbour ringing")
    alarm_id = wait_for(lambda: re.findall(r"(?m)^\s+(\d+)\s+\d{4}-", first.cli("alarms")),
                        10, message="the alarm on record")[0]
    second.start()
    time.sleep(1.0)
    assert "recovered" not in first.cli("alarms", "show", alarm_id), "taken by the second"
    first.kill()
    killed = time.monotonic()
    wait_for(lambda: "adopted" in second.cli("alarms", "show", alarm_id), 15, interval=0.1,
             message="the second instance taking the alarm over")
    took = time.monotonic() - killed
    wait_for(lambda: re.search(r"confirmed\s+\+8659187650005",
                               second.cli("alarms", "show", alarm_id)), 40,
             message="the neighbour's 1, heard by the instance that took over")
    text = second.cli("alarms", "show", alarm_id)
    duty_rang = (duty.invite_times()[0] - invite).total_seconds() if duty.invite_times() else None
    print(f"\nalarm taken over {took:.2f} s after its instance (the leader) was killed "
          f"(lease 5 s); duty stage (due 12 s) rang {duty_rang} s after the INVITE")
    assert re.search(r"adopted.*taken over from agi://127\.0\.0\.1:4581", text), text
    assert re.search(r"confirmed\s+\+8659187650005", text), text
    assert "recovered" not in text
    assert took < 8
    for number, phone in others.items():
        assert len(phone.invite_times()) == 1, f"{number} rung twice"
    assert len(neighbour.invite_times()) == 1
    assert duty_rang is not None and 11.5 < duty_rang < 14.5, duty_rang
    assert len(duty.invite_times()) == 1
    log = asterisk.log(4000)
    assert f"(alarm-{alarm_id},alarm_bridge,alarm_responder)" in log
    assert "agi://127.0.0.1:4582/alarm-responder" in log
    caller.wait(60)
    for phone in [*others.values(), duty]:
        phone.stop()


def test_a_campaign_is_taken_up_by_the_other_instance_when_its_runner_is_killed(
        broadcasting_pair, sipp, tmp_path):
    # The instance running the campaigns is killed (-9) mid-campaign; the
    # other is elected for them and carries the campaign to its end: every
    # household hears it, nobody who had pressed 1 is called again.
    first, second = broadcasting_pair
    numbers = PRESSES_1[:5] + PRESSES_2_THEN_1[:3]   # 8 households, 4 lines: two waves
    csv_path = tmp_path / "broadcast-households.csv"
    households_csv(csv_path, numbers)
    first.cli("households", "import", str(csv_path))
    slow = dict(ring_ms=500, before_ms=2500)
    phones = Phones(sipp, {n: [("answer", dict(slow, keys="1")), ("answer", dict(slow, keys="1"))]
                           for n in numbers})
    runs = "switchboard broadcast campaigns: this instance leads"
    try:
        first.start()
        wait_for(lambda: runs in first.log(), 10, message="the first to run the campaigns")
        second.start()
        visit = tmp_path / "visit.csv"
        visit.write_text("numbers\n" + "\n".join(numbers) + "\n", encoding="utf-8")
        out = first.cli("broadcast", "send", "--text", NOTICE, "--to", str(visit))
        found = re.match(r"campaign (\d+): 8 households", out)
        assert found, out
        campaign = found.group(1)
        wait_for(lambda: re.search(r" [4-6] heard", first.cli("broadcast", "status", campaign)),
                 60, interval=0.2, message="the first households to hear it")
        assert runs not in second.log(), "two instances running the campaigns"
        first.kill()
        killed = time.monotonic()
        heard_before = {n for n, row in report(second, campaign).items() if row["heard"] == "yes"}
        assert heard_before
        wait_for(lambda: runs in second.log(), 10, interval=0.1,
                 message="the second elected for the campaigns")
        took = time.monotonic() - killed
        wait_for(lambda: "done:" in second.cli("broadcast", "status", campaign), 120,
                 interval=1.0, message="the campaign to end on the second")
    finally:
        phones.stop()
    rows = report(second, campaign)
    print(f"\ncampaigns taken up by the other instance {took:.2f} s after a kill -9; "
          f"{len(heard_before)} households had heard it before")
    assert sorted(rows) == sorted(numbers)
    assert all(rows[n]["heard"] == "yes" for n in numbers), rows
    for n in heard_before:
        assert rows[n]["calls placed"] == "1", (n, rows[n])   # never called again
    assert f"broadcast: campaign {campaign} done" in second.log()


def test_a_holder_stopped_past_its_lease_lets_its_alarm_go_when_it_wakes(pair, sipp, asterisk,
                                                                         tmp_path):
    # The holder hangs (SIGSTOP) longer than the lease: the leader takes the
    # alarm over and rings the duty stage when due. The holder, woken, finds
    # the alarm held by the other and lets it go: it rings nobody more and
    # hangs up nothing (the other follows the calls).
    first, second = pair
    (tmp_path / "alarm.yaml").write_text(ALARM.replace("ring_timeout: 8", "ring_timeout: 30"))
    first.start()
    wait_for(lambda: leads(first), 10, message="the first instance to lead")
    second.start()
    wait_for(lambda: "AstDB swb_ring" in first.log(), 20, message="the leader's AstDB sync")
    asterisk.cli("dialplan set global SWITCHBOARD_AGI "
                 + "&".join(f"agi://127.0.0.1:{p}" for p in reversed(PORTS)))
    neighbours = {n: sipp.phone(n, "ring", timeout_s=90) for n in ("87650002", "87650003")}
    duty = sipp.phone("87650190", "ring", timeout_s=90)
    caller = sipp.call("#9", "87650001", before_ms=300, hold_ms=30000, timeout_s=90)
    wait_for(neighbours["87650002"].invite_times, 15, message="a neighbour ringing")
    alarm_id = wait_for(lambda: re.findall(r"(?m)^\s+(\d+)\s+\d{4}-", second.cli("alarms")),
                        10, message="the alarm on record")[0]
    asterisk.cli("dialplan set global SWITCHBOARD_AGI "
                 + "&".join(f"agi://127.0.0.1:{p}" for p in PORTS))
    second.signal(signal.SIGSTOP)
    try:
        wait_for(lambda: "adopted" in first.cli("alarms", "show", alarm_id), 15, interval=0.2,
                 message="the leader taking the alarm over from the stopped holder")
        wait_for(duty.invite_times, 15, message="the duty stage, rung by the leader")
    finally:
        second.signal(signal.SIGCONT)
    wait_for(lambda: "another instance holds it now" in second.log(), 10,
             message="the woken holder letting the alarm go")
    time.sleep(3)
    text = first.cli("alarms", "show", alarm_id)
    assert re.search(r"adopted.*taken over from agi://127\.0\.0\.1:4582", text), text
    assert len(duty.invite_times()) == 1, "the duty phone rung by both"
    for number, phone in neighbours.items():
        assert len(phone.invite_times()) == 1, f"{number} rung twice"
    assert "ringing duty officer" in first.log()
    assert "ringing duty officer" not in second.log(), "the woken holder escalated too"
    caller.wait(50)
    for phone in [*neighbours.values(), duty]:
        phone.stop()
