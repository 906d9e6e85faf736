"""
The database: SQLAlchemy engine and a thread pool so that no query ever
runs on the reactor thread.

SQLite is the embedded default (C{sqlite:///var/switchboard.db}); any
SQLAlchemy URL works (C{postgresql+psycopg://...} in production). Each domain
declares its tables on L{Base} and brings the Alembic migrations that make
them; L{Database.migrate} applies them (L{switchboard.migrations}).
"""

from __future__ import annotations

import os
from typing import Callable

from sqlalchemy import create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from twisted.internet import threads
from twisted.python.threadpool import ThreadPool


class Base(DeclarativeBase):
    """Declarative base shared by switchboard and alarm tables."""


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on the disk before the journal lets go of what it
    # wrote (NORMAL may lose the last commits in a power cut, after the
    # journal was compacted). ~0.2 ms a commit on the database thread,
    # behind the write-behind: nothing on a call's path waits for it.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_private(path: str) -> None:
    """
    Make the SQLite file at C{path} its owner's alone, whatever the umask:
    it holds residents' personal data (who lives alone, who is hard of
    hearing, every neighbour's number). A folder it creates is mode 0700;
    the file is created, or tightened, to mode 0600 before SQLite opens it,
    and SQLite gives the C{-wal} and C{-shm} files the database file's
    mode. Files from before (world-readable) are tightened too.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for name in (path, path + "-wal", path + "-shm", path + "-journal"):
        try:
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)
        except FileNotFoundError:
            pass
        except PermissionError:
            pass  # another user's file: SQLite finds out whether it may be read


def make_engine(url: str):
    """Create an engine for C{url}; an SQLite file is private (L{make_private})."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        make_private(url[len("sqlite:///"):].split("?", 1)[0])
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def on_postgres(database) -> bool:
    """
    Whether C{database} (a L{Database}, or anything with its C{engine}) is
    PostgreSQL: several instances may share it (one instance per SQLite).
    """
    engine = getattr(database, "engine", None)
    return engine is not None and engine.dialect.name == "postgresql"


class Database:
    """
    One database, used synchronously from the CLI and through L{run} (a
    Deferred, on a small thread pool) from the server.
    """

    def __init__(self, url: str, *, reactor=None, max_threads: int = 4):
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._reactor = reactor
        self._pool: ThreadPool | None = None
        self._max_threads = max_threads

    def migrate(self) -> tuple[str, ...]:
        """
        Bring the schema up to date (every branch at its head, a database
        from before migrations adopted); return the revisions now in force.
        Raise L{switchboard.migrations.SchemaError} for a database newer
        than this code, or one that cannot be adopted.
        """
        from switchboard import migrations
        return migrations.upgrade(self.engine).after

    def session(self) -> Session:
        return self.sessions()

    def run(self, work: Callable[[Session], object]):
        """
        Run C{work(session)} in a transaction on the pool; return a Deferred
        of its result. The session commits when C{work} returns.
        """
        from twisted.internet import reactor as default_reactor
        reactor = self._reactor or default_reactor
        if self._pool is None:
            self._pool = ThreadPool(minthreads=0, maxthreads=self._max_threads, name="database")
            self._pool.start()
            reactor.addSystemEventTrigger("during", "shutdown", self.close)

        def job():
            with self.sessions.begin() as session:
                return work(session)

        return threads.deferToThreadPool(reactor, self._pool, job)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool = None
        self.engine.dispose()
