"""
One leader among the switchboard instances sharing a database, for the
duties only one of them may do at a time (AstDB's synchronisation, ...).

No consensus of our own: PostgreSQL decides. The leader is the instance
whose dedicated connection holds a session-level advisory lock
(C{pg_try_advisory_lock}); PostgreSQL lets it go the moment that
connection ends, so when the leader dies (killed, its host gone: TCP
keepalives end the connection within seconds) the next instance to ask
gets it, within one L{Elector.every} of the end. The leader checks its
connection every L{Elector.every} seconds and steps down if the check fails
or does not answer within L{Elector.timeout}: a leader cut off from the
database stops acting as one before another can take over for long.

On SQLite (one machine, one server) the single instance is always the
leader (L{AlwaysLeader}).

The blocking calls run on a thread of their own (the connection is used
from that thread only); the decisions are taken on the reactor, on an
injected clock (unit tests: L{twisted.internet.task.Clock} and a fake
L{ILock}).
"""

from __future__ import annotations

import hashlib
from typing import Callable

from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import Interface, implementer

from switchboard.storage import on_postgres


class ILock(Interface):
    """A named lock held by one holder at a time, through a connection of its own."""

    def acquire():
        """A Deferred: True if this holder now holds the lock (or already did)."""

    def held():
        """A Deferred: True if the lock is still held (the connection alive)."""

    def release():
        """Let the lock go and close the connection; a Deferred. Never fails."""

    def close():
        """Done for good (after L{release}): stop what runs the connection."""


def lock_key(name: str) -> int:
    """
    The advisory lock's key for C{name}: stable across runs and hosts,
    positive (pg_locks shows it as two unsigned halves, classid and objid).
    """
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


@implementer(ILock)
class PostgresAdvisoryLock:
    """
    L{ILock} on a PostgreSQL session-level advisory lock, held on a
    connection used for nothing else, opened from C{engine} (SQLAlchemy)
    on a single thread of its own (C{thread}: a L{DedicatedThread}).
    """

    log = Logger()

    def __init__(self, engine, name: str, thread):
        self.engine = engine
        self.key = lock_key(name)
        self.name = name
        self._thread = thread
        self._run = thread.run
        self._connection = None

    def acquire(self):
        return self._run(self._acquire)

    def _acquire(self) -> bool:
        if self._connection is None:
            self._connection = self.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT")
        try:
            return bool(self._connection.exec_driver_sql(
                "SELECT pg_try_advisory_lock(%s)" % self.key).scalar())
        except Exception:
            self._drop()
            raise

    def held(self):
        return self._run(self._held)

    def _held(self) -> bool:
        if self._connection is None:
            return False
        try:
            # Our own backend still has the lock granted.
            return bool(self._connection.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint)"
                " = (%s)::bigint" % self.key).scalar())
        except Exception:
            self._drop()
            return False

    def release(self):
        return self._run(self._drop).addErrback(lambda _: None)

    def close(self):
        self._thread.stop()

    def _drop(self):
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()  # not back to the pool: the lock goes with it
                connection.close()
            except Exception:
                pass


@implementer(ILock)
class AlwaysLeader:
    """L{ILock} of a database only one instance uses (SQLite): always held."""

    def acquire(self):
        return defer.succeed(True)

    def held(self):
        return defer.succeed(True)

    def release(self):
        return defer.succeed(None)

    def close(self):
        pass


