"""
Ownership of shared work (an open alarm, a running campaign) among the
switchboard instances that share one database: a lease per row.

A row is held by the instance named in its C{owner} column until the time in
its C{lease_until} column. The owner renews every lease it holds in one
statement every L{LeaseKeeper.every} seconds; an owner that dies (kill -9,
its host gone) stops renewing, and once the lease has run out another
instance may take the row over with a compare-and-set (L{Leases.take}) that
only one can win. No consensus of our own: the database's row update is
atomic.

Times are the instances' own clocks (injected: unit tests run on
L{twisted.internet.task.Clock}); instances sharing a database must keep
their clocks in step (NTP) to well within the lease's length. The owner's
name is stable across its restarts (L{instance_name}), so an instance that
restarts takes its own rows back at once, without waiting for the lease.

An owner cut off from the database keeps its work (it cannot tell a dead
database from a partition, and dropping an alarm would leave it silent):
it lets a row go only when the database says another instance holds it
now.
"""

from __future__ import annotations

import socket
from typing import Callable, Iterable

from sqlalchemy import and_, or_, select, update
from twisted.internet import defer, task
from twisted.logger import Logger

from switchboard.community.models import utc

#: Seconds a lease runs after its last renewal: how long a dead instance's
#: work waits before another takes it up (plus one L{LeaseKeeper.every}).
LEASE_SECONDS = 5.0
RENEW_EVERY = 1.0
#: Seconds work held back after a stall waits for the lease round that says
#: what is still held (L{LeaseKeeper.checked}): a round takes milliseconds;
#: a database that hangs instead of failing (a partition: TCP retries for
#: many minutes) must not hold a new alarm's calls as long. Then the work
#: goes on unchecked until a round ends: better twice than never.
CHECK_DEADLINE = 2.0


def instance_name(settings) -> str:
    """
    This instance's name as an owner: its FastAGI address as advertised to
    the dialplan (unique among the instances Asterisk reaches), else host
    and FastAGI port.
    """
    agi = getattr(settings, "agi", None)
    advertised = str(getattr(agi, "advertise", "") or "")
    if advertised:
        return advertised[:120]
    port = getattr(agi, "port", "")
    return f"{socket.gethostname()}:{port}"[:120]


class Leases:
    """
    The leases of one table (C{table}: a SQLAlchemy Table with C{id},
    C{owner} and C{lease_until} columns) whose rows are open while
    C{is_open(table)} holds, as instance C{owner}, run through C{database}
    (C{run(work) -> Deferred}).
    """

    def __init__(self, database, table, is_open: Callable, owner: str, clock,
                 length: float = LEASE_SECONDS):
        self.database = database
        self.table = table
        self.is_open = is_open
        self.owner = owner
        self.clock = clock
        self.length = length

    def until(self):
        """When a lease taken or renewed now runs out (a naive UTC datetime)."""
        return utc(self.clock.seconds() + self.length)

    def _now(self):
        return utc(self.clock.seconds())

    def renew(self, held: Iterable[int]) -> defer.Deferred:
        """
        Renew the leases of C{held} (the ids this instance works on: only
        those, so that a row under this name nobody here works on runs out
        and is taken over); fire with those of them the database says
        another instance holds now (taken over while this one could not
        renew: let them go).
        """
        t, held = self.table, sorted({int(i) for i in held})
        until, owner = self.until(), self.owner

        def work(session):
            # Rows another transaction of this instance is writing (its
            # write-behind: status, timeline) are skipped, renewed next
            # round, not waited for: locking the rest in the table's order
            # against the writer's order deadlocked under a burst, and the
            # whole renewal failed (PostgreSQL; SQLite has no row locks).
            lost = []
            for start in range(0, len(held), 500):
                chunk = held[start:start + 500]
                mine = (select(t.c.id).where(t.c.owner == owner, t.c.id.in_(chunk),
                                             self.is_open(t))
                        .with_for_update(skip_locked=True, key_share=True))
                session.execute(update(t).where(t.c.id.in_(mine)).values(lease_until=until))
                lost += [row.id for row in session.execute(
                    select(t.c.id).where(t.c.id.in_(chunk), t.c.owner.is_not(None),
                                         t.c.owner != owner))]
            return lost

        return self.database.run(work)

    def claim(self, ids: Iterable[int], *, running_too=True) -> defer.Deferred:
        """
        Take C{ids} as this instance's where nobody else holds them (their
        owner is this instance's name, from before a restart, or nobody);
        fire with the ids now held, counting those not in the table yet
        (written behind by this instance: nobody else knows them). For the
        rows an instance recovers when it starts. Not C{running_too}: rows
        under this name whose lease still runs are left (another live
        process may be using the name).
        """
        t, ids = self.table, sorted({int(i) for i in ids})
        until, owner, now = self.until(), self.owner, self._now()
        mine_before = t.c.owner == owner
        if not running_too:
            mine_before = and_(mine_before, or_(t.c.lease_until.is_(None),
                                                t.c.lease_until < now))

        def work(session):
            mine = set()
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                mine.update(row.id for row in session.execute(
                    update(t).where(t.c.id.in_(chunk), or_(t.c.owner.is_(None), mine_before))
                    .values(owner=owner, lease_until=until).returning(t.c.id)))
                present = {row.id for row in session.execute(
                    select(t.c.id).where(t.c.id.in_(chunk)))}
                mine.update(set(chunk) - present)
            return sorted(mine)

        return self.database.run(work)

    def lapsed(self) -> defer.Deferred:
        """
        Fire with C{(id, owner)} of the open rows whose owner's lease has run
        out (this instance's name too: a row under it nobody renews).
        """
        t, now = self.table, self._now()

        def work(session):
            return [(row.id, row.owner) for row in session.execute(
                select(t.c.id, t.c.owner).where(
                    self.is_open(t), t.c.owner.is_not(None),
                    or_(t.c.lease_until.is_(None), t.c.lease_until < now))
                .order_by(t.c.id))]

        return self.database.run(work)

    def take(self, row_id: int, previous: str) -> defer.Deferred:
        """
        Take row C{row_id} over from C{previous}, if it is still open and
        C{previous}'s lease on it has still run out: fires with whether this
        instance now holds it (of two instances trying, one wins).
        """
        t, now, until, owner = self.table, self._now(), self.until(), self.owner

        def work(session):
            result = session.execute(update(t).where(
                t.c.id == int(row_id), t.c.owner == previous, self.is_open(t),
                or_(t.c.lease_until.is_(None), t.c.lease_until < now))
                .values(owner=owner, lease_until=until))
            return result.rowcount == 1

        return self.database.run(work)


