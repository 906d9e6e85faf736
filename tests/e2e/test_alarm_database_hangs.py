"""
The database hangs instead of failing (a long transaction holding a lock, a
stuck migration, an administrator's session; or a partition, whose TCP
retries last minutes), on PostgreSQL; a #9 caller must not wait on it:

- the server has restarted and the caller index cannot load, so a #9
  caller's household cannot be read: the neighbours ring natively from AstDB
  within the lookup's deadline, and the alarm is on record as handed to the
  dialplan once the lock goes;
- the server was stopped longer than a lease: the lease round that says
  what it still holds cannot end, and its calls wait for that round at most
  CHECK_DEADLINE.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time

import pytest
from sqlalchemy import create_engine, text

from alarm.handlers import LOOKUP_DEADLINE
from switchboard.leases import CHECK_DEADLINE, LEASE_SECONDS
from tests.conftest import PROJECT, wait_for
from tests.e2e.server import Server, first_invite_sent, start_in_step
from tests.e2e.test_alarm_real import ALARM, CALLER, NEIGHBOURS
from tests.postgres import require_cluster

pytestmark = pytest.mark.asterisk


@pytest.fixture
def server(asterisk, tmp_path):
    cluster = require_cluster()
    url = cluster.create_database()
    alarm = tmp_path / "alarm.yaml"
    alarm.write_text(ALARM)
    server = Server(tmp_path, alarm=str(alarm), database=url,
                    extra=f"journal: {tmp_path}/journal\n")
    server.cli("households", "import", os.path.join(PROJECT, "config", "households.csv"))
    try:
        yield server, url
    finally:
        server.kill()
        cluster.drop_database(url)


@contextlib.contextmanager
def locked(url, table):
    """Another session's transaction holds C{table} (ACCESS EXCLUSIVE) until the block ends."""
    engine = create_engine(url)
    holder = engine.connect()
    try:
        holder.begin()
        holder.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        yield
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()


def hash9(sipp, hold_ms):
    """A #9 from CALLER: its SIPp call, and seconds from its INVITE to the first neighbour's ring."""
    phones = [sipp.phone(n, "ring", timeout_s=40) for n in NEIGHBOURS]
    caller = sipp.call("#9", CALLER, before_ms=300, hold_ms=hold_ms, timeout_s=40)
    invites = [wait_for(lambda p=p: p.invite_times(), 15, message="a neighbour's ring")[0]
               for p in phones]
    return caller, (min(invites) - first_invite_sent(caller)).total_seconds()


def test_a_registry_that_hangs_is_not_waited_for(server, sipp, asterisk):
    server, url = server
    # AstDB in step (the native fallback's copy of the registry); then the
    # server restarts while another session holds the numbers' table.
    start_in_step(server)
    assert server.stop() == 0
    with locked(url, "alarm_household_number"):
        begun = len(server.log())
        server.start()
        caller, first = hash9(sipp, hold_ms=4000)
        print(f"registry locked: the ten neighbours rang natively, the first {first:.3f} s "
              f"after the #9 INVITE (lookup deadline {LOOKUP_DEADLINE} s)")
        assert first < LOOKUP_DEADLINE + 1.0, first
        caller.wait(30)
        assert f"ALARM from {CALLER} rung natively" in asterisk.log(400)
        assert "alarm registry loaded" not in server.log()[begun:]   # still held
    wait_for(lambda: "alarm registry loaded" in server.log()[begun:], 30,
             message="the index to load")
    listing = wait_for(lambda: re.search(r"(?m)^\s+(\d+)\s+\d{4}-.*", server.cli("alarms")),
                       30, message="the alarm on record")
    text_ = server.cli("alarms", "show", listing.group(1))
    assert "native" in text_
    assert "the registry did not answer" in text_
    assert server.stop() == 0


def test_after_a_stall_a_lease_round_that_hangs_does_not_keep_a_new_alarm_silent(
        server, sipp, asterisk):
    server, url = server
    start_in_step(server)
    wait_for(lambda: "alarm singleton duties: this instance leads" in server.log(), 10,
             message="the lead (its lease rounds read every lapsed alarm)")
    server.signal(signal.SIGSTOP)                # a paused VM, a hung host
    try:
        with locked(url, "alarm"):
            time.sleep(LEASE_SECONDS + 1.5)
            begun = len(server.log())
            server.signal(signal.SIGCONT)
            caller, first = hash9(sipp, hold_ms=5000)
            print(f"stalled, then the lease round hung: the ten neighbours rang, the first "
                  f"{first:.3f} s after the #9 INVITE (deadline {CHECK_DEADLINE} s)")
            assert first < CHECK_DEADLINE + 1.0, first
            assert "no lease round has ended within" in server.log()[begun:]
            caller.wait(30)
    finally:
        server.signal(signal.SIGCONT)
    listing = wait_for(lambda: re.search(r"(?m)^\s+(\d+)\s+\d{4}-.*", server.cli("alarms")),
                       30, message="the alarm on record once the lock went")
    assert "ringing" in server.cli("alarms", "show", listing.group(1))
    assert server.stop() == 0
