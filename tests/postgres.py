"""
A throwaway PostgreSQL server for the tests: one private cluster a run,
started on first use (initdb into a temporary folder, C{pg_ctl} on a unix
socket in that folder: no TCP port, so checkouts and network namespaces
running their tests at once never meet), stopped at the end of the run.

Every test that touches the database runs on SQLite and, in a second pass
(C{SWITCHBOARD_TEST_DATABASE=postgresql}, run by C{./dev test}), on this
server: L{tests.databases} hands each test a database of its own.

Under CI (C{SWITCHBOARD_REQUIRE_ASTERISK=1}) a cluster that cannot start
fails the tests that need it; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

PG_BINS = "/usr/lib/postgresql/*/bin"  # Debian's postgresql package (its newest version)


class Unavailable(Exception):
    """PostgreSQL cannot be started here; the message says why."""


def unavailable(reason: str):
    """Skip, except under CI (SWITCHBOARD_REQUIRE_ASTERISK=1), where ./dev setup installs it."""
    if os.environ.get("SWITCHBOARD_REQUIRE_ASTERISK") == "1":
        pytest.fail(f"PostgreSQL unavailable: {reason} (SWITCHBOARD_REQUIRE_ASTERISK=1)",
                    pytrace=False)
    pytest.skip(f"PostgreSQL unavailable: {reason}")


def _as_postgres(argv):
    """Run a server binary; as root, as the postgres user (initdb refuses root)."""
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


class Cluster:
    """
    A private PostgreSQL cluster listening on a unix socket only. Tuned for
    tests (no fsync): its data is thrown away with it.
    """

    def __init__(self):
        initdb = shutil.which("initdb") or max(glob.glob(PG_BINS + "/initdb"), default="")
        if not os.path.exists(initdb):
            raise Unavailable("PostgreSQL server binaries (initdb) are not installed")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise Unavailable("psycopg is not installed (pip install 'psycopg[binary]')")
        self.bindir = os.path.dirname(os.path.realpath(initdb))
        self.folder = tempfile.mkdtemp(prefix="switchboard-pg-")
        os.chmod(self.folder, 0o777)
        self.data = os.path.join(self.folder, "data")
        result = _as_postgres([initdb, "-D", self.data, "-A", "trust", "-U", "switchboard",
                               "--no-sync"])
        if result.returncode != 0:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise Unavailable(f"initdb failed: {result.stderr[-500:]}")
        options = (f"-k {self.folder} -c listen_addresses='' -c fsync=off"
                   " -c synchronous_commit=off -c full_page_writes=off"
                   " -c max_connections=300")
        result = _as_postgres([self.pg_ctl, "-D", self.data, "-w", "-l",
                               os.path.join(self.folder, "log"), "-o", options, "start"])
        if result.returncode != 0:
            log = ""
            try:
                with open(os.path.join(self.folder, "log")) as f:
                    log = f.read()[-500:]
            except OSError:
                pass
            shutil.rmtree(self.folder, ignore_errors=True)
            raise Unavailable(f"PostgreSQL did not start: {result.stderr[-500:]} {log}")
        self.url = self.url_of("postgres")

    @property
    def pg_ctl(self) -> str:
        return os.path.join(self.bindir, "pg_ctl")

    def url_of(self, database: str) -> str:
        """The SQLAlchemy URL of one database of this cluster (over its socket)."""
        return f"postgresql+psycopg://switchboard@/{database}?host={self.folder}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        self._admin(f"CREATE DATABASE {name}")
        return self.url_of(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by L{create_database}, ending its connections."""
        from sqlalchemy import make_url
        self._admin(f"DROP DATABASE IF EXISTS {make_url(url).database} WITH (FORCE)")

    def create_schema(self) -> str:
        """
        A new empty schema in the C{postgres} database; a URL whose
        connections see only it (C{search_path}) and carry its name
        (C{application_name}, for L{drop_schema}). Much cheaper than a
        database (~1 ms against ~1 s on a busy machine), so every test can
        have its own.
        """
        name = "s_" + uuid.uuid4().hex[:12]
        self._admin(f"CREATE SCHEMA {name}")
        return f"{self.url}&application_name={name}&options=-csearch_path%3D{name}"

    def drop_schema(self, url: str) -> None:
        """Drop a schema made by L{create_schema}, ending the connections to it."""
        from sqlalchemy import make_url
        name = make_url(url).query["application_name"]
        self._admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    f" WHERE application_name = '{name}'", f"DROP SCHEMA {name} CASCADE")

    def _admin(self, *statements: str) -> None:
        from sqlalchemy import create_engine
        admin = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                for statement in statements:
                    connection.exec_driver_sql(statement)
        finally:
            admin.dispose()

    def stop(self) -> None:
        _as_postgres([self.pg_ctl, "-D", self.data, "-m", "immediate", "stop"])
        shutil.rmtree(self.folder, ignore_errors=True)


_cluster: Cluster | None = None
_failure: str | None = None


def cluster() -> Cluster:
    """The run's cluster, started on first use; L{Unavailable} if it cannot be."""
    global _cluster, _failure
    if _failure is not None:
        raise Unavailable(_failure)
    if _cluster is None:
        try:
            _cluster = Cluster()
        except Unavailable as e:
            _failure = str(e)
            raise
        atexit.register(stop_cluster)
    return _cluster


def stop_cluster() -> None:
    """Stop the run's cluster, if one was started (the end of the run; atexit as a backstop)."""
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        _cluster = None


def require_cluster() -> Cluster:
    """L{cluster}, or the test skipped (failed under CI) with the reason."""
    try:
        return cluster()
    except Unavailable as e:
        unavailable(str(e))


@pytest.fixture(scope="session")
def postgres_url():
    """The URL of the run's PostgreSQL cluster (its C{postgres} database)."""
    return require_cluster().url


@pytest.fixture
def fresh_postgres_url():
    """A database of its own on the run's cluster, dropped after the test."""
    server = require_cluster()
    url = server.create_database()
    try:
        yield url
    finally:
        server.drop_database(url)
