"""
Which switchboard instance holds each open alarm (L{switchboard.leases}).

The instance that raises an alarm holds it: the alarm's row names it as
owner, and its lease is renewed every second for as long as it is open. An
instance that starts takes up only its own alarms (from before its restart)
and those nobody holds. When an instance dies, the elected leader
(L{switchboard.election}) takes over each of its alarms once the lease has
run out (5 s), and carries on from the timeline
(L{alarm.coordinator.AlarmCoordinator.adopt}). An instance that finds one
of its alarms held by another (it was stopped longer than the lease) lets it
go.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from alarm.models import Alarm
from switchboard.leases import LEASE_SECONDS, RENEW_EVERY, LeaseKeeper, Leases


def is_open(table):
    """An alarm is open until it is closed."""
    return table.c.closed_at.is_(None)


class AlarmOwnership:
    """
    The leases of this instance (C{owner}) on its alarms: kept by
    C{coordinator}, recorded by C{recorder}, households read through
    C{index}; alarms of dead instances taken over while C{leading()}.
    """

    log = Logger()

    def __init__(self, database, coordinator, recorder, index, owner, clock, *,
                 leading=lambda: True, length=LEASE_SECONDS, every=RENEW_EVERY, name_lock=None):
        #: Held while this process uses the name C{owner} (an
        #: L{switchboard.election.ILock}; None: nobody else could).
        self.name_lock = name_lock
        self.coordinator = coordinator
        self.recorder = recorder
        self.index = index
        self.owner = owner
        self.leases = Leases(database, Alarm.__table__, is_open, owner, clock, length)
        self.keeper = LeaseKeeper(
            self.leases, held=self._held, lost=coordinator.let_go, adopt=self.adopt,
            adopting=leading, every=every, name="alarm leases")
        # After a stall longer than a lease, no call is placed and no timer
        # acts before a round has said which alarms are still this one's.
        coordinator.engine.gate = self.keeper.checked

    def _held(self):
        return [a.id for a in self.coordinator.open_alarms() if a.id is not None]

    def claim(self, open_alarms) -> defer.Deferred:
        """
        At start-up: of C{open_alarms} (this instance's from before its
        restart, nobody's, or only in its journal), fire with those it holds
        now; one another instance claimed first is left to it.
        """
        return defer.ensureDeferred(self._claim(list(open_alarms)))

    async def _claim(self, open_alarms):
        alone = True
        if self.name_lock is not None:
            try:
                alone = await self.name_lock.acquire()
            except Exception as e:
                self.log.error("cannot tell whether another process uses the name {name} "
                               "({e})", name=self.owner, e=e)
                alone = False
        if not alone:
            # Its alarms under this name are its own; those of a process that
            # died are taken over once their lease runs out (the leader).
            self.log.critical("another live process uses this instance's name {name} (set "
                              "agi.advertise apart): the open alarms under it are left to "
                              "the lease", name=self.owner)
        mine = set(await self.leases.claim((a.id for a in open_alarms), running_too=alone))
        return [a for a in open_alarms if a.id in mine]

    def start(self) -> None:
        self.keeper.start()

    def stop(self) -> defer.Deferred:
        d = self.keeper.stop()
        if self.name_lock is not None:
            lock = self.name_lock
            d.addBoth(lambda _: lock.release()).addBoth(lambda _: lock.close())
        return d

    async def adopt(self, alarm_id, previous):
        """Carry on with alarm C{alarm_id}, which this instance has just taken from C{previous}."""
        found = await self.recorder.taken_over(alarm_id)
        if found is None:
            return None
        row, entries = found
        households = {}
        if row.household_id is not None:
            households = await self.index.households([row.household_id])
        return self.coordinator.adopt(row, entries, households.get(row.household_id), previous)
