"""A throwaway PostgreSQL server for tests that prove the PostgreSQL path."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

PG_BIN = "/usr/lib/postgresql/15/bin"


def _as_postgres(argv):
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL URL on a private cluster, or a skip that says why not."""
    initdb = shutil.which("initdb") or os.path.join(PG_BIN, "initdb")
    if not os.path.exists(initdb):
        pytest.skip("PostgreSQL server binaries (initdb) are not installed")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]')")
    bindir = os.path.dirname(os.path.realpath(initdb))
    folder = tempfile.mkdtemp(prefix="switchboard-pg-")
    os.chmod(folder, 0o777)
    data = os.path.join(folder, "data")
    result = _as_postgres([initdb, "-D", data, "-A", "trust", "-U", "switchboard"])
    if result.returncode != 0:
        pytest.skip(f"initdb failed: {result.stderr[-500:]}")
    port = "55432"
    result = _as_postgres([os.path.join(bindir, "pg_ctl"), "-D", data, "-w", "-l",
                           os.path.join(folder, "log"), "-o",
                           f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"])
    if result.returncode != 0:
        pytest.skip(f"PostgreSQL did not start: {result.stderr[-500:]}")
    try:
        yield f"postgresql+psycopg://switchboard@127.0.0.1:{port}/postgres"
    finally:
        _as_postgres([os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "stop"])
        shutil.rmtree(folder, ignore_errors=True)
