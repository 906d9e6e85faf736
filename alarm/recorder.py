"""
Writing alarms down without ever blocking the reactor.

The first row of an alarm is written (and awaited) before any phone rings,
so an alarm that rings is an alarm on record. Everything after that, the
timeline, is queued and written in order by one writer on the database's
thread pool; a failed write is retried (with growing delays) and nothing is
ever dropped.
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from twisted.internet import defer
from twisted.logger import Logger, LogLevel

from alarm.models import Alarm, AlarmEvent, utc


@dataclass(frozen=True)
class OpenAlarm:
    """An alarm found open in the database (for restart recovery)."""

    id: int
    household_id: int | None
    caller_raw: str
    caller_number: str | None
    address: str
    status: str
    room: str
    opened_at: object
    confirmed_at: object


class AlarmRecorder:
    """
    Records alarms in C{database} (a L{switchboard.storage.Database} or
    anything with its C{run(work) -> Deferred}).

    @ivar batch: the most queued writes done in one transaction.
    """

    log = Logger()

    def __init__(self, database, *, clock=None, retry_delay=0.5, max_retry_delay=30.0,
                 batch=200, open_attempts=3):
        if clock is None:
            from twisted.internet import reactor as clock
        self.database = database
        self.clock = clock
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.batch = batch
        self.open_attempts = open_attempts
        self._queue: deque = deque()
        self._busy = False
        self._failures = 0
        self._timer = None
        self._idle: list = []

    # The first write ------------------------------------------------------

    def open_alarm(self, *, at: float, caller_raw: str, caller_number, household_id,
                   address: str, detail: str = "") -> defer.Deferred:
        """
        Insert a new alarm; fire with its id once it is committed. A failed
        insert is tried again a few times at short intervals (the caller is
        waiting), then fails. Its C{opened} event and room name follow with
        the next timeline write: the one row is all that stands between the
        caller and the first ring.
        """
        row = dict(household_id=household_id, caller_raw=caller_raw[:80],
                   caller_number=caller_number, address=address[:300], status="open",
                   opened_at=utc(at), room="", outcome="")

        def work(session):
            return session.connection().execute(_INSERT_ALARM, row).inserted_primary_key[0]

        def recorded(alarm_id):
            self.update(alarm_id, room=room_name(alarm_id))
            self.event(alarm_id, "opened", at=at, number=caller_raw[:80] or None, detail=detail)
            return alarm_id

        return self._attempt(work, self.open_attempts).addCallback(recorded)

    def _attempt(self, work, attempts):
        d = self.database.run(work)

        def failed(failure):
            if attempts <= 1:
                self.log.failure("ALARM NOT RECORDED: the database refused the alarm", failure,
                                 level=LogLevel.critical)
                return failure
            self.log.warn("alarm insert failed, trying again: {error}", error=failure.value)
            return _later(self.clock, self.retry_delay, self._attempt, work, attempts - 1)

        return d.addErrback(failed)

    # The timeline ---------------------------------------------------------

    def event(self, alarm_id, kind: str, *, at: float, leg=None, number=None, detail="") -> None:
        """Queue a timeline event of alarm C{alarm_id} at POSIX time C{at}."""
        row = dict(alarm_id=int(alarm_id), at=utc(at), kind=kind[:24],
                   leg=None if leg is None else str(leg)[:80],
                   number=None if number is None else str(number)[:80],
                   detail=str(detail or "")[:300])
        self._enqueue(("event", row))

    def update(self, alarm_id, **fields) -> None:
        """
        Queue a change of alarm C{alarm_id}'s row: C{status}, C{outcome},
        C{confirmed_at}/C{closed_at} (POSIX times), C{room}.
        """
        for name in ("confirmed_at", "closed_at"):
            if fields.get(name) is not None:
                fields[name] = utc(fields[name])
        self._enqueue(("update", int(alarm_id), fields))

    def _enqueue(self, op):
        self._queue.append(op)
        if not self._busy and self._timer is None:
            self._write()

    def pending(self) -> int:
        return len(self._queue)

    def flush(self) -> defer.Deferred:
        """A Deferred that fires once everything queued so far is written."""
        if not self._queue and not self._busy:
            return defer.succeed(None)
        d = defer.Deferred()
        self._idle.append(d)
        return d

    def _write(self):
        self._timer = None
        if not self._queue:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)
            return
        self._busy = True
        ops = list(islice(self._queue, self.batch))

        def work(session):
            connection = session.connection()
            events = []
            for op in ops:  # in order: runs of events go as one executemany
                if op[0] == "event":
                    events.append(op[1])
                    continue
                if events:
                    connection.execute(_INSERT_EVENT, events)
                    events = []
                connection.execute(update(_ALARM).where(_ALARM.c.id == op[1]).values(**op[2]))
            if events:
                connection.execute(_INSERT_EVENT, events)

        d = self.database.run(work)
        d.addCallbacks(self._written, self._failed, callbackArgs=(len(ops),))

    def _written(self, _, count):
        for _ in range(count):
            self._queue.popleft()
        self._busy = False
        self._failures = 0
        self._write()

    def _failed(self, failure):
        self._busy = False
        self._failures += 1
        delay = min(self.retry_delay * 2 ** (self._failures - 1), self.max_retry_delay)
        self.log.failure("alarm timeline: {n} writes waiting, retrying in {delay:.1f} s",
                         failure, n=len(self._queue), delay=delay,
                         level=LogLevel.critical if self._failures in (1, 10)
                         or self._failures % 100 == 0 else LogLevel.warn)
        self._timer = self.clock.callLater(delay, self._write)

    def stop(self) -> defer.Deferred:
        """Write what is queued (the service is stopping)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
            self._timer = None
            self._write()
        return self.flush()

    # Reading back ---------------------------------------------------------

    def open_alarms(self) -> defer.Deferred:
        """Fire with an L{OpenAlarm} for every alarm not closed, oldest first."""
        def work(session):
            rows = session.execute(select(Alarm).where(Alarm.closed_at.is_(None))
                                   .order_by(Alarm.id)).scalars()
            return [OpenAlarm(a.id, a.household_id, a.caller_raw, a.caller_number, a.address,
                              a.status, a.room or room_name(a.id), a.opened_at, a.confirmed_at)
                    for a in rows]

        return self.database.run(work)

    def closed_among(self, ids) -> defer.Deferred:
        """Fire with the (id, outcome) of those of C{ids} closed in the database (by staff)."""
        ids = [int(i) for i in ids]

        def work(session):
            if not ids:
                return []
            return [tuple(r) for r in session.execute(
                select(Alarm.id, Alarm.outcome).where(Alarm.id.in_(ids),
                                                      Alarm.closed_at.is_not(None)))]

        return self.database.run(work)


_ALARM = Alarm.__table__
_INSERT_ALARM = insert(_ALARM)
_INSERT_EVENT = insert(AlarmEvent.__table__)


def room_name(alarm_id) -> str:
    """The ConfBridge room of an alarm."""
    return f"alarm-{alarm_id}"


def _later(clock, delay, f, *args):
    from twisted.internet.task import deferLater
    return deferLater(clock, delay, f, *args)