class LeaseKeeper:
    """
    Renews this instance's leases every L{every} seconds, and, when
    C{adopting()} says so (the elected leader), takes over rows whose
    lease has run out. C{held()} gives the ids this instance works on;
    C{lost(ids)} is told those another instance now holds; C{adopt(id,
    previous)} is called for each row taken over (its Deferred awaited
    before the next round).
    """

    log = Logger()

    def __init__(self, leases: Leases, *, held: Callable, lost: Callable, adopt: Callable,
                 adopting: Callable = lambda: True, every: float = RENEW_EVERY, name="leases",
                 batch: int = 50):
        self.leases = leases
        self.held = held
        self.lost = lost
        self.adopt = adopt
        self.adopting = adopting
        self.every = every
        self.name = name
        #: The most rows taken over in one round: the next renewal of this
        #: instance's own leases is never held back long behind them.
        self.batch = batch
        self._loop = None
        self._round = None
        self._ticked = None      # when the last round began
        self._checking = []      # waiting for the round after a stall (L{checked})
        self._unchecked = False  # gave up waiting for a hung round: act until one ends
        self._deadline = None    # when those waiting for a round stop waiting

    def start(self) -> None:
        self._loop = task.LoopingCall(self.round)
        self._loop.clock = self.leases.clock
        self._loop.start(self.every, now=True)

    def stop(self) -> defer.Deferred:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        return self._round if self._round is not None else defer.succeed(None)

    def stalled(self) -> bool:
        """Whether no round has begun for longer than a lease (the process was stopped)."""
        return (self._ticked is not None
                and self.leases.clock.seconds() - self._ticked > self.leases.length)

    def checked(self):
        """
        None when this instance may act on what it holds now; else (it was
        stopped or stalled longer than a lease, so another instance may have
        taken its work over) a Deferred that fires once a round has told it
        what it still holds, having let the rest go. A round that cannot
        reach the database fires it too, and so does L{CHECK_DEADLINE} with
        no round ended (the database hangs): better to act twice than never.
        """
        if self._unchecked or (not self._checking and not self.stalled()):
            return None
        first = not self._checking
        d = self._wait_for_round()
        if first and self._round is None:
            self.round()
        return d

    def _wait_for_round(self) -> defer.Deferred:
        """A Deferred fired when a round ends, or at the latest after L{CHECK_DEADLINE}."""
        d = defer.Deferred()
        self._checking.append(d)
        if self._deadline is None:
            self._deadline = self.leases.clock.callLater(CHECK_DEADLINE, self._overdue)
        return d

    def _overdue(self):
        """No round has ended within L{CHECK_DEADLINE}: let what waits for one go on."""
        self._deadline = None
        checking, self._checking = self._checking, []
        self._unchecked = True
        self.log.critical("{name}: no lease round has ended within {s} s (the database does "
                          "not answer); going on with the work held here unchecked (another "
                          "instance may have taken some of it: both act, never neither)",
                          name=self.name, s=CHECK_DEADLINE)
        for waiting in checking:
            waiting.callback(None)

    def round(self):
        """One renewal (and adoption); never fails (logged), never two at once."""
        if self._round is not None:
            return None  # the previous round still waits for the database
        if self.stalled() and not self._checking:
            # Timers overdue from the stall wait for this round (L{checked}).
            self._wait_for_round()
        self._ticked = self.leases.clock.seconds()
        self._round = d = defer.ensureDeferred(self._once())
        d.addErrback(lambda f: self.log.failure("{name}: lease round", f, name=self.name))

        def done(_):
            self._round = None
            self._unchecked = False
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            checking, self._checking = self._checking, []
            for waiting in checking:
                waiting.callback(None)
        d.addBoth(done)
        return None

    async def _once(self):
        try:
            lost = await self.leases.renew(self.held())
        except Exception as e:
            self.log.error("{name}: cannot renew leases ({e}); the work held here goes on",
                           name=self.name, e=e)
            return
        if lost:
            self.lost(lost)
        if not self.adopting():
            return
        held = set(self.held())
        lapsed = [(i, p) for i, p in await self.leases.lapsed() if i not in held]
        for row_id, previous in lapsed[:self.batch]:
            if not self.adopting():
                return
            if await self.leases.take(row_id, previous):
                try:
                    await defer.maybeDeferred(self.adopt, row_id, previous)
                except Exception:
                    self.log.failure("{name}: taking up {id} from {previous}", name=self.name,
                                     id=row_id, previous=previous)

