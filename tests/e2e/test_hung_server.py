"""
A hung or killed server must not swallow a #9. res_agi has no read timeout:
a FastAGI session accepted by a server that then stops (SIGSTOP, a stalled
reactor) holds the caller in silence until the socket closes. The watchdog
(config/systemd/switchboard.service, played here by L{FakeSystemd}) kills
such a server (SIGABRT: its faulthandler logs where it hung); the kernel then closes its sessions and the dialplan rings
the caller's neighbours natively from AstDB.

Each test measures the silence: from the caller's INVITE to the first
neighbour's phone receiving its INVITE (printed; run with -s to see it).
"""

import os
import signal
from datetime import datetime

import pytest

from tests.conftest import PROJECT, wait_for
from tests.e2e.server import FakeSystemd, Server, fastagi_sessions, first_invite_sent
from tests.test_systemd import unit_settings

pytestmark = pytest.mark.asterisk

CALLER = "87650001"
NEIGHBOURS = [f"876500{n:02d}" for n in range(2, 12)]
CONFIRMING = "87650005"
UNIT = unit_settings()   # the shipped unit's watchdog
WATCHDOG_SEC = int(UNIT["WatchdogSec"][0])
WATCHDOG_SIGNAL = getattr(signal, UNIT["WatchdogSignal"][0])
ABORT_SEC = int(UNIT["TimeoutAbortSec"][0])


@pytest.fixture
def supervised(asterisk, tmp_path):
    """A server run as the unit runs it: notifying, its watchdog kept by the test."""
    server = Server(tmp_path)
    server.cli("households", "import", os.path.join(PROJECT, "config", "households.csv"))
    systemd = FakeSystemd(tmp_path, WATCHDOG_SEC, WATCHDOG_SIGNAL, ABORT_SEC)
    server.start(env=systemd.environment)
    wait_for(lambda: "AstDB swb_ring" in server.log(), 20, message="the AstDB sync")
    wait_for(lambda: systemd.times("READY=1"), 20, message="READY=1")
    yield server, systemd
    server.kill()
    systemd.close()


def ring_group(sipp):
    """The ten neighbours' phones: one answers and presses 1, the others ring."""
    confirmer = sipp.phone(CONFIRMING, "answer", ring_ms=800, keys="1", before_ms=800,
                           timeout_s=60)
    others = [sipp.phone(n, "ring", timeout_s=60) for n in NEIGHBOURS if n != CONFIRMING]
    return confirmer, others


def assert_rung_natively(asterisk, caller, confirmer, others):
    assert caller.wait(60) == 0, open(caller.messages_path).read()[-3000:]
    rang = [p for p in others + [confirmer] if p.invite_times()]
    assert len(rang) == 10
    assert confirmer.received("ACK")  # pressed 1 and was put through
    assert f"ALARM from {CALLER} rung natively" in asterisk.log(400)
    return min(p.invite_times()[0] for p in rang)


def test_a_caller_whose_session_is_cut_mid_way_is_rung_natively(supervised, asterisk, sipp):
    # The server is stopped, so Asterisk's session waits in its backlog with
    # the environment sent and unread; the server is then killed (SIGKILL,
    # an OOM kill, a crash): the kernel closes the session.
    server, _ = supervised
    confirmer, others = ring_group(sipp)
    server.signal(signal.SIGSTOP)
    caller = sipp.call("#9", CALLER, before_ms=200, hold_ms=9000, timeout_s=60)
    invited = first_invite_sent(caller)
    wait_for(lambda: fastagi_sessions() > 0, 10, interval=0.01,
             message="Asterisk's FastAGI session")
    server.signal(signal.SIGKILL)
    killed = datetime.now()
    first_ring = assert_rung_natively(asterisk, caller, confirmer, others)
    silence = (first_ring - invited).total_seconds()
    print(f"\nMEASURED server killed mid-session: {silence:.2f} s from the #9 INVITE to the "
          f"first neighbour ringing natively, {(first_ring - killed).total_seconds():.2f} s "
          "of it after the kill")
    assert (first_ring - killed).total_seconds() < 3


def test_a_hung_server_is_killed_by_the_watchdog_and_its_caller_rung_natively(
        supervised, asterisk, sipp):
    server, systemd = supervised
    # Fed while its reactor turns, at half the watchdog interval.
    first, second = systemd.next("WATCHDOG=1"), systemd.next("WATCHDOG=1")
    assert abs((second - first) - WATCHDOG_SEC / 2) < 0.5
    confirmer, others = ring_group(sipp)
    # It hangs just after a WATCHDOG=1, the longest the watchdog waits,
    # and a resident dials #9 at once.
    systemd.next("WATCHDOG=1")
    server.signal(signal.SIGSTOP)
    stalled = datetime.now()
    watchdog = systemd.watch(server.process)
    caller = sipp.call("#9", CALLER, before_ms=200, hold_ms=9000, timeout_s=60)
    invited = first_invite_sent(caller)
    watchdog.join(WATCHDOG_SEC + ABORT_SEC + 10)
    assert systemd.killed_at is not None, "the watchdog did not kill the hung server"
    assert (systemd.killed_at - stalled).total_seconds() >= WATCHDOG_SEC - 0.5
    # SIGABRT was enough, and the log says where it hung.
    # (faulthandler's dump of every thread, on the abort, is not async-signal
    # safe: once in a loaded CI run the process then died of SIGSEGV instead,
    # its dump written. Dead either way, by the watchdog's first signal.)
    assert not systemd.forced
    assert server.process.returncode in (-WATCHDOG_SIGNAL, -signal.SIGSEGV)
    assert "Fatal Python error: Aborted" in server.log()
    assert "Current thread" in server.log() or "Thread 0x" in server.log()
    first_ring = assert_rung_natively(asterisk, caller, confirmer, others)
    silence = (first_ring - invited).total_seconds()
    print(f"\nMEASURED server hung (WatchdogSec={WATCHDOG_SEC}): {silence:.2f} s from the #9 "
          f"INVITE to the first neighbour ringing natively; killed "
          f"{(systemd.killed_at - stalled).total_seconds():.2f} s after the stall, first ring "
          f"{(first_ring - systemd.killed_at).total_seconds():.2f} s after the kill")
    assert silence < WATCHDOG_SEC + 3
