"""
The database's disk fails, on the lab Asterisk: the SQLite file on a
filesystem of its own (a tmpfs the test mounts) that is read-only, or full,
while the alarm journal is on another. Each test says which phones rang,
when, and what is on record.
"""

import os
import re
import subprocess

import pytest

from tests.conftest import PROJECT, wait_for
from tests.e2e.server import Server, first_invite_sent, start_in_step

pytestmark = pytest.mark.asterisk

ALARM = """\
neighbours: {max: 10, ring_timeout: 20, confirm_within: 20, retry_unanswered: 0}
escalation:
  repeat_every: 0
  stages:
    - {name: duty officer, after: 60, phones: ["87650190"]}
responder: {attempts: 3, digit_timeout: 4}
"""

NEIGHBOURS = [f"876500{n:02d}" for n in range(2, 12)]


def mount(*args):
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def disk(tmp_path):
    """A small filesystem of the test's own, for the database (and, if asked, the journal)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mount("-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(folder))
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def server_on(tmp_path, database, journal):
    alarm = tmp_path / "alarm.yaml"
    alarm.write_text(ALARM)
    server = Server(tmp_path, alarm=str(alarm))
    server.rewrite_config(f"database: sqlite:///{server.db}", f"database: sqlite:///{database}\n"
                                                              f"journal: {journal}")
    server.db = str(database)
    server.cli("households", "import", os.path.join(PROJECT, "config", "households.csv"))
    # In step with AstDB before any fault: the read-only test stops the server
    # and has Asterisk ring from it (stopped mid-resync, the caller's key was
    # missing and only the duty phone rang).
    return start_in_step(server)


def alarms(server):
    return re.findall(r"(?m)^\s+(\d+)\s+\d{4}-", server.cli("alarms", check=False))


def assert_rung_at_once(sipp, label):
    phones = [sipp.phone(n, "ring", timeout_s=40) for n in NEIGHBOURS]
    caller = sipp.call("#9", "87650001", before_ms=300, hold_ms=3000, timeout_s=40)
    invites = [wait_for(lambda p=p: p.invite_times(), 15, message="a ring")[0] for p in phones]
    first = (min(invites) - first_invite_sent(caller)).total_seconds()
    print(f"{label}: the ten neighbours rang, the first {first:.3f} s after the #9 INVITE")
    assert first < 1.5, first
    caller.wait(30)


def assert_written_later(server):
    wait_for(lambda: alarms(server), 60, message="the alarm written once the disk takes it")
    [alarm_id] = alarms(server)
    text = wait_for(lambda: (lambda t: t if t.count("ringing") >= 10 else "")(
        server.cli("alarms", "show", alarm_id)), 30, message="the whole timeline")
    assert "Hualin Garden" in text
    server.cli("alarms", "close", alarm_id)


def test_with_the_database_read_only_at_start_the_server_stays_down_and_asterisk_rings(
        disk, tmp_path, sipp, asterisk):
    # The database's filesystem went read-only (ext4 errors=remount-ro) and
    # the server is restarted onto it. It cannot read the registry (SQLite
    # in WAL mode cannot open it), so it does not start, loudly (systemd
    # tries again every second); meanwhile the dialplan rings the
    # neighbours natively from AstDB, which the server kept in step.
    server = server_on(tmp_path, disk / "switchboard.db", tmp_path / "journal")
    assert server.stop() == 0
    mount("-o", "remount,ro", str(disk))
    try:
        try:
            server.start()
        except AssertionError:
            pass
        assert server.process.wait(30) != 0
        assert "unable to open database file" in server.log()
        assert_rung_at_once(sipp, "database read-only at start, server down")
        assert "87650001 rung natively" in asterisk.log(400)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], capture_output=True)
    server.start()
    assert alarms(server) == []    # Asterisk's log holds that alarm, not the database
    server.stop()


def test_with_the_database_disk_full_the_neighbours_ring_at_once_and_it_is_written_later(
        disk, tmp_path, sipp):
    server = server_on(tmp_path, disk / "switchboard.db", tmp_path / "journal")
    filler = disk / "filler"
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=64"],
                       capture_output=True, timeout=60)   # stops at "No space left"
        assert_rung_at_once(sipp, "database disk full")
        wait_for(lambda: "database or disk is full" in server.log(), 10,
                 message="the refused write")
        assert alarms(server) == []
        filler.unlink()
        assert_written_later(server)
    finally:
        server.stop()
