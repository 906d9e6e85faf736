"""
The systemd contract (READY, WATCHDOG, STOPPING) without systemd: a real
AF_UNIX datagram socket stands in as NOTIFY_SOCKET, a memory clock as time.
"""

import os
import socket

import pytest
from twisted.internet import task
from twisted.internet.testing import MemoryReactorClock

from switchboard.service import SwitchboardService
from switchboard.systemd import Notifier, Watchdog, watchdog_interval
from tests.test_service import FakeAMI, Feature, settings


@pytest.fixture
def notify_socket(tmp_path):
    """What systemd listens on: returns (NOTIFY_SOCKET value, a function reading what came)."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)

    def received():
        messages = []
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except BlockingIOError:
                return messages

    yield path, received
    sock.close()


def test_a_message_is_one_datagram_to_the_socket(notify_socket):
    path, received = notify_socket
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": path})
    assert notifier.notify("READY=1")
    assert notifier.notify("STATUS=serving")
    assert received() == ["READY=1", "STATUS=serving"]


def test_an_abstract_socket_is_reached_through_its_at_sign():
    name = f"switchboard-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        Notifier("@" + name).notify("WATCHDOG=1")
        assert sock.recv(100) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_outside_systemd_nothing_is_sent_and_nothing_fails(tmp_path):
    assert not Notifier.from_environment({}).notify("READY=1")
    # systemd gone (no one listens there): logged, not raised.
    assert not Notifier(str(tmp_path / "nobody")).notify("WATCHDOG=1")


def test_the_watchdog_is_fed_at_half_the_interval_systemd_asks_for():
    assert watchdog_interval({"WATCHDOG_USEC": "5000000"}) == 2.5
    assert watchdog_interval({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "123"}, pid=123) == 2.5
    # Meant for another process, or not asked for at all.
    assert watchdog_interval({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "123"}, pid=124) is None
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def test_the_watchdog_is_fed_only_while_the_clock_turns(notify_socket):
    path, received = notify_socket
    clock = task.Clock()
    watchdog = Watchdog(Notifier(path), 2.5, clock=clock)
    watchdog.start()
    assert received() == ["WATCHDOG=1"]
    clock.advance(2.4)
    assert received() == []
    clock.advance(0.1)
    assert received() == ["WATCHDOG=1"]
    clock.pump([2.5] * 4)
    assert received() == ["WATCHDOG=1"] * 4
    watchdog.stop()
    clock.advance(10)
    assert received() == []


def server(tmp_path, path, ami, events, interval=2.5, grace=5.0):
    reactor = MemoryReactorClock()
    service = SwitchboardService(settings(tmp_path), reactor=reactor, ami=ami,
                                 notifier=Notifier(path), watchdog_interval=interval,
                                 ami_grace=grace)
    service.add_feature(Feature("alarm", events))
    return reactor, service


@pytest.mark.database
def test_ready_once_the_port_is_open_and_ami_logged_in(tmp_path, notify_socket):
    path, received = notify_socket
    ami, events = FakeAMI(), []
    reactor, service = server(tmp_path, path, ami, events)
    service.startService()
    assert reactor.tcpServers  # the FastAGI port is open...
    assert received() == ["WATCHDOG=1"]  # ...but AMI has not been tried yet
    reactor.advance(1)
    for callback in ami.connect_callbacks:
        callback(ami)
    assert received() == ["READY=1"]
    # Fed on while the reactor turns; READY is said once.
    reactor.advance(2.5)
    for callback in ami.connect_callbacks:
        callback(ami)
    reactor.advance(2.5)
    assert received() == ["WATCHDOG=1", "WATCHDOG=1"]
    service.stopService()
    assert received() == ["STOPPING=1"]
    reactor.advance(30)
    assert received() == []


@pytest.mark.database
def test_ready_without_ami_once_the_grace_has_gone_by(tmp_path, notify_socket):
    # The alarm is served without AMI (the dialplan rings natively), so a
    # refused or unreachable AMI must not keep systemd waiting for ever.
    path, received = notify_socket
    reactor, service = server(tmp_path, path, FakeAMI(), [], interval=None, grace=5.0)
    service.startService()
    reactor.advance(4.9)
    assert received() == []
    reactor.advance(0.1)
    assert received() == ["READY=1"]
    reactor.advance(60)
    assert received() == []  # no watchdog asked for, none fed


@pytest.mark.database
def test_a_server_stopped_before_it_was_ready_never_says_ready(tmp_path, notify_socket):
    path, received = notify_socket
    reactor, service = server(tmp_path, path, FakeAMI(), [], interval=None)
    service.startService()
    service.stopService()
    reactor.advance(10)
    assert received() == ["STOPPING=1"]


UNIT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "config", "systemd", "switchboard.service")


def unit_settings():
    settings = {}
    with open(UNIT, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")):
                key, _, value = line.partition("=")
                settings.setdefault(key, []).append(value)
    return settings


def test_the_shipped_unit_kills_a_hung_server_and_brings_it_back():
    unit = unit_settings()
    assert unit["Type"] == ["notify"]          # READY=1 from the server
    assert unit["NotifyAccess"] == ["main"]    # not from the routing parser's child
    assert 0 < int(unit["WatchdogSec"][0]) <= 10
    assert unit["Restart"] == ["always"]
    assert unit["StartLimitIntervalSec"] == ["0"]  # never given up on


def test_the_shipped_unit_runs_it_confined_and_private():
    unit = unit_settings()
    assert unit["User"] == ["switchboard"]
    assert unit["UMask"] == ["0077"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["StateDirectory"] == ["switchboard"]
    assert unit["StateDirectoryMode"] == ["0700"]
    assert unit["NoNewPrivileges"] == ["yes"]
    # The AMI secret as a credential, the name settings.py reads.
    from switchboard.settings import CREDENTIAL_NAME
    assert [c.split(":")[0] for c in unit["LoadCredential"]] == [CREDENTIAL_NAME]


def test_systemd_accepts_the_shipped_unit(tmp_path):
    import shutil
    import subprocess
    import sys
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    text = open(UNIT, encoding="utf-8").read()
    # Only the program's place differs from an installed copy.
    switchboard = os.path.join(os.path.dirname(sys.executable), "switchboard")
    text = text.replace("/opt/switchboard/.venv/bin/switchboard", switchboard)
    copy = tmp_path / "switchboard.service"
    copy.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "switchboard.service" not in result.stderr, result.stderr
