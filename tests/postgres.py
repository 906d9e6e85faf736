"""A throwaway PostgreSQL server for tests that prove the PostgreSQL path."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid

import pytest

PG_BINS = "/usr/lib/postgresql/*/bin"  # Debian's postgresql package (its newest version)


def _unavailable(reason: str):
    """Skip, except under CI (SWITCHBOARD_REQUIRE_ASTERISK=1), where ./dev setup installs it."""
    if os.environ.get("SWITCHBOARD_REQUIRE_ASTERISK") == "1":
        pytest.fail(f"PostgreSQL unavailable: {reason} (SWITCHBOARD_REQUIRE_ASTERISK=1)",
                    pytrace=False)
    pytest.skip(reason)


def _free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def _as_postgres(argv):
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL URL on a private cluster, or a skip that says why not."""
    initdb = shutil.which("initdb") or max(glob.glob(PG_BINS + "/initdb"), default="")
    if not os.path.exists(initdb):
        _unavailable("PostgreSQL server binaries (initdb) are not installed")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'psycopg[binary]')")
    bindir = os.path.dirname(os.path.realpath(initdb))
    folder = tempfile.mkdtemp(prefix="switchboard-pg-")
    os.chmod(folder, 0o777)
    data = os.path.join(folder, "data")
    result = _as_postgres([initdb, "-D", data, "-A", "trust", "-U", "switchboard"])
    if result.returncode != 0:
        _unavailable(f"initdb failed: {result.stderr[-500:]}")
    port = _free_port()  # several checkouts may run their tests at once
    result = _as_postgres([os.path.join(bindir, "pg_ctl"), "-D", data, "-w", "-l",
                           os.path.join(folder, "log"), "-o",
                           f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"])
    if result.returncode != 0:
        _unavailable(f"PostgreSQL did not start: {result.stderr[-500:]}")
    try:
        yield f"postgresql+psycopg://switchboard@127.0.0.1:{port}/postgres"
    finally:
        _as_postgres([os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "stop"])
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fresh_postgres_url(postgres_url):
    """A database of its own on the throwaway server, dropped after the test."""
    from sqlalchemy import create_engine
    name = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()