class Elector:
    """
    Whether this instance leads: asks L{ILock} every C{every} seconds
    (to take the lock when not leading, to check it when leading) and tells
    C{listeners} (C{f(leading)}) each change. A check that fails, or has not
    answered within C{timeout} seconds, steps down.
    """

    log = Logger()

    def __init__(self, lock, clock, *, name: str = "singleton duties", every: float = 1.0,
                 timeout: float = 2.0):
        self.lock = lock
        self.clock = clock
        self.name = name
        self.every = every
        self.timeout = timeout
        self.leading = False
        self.listeners: list[Callable[[bool], object]] = []
        self._asking = None     # the question in flight, with its timeout
        self._abandoned = None  # a question timed out: none asked until it returns
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = clock

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(self.every, now=True).addErrback(
                lambda f: self.log.failure("elector stopped", f))

    def stop(self) -> defer.Deferred:
        """Stop asking; step down (telling the listeners) and let the lock go."""
        if self._loop.running:
            self._loop.stop()
        self._set(False)
        return self.lock.release().addBoth(lambda _: self.lock.close())

    def tick(self) -> None:
        if self._asking is not None:
            return  # the last question has not answered yet (its timeout runs)
        if self._abandoned is not None and not self._abandoned.called:
            return  # the thread is still stuck in it: questions would pile up behind
        d = self.lock.held() if self.leading else self.lock.acquire()
        if d.called:  # answered at once (AlwaysLeader, a fake): no timer needed
            d.addCallbacks(self._answer, self._failed)
            return
        timer = self.clock.callLater(self.timeout, self._timed_out, d)
        self._asking = (d, timer)
        d.addCallbacks(self._answer, self._failed, callbackArgs=(d,), errbackArgs=(d,))

    def _done(self, d) -> bool:
        """Clear the question in flight if it is C{d}; False if C{d} was abandoned."""
        if d is None:
            return True
        if self._asking is None or self._asking[0] is not d:
            return False
        timer = self._asking[1]
        self._asking = None
        if timer.active():
            timer.cancel()
        return True

    def _answer(self, holding, d=None):
        if self._done(d) and self._loop.running:
            self._set(bool(holding))

    def _failed(self, failure, d=None):
        if self._done(d):
            if self.leading:
                self.log.failure("{name}: the lock could not be checked: stepping down",
                                 failure, name=self.name)
            self._set(False)

    def _timed_out(self, d):
        self._asking = None
        self._abandoned = d
        if self.leading:
            self.log.error("{name}: the database did not answer within {t} s: stepping down",
                           name=self.name, t=self.timeout)
        self._set(False)
        # The connection is stuck: it is let go, and a new one asks next time.
        self.lock.release()

    def _set(self, leading: bool) -> None:
        if leading == self.leading:
            return
        self.leading = leading
        self.log.info("{name}: {what}", name=self.name,
                      what="this instance leads" if leading else "this instance no longer leads")
        for listener in list(self.listeners):
            try:
                listener(leading)
            except Exception:
                self.log.failure("{name}: a listener failed", name=self.name)


def for_database(database, name: str, clock) -> Elector:
    """
    The elector of duty C{name} over L{switchboard.storage.Database}
    C{database}: an advisory lock on PostgreSQL, always the leader on
    anything else (SQLite: one server).
    """
    return Elector(lock_for(database, name, clock), clock, name=name)


def lock_for(database, name: str, clock):
    """
    The L{ILock} named C{name} among the instances sharing C{database}: a
    PostgreSQL advisory lock on a connection of its own; on anything else
    (SQLite: one server) always held.
    """
    if not on_postgres(database):
        return AlwaysLeader()
    engine = database.engine
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool
    # A connection of its own, never pooled; over TCP, a dead peer is found
    # within seconds (keepalives), and PostgreSQL then lets the lock go.
    engine = create_engine(engine.url, poolclass=NullPool, connect_args=dict(
        connect_timeout=2, keepalives=1, keepalives_idle=2, keepalives_interval=1,
        keepalives_count=3))
    return PostgresAdvisoryLock(engine, name, DedicatedThread(clock, "lock " + name))


class DedicatedThread:
    """One thread of its own, started on first use (C{run(f)} → a Deferred)."""

    def __init__(self, reactor, name: str):
        from twisted.python.threadpool import ThreadPool
        self.reactor = reactor
        self.pool = ThreadPool(minthreads=1, maxthreads=1, name=name)

    def run(self, f):
        from twisted.internet import threads
        if not self.pool.started:
            self.pool.start()
        return threads.deferToThreadPool(self.reactor, self.pool, f)

    def stop(self):
        if self.pool.started:
            self.pool.stop()
