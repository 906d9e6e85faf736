"""
LISTEN/NOTIFY on a real PostgreSQL: a change committed by another process
is heard at once; a rolled-back one never; the listener reconnects.
"""

import queue
import threading

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from switchboard.pgnotify import PostgresListener, notify
from tests.postgres import postgres_url  # noqa: F401  (fixture)

pytestmark = [pytest.mark.database, pytest.mark.sqlite_pass]  # tries both databases itself


class ThreadReactor:
    """callFromThread into a queue: what the reactor thread would run, in order."""

    def __init__(self):
        self.calls = queue.Queue()

    def callFromThread(self, f, *args, **kwargs):
        self.calls.put((f, args, kwargs))

    def heard(self, timeout=10.0):
        """Run what was called from the thread until the callback was called; its argument."""
        while True:
            f, args, kwargs = self.calls.get(timeout=timeout)
            if getattr(f, "__name__", "") == "heard_cb":
                return args[0]
            f(*args, **kwargs)


def test_a_committed_change_is_heard_a_rolled_back_one_never(postgres_url):
    reactor = ThreadReactor()

    def heard_cb(what):
        pass

    listener = PostgresListener(postgres_url, heard_cb, reactor, poll=0.1)
    listener.start()
    engine = create_engine(postgres_url)
    try:
        assert reactor.heard() is None          # connected: look for yourself
        with Session(engine) as session:
            notify(session, "registry")
            session.rollback()
        with Session(engine) as session, session.begin():
            notify(session, "alarms")
        assert reactor.heard() == "alarms"
        assert reactor.calls.empty()
    finally:
        listener.stop()
        engine.dispose()


def test_nothing_is_sent_on_sqlite(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with Session(engine) as session:
        notify(session, "registry")              # no error, no statement
    engine.dispose()


def test_an_unreachable_database_is_retried_and_said_once(postgres_url):
    reactor = ThreadReactor()
    attempts = []
    done = threading.Event()

    def connect(conninfo):
        attempts.append(conninfo)
        if len(attempts) >= 3:
            done.set()
        raise OSError("connection refused")

    listener = PostgresListener(postgres_url, lambda what: None, reactor, retry=0.01,
                                connect=connect)
    listener.start()
    assert done.wait(10)
    listener.stop()
    warnings = []
    while not reactor.calls.empty():
        f, args, kwargs = reactor.calls.get()
        warnings.append(args[0])
    assert len(warnings) == 1 and "not listening" in warnings[0]
    assert attempts[0].startswith("postgresql://switchboard@")
