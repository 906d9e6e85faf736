"""Shared fixtures: the real lab Asterisk and SIPp phones."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from tests import databases

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(PROJECT, "lab", "asterisk-lab")


class LabAsterisk:
    """
    The running lab Asterisk (lab/asterisk-lab); C{env} (its
    C{SWITCHBOARD_LAB_*}) for another one (tests/e2e/test_two_asterisks.py).
    """

    ami_user = "switchboard"
    ami_secret = "lab-secret-not-for-production"

    def __init__(self, env: dict | None = None):
        self.env = dict(os.environ, **(env or {}))
        self.address = self.env.get("SWITCHBOARD_LAB_ADDRESS", "127.0.0.1")
        self.ami = (self.address, 5038)

    def cli(self, command: str) -> str:
        return subprocess.run([LAB, "cli", command], capture_output=True, text=True,
                              timeout=30, env=self.env).stdout

    def restart(self) -> None:
        subprocess.run([LAB, "restart"], check=True, capture_output=True, timeout=300,
                       env=self.env)

    def stop(self) -> None:
        subprocess.run([LAB, "stop"], check=True, capture_output=True, timeout=60,
                       env=self.env)

    def start(self) -> None:
        subprocess.run([LAB, "start"], check=True, capture_output=True, timeout=300,
                       env=self.env)

    def hang_up_all(self, within: float = 15) -> None:
        """
        End every call and wait (bounded) until Asterisk has none left. A
        server still running may place calls meanwhile (an alarm's retries):
        those are ended too, each time they are seen.
        """
        def none_left():
            try:
                if self.active_channels() == 0:
                    return True
            except ValueError:
                pass  # not answering yet (restarting): ask again
            self.cli("channel request hangup all")
            return False

        wait_for(none_left, within, interval=0.5, message="every call in Asterisk to end")
        time.sleep(0.3)  # the phones answer the BYEs and CANCELs just sent

    def active_channels(self) -> int:
        """How many channels Asterisk has now (C{core show channels count})."""
        return active_channels(self.cli("core show channels count"))

    def log(self, lines: int = 200) -> str:
        return subprocess.run([LAB, "log", str(lines)], capture_output=True, text=True,
                              env=self.env).stdout


def active_channels(report: str) -> int:
    """
    The number in C{core show channels count}'s "N active channel(s)" line.
    Read as a number: "10 active channels" (an alarm's ten legs) also
    contains "0 active channels".

    @raise ValueError: no such line (Asterisk not answering, say).
    """
    found = re.search(r"(?m)^(\d+) active channels?$", report)
    if found is None:
        raise ValueError(f"no channel count in {report[-300:]!r}")
    return int(found.group(1))


def _unavailable(reason: str):
    message = f"REAL ASTERISK UNAVAILABLE: {reason}"
    if os.environ.get("SWITCHBOARD_REQUIRE_ASTERISK") == "1":
        pytest.fail(message + " (SWITCHBOARD_REQUIRE_ASTERISK=1)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def asterisk():
    """Start (provisioning if needed) the lab Asterisk once per run."""
    if os.geteuid() != 0:
        _unavailable("the lab Asterisk needs root (chroot and mount)")
    if not shutil.which("debootstrap") and not shutil.which("apt-get"):
        _unavailable("neither debootstrap nor apt-get is available to provision it")
    result = subprocess.run([LAB, "start"], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        _unavailable(f"lab/asterisk-lab start failed: {result.stderr.strip()[-2000:]}")
    lab = LabAsterisk()
    yield lab
    subprocess.run([LAB, "stop"], capture_output=True, timeout=120)


@pytest.fixture
def sipp(tmp_path, asterisk):
    """
    Start SIPp phones and callers; all are stopped after the test, once
    every call in Asterisk has ended. A phone stopped while Asterisk still
    has a call with it leaves Asterisk retransmitting to its port (INVITE,
    CANCEL, BYE): the next test's phone on that port would get them and
    end its one call on them.
    """
    if not shutil.which("sipp"):
        _unavailable("sipp (Debian package sip-tester) is not installed")
    from lab.sipp import SippFactory
    factory = SippFactory(str(tmp_path))
    yield factory
    try:
        asterisk.hang_up_all()
    finally:
        factory.stop_all()


def wait_for(predicate, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll C{predicate} (real processes: the e2e tests only) until true or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def pytest_unconfigure(config):
    """The run's throwaway PostgreSQL goes with it (tests/postgres.py)."""
    from tests.postgres import stop_cluster
    stop_cluster()


def pytest_collection_modifyitems(config, items):
    """
    In the PostgreSQL pass (SWITCHBOARD_TEST_DATABASE=postgresql) only the
    tests marked C{database} run, less those marked C{sqlite_pass}.
    """
    if not databases.ON_POSTGRES:
        return
    keep, drop = [], []
    for item in items:
        wanted = item.get_closest_marker("database") and not item.get_closest_marker("sqlite_pass")
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def _database_backend(request, monkeypatch):
    """
    Keep the two passes honest: a test that makes a database engine must be
    marked C{database} (else it never runs on PostgreSQL), and in the
    PostgreSQL pass it must not open SQLite (it wrote its own URL instead of
    asking L{tests.databases.url}). The test's PostgreSQL databases are
    dropped when it ends.
    """
    from switchboard import storage
    made = []
    real = storage.make_engine

    def spy(url, *args, **kwargs):
        made.append(url)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(storage, "make_engine", spy)
    try:
        yield
    finally:
        databases.drop_all()
    lab = request.node.get_closest_marker("asterisk")  # the lab's server: SQLite only
    if made and not lab and not request.node.get_closest_marker("database"):
        pytest.fail(f"{request.node.nodeid} opens a database ({made[0]}) but is not marked "
                    "'database': it would not run on PostgreSQL", pytrace=False)
    if databases.ON_POSTGRES and [u for u in made if u.startswith("sqlite")]:
        pytest.fail(f"{request.node.nodeid} opens SQLite in the PostgreSQL pass: ask "
                    "tests.databases.url() for its database, or mark it 'sqlite_pass'",
                    pytrace=False)
