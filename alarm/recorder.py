"""
Writing alarms down without ever blocking the reactor, and without waiting
for the database before a phone rings.

An alarm's opening is written to a local journal (L{switchboard.journal}),
on the disk itself, before any phone rings: that is the record. Its id is
given by this recorder (one more than any it knows of, in the database or
the journal), so the phones ring at once whatever the database does: locked,
read-only, full or gone. Everything else, the timeline and the changes of
the alarm's row, goes to the journal too (each a line the kernel keeps if
the server is killed) and is written to the database behind, in order, by
one writer on the database's thread pool; a failed write is retried with
growing delays and nothing is dropped: what the database has not taken
stays in the journal, across restarts, and is written once it can be. Once
the database holds everything, the journal is compacted.

Without a journal (tests, tools), the same queue is kept in memory only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import islice

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from twisted.internet import defer
from twisted.logger import Logger, LogLevel

from alarm.models import Alarm, AlarmEvent, utc

# How long an alarm's id may wait for the database to say which ids it
# has used, when this recorder does not know yet (the phones wait on it).
ID_DEADLINE = 0.3
HIGH_WATER = "ids"        # a journal record: the highest alarm id given


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
    anything with its C{run(work) -> Deferred}), through C{journal} (a
    L{switchboard.journal.Journal}, or None).

    @ivar batch: the most queued writes done in one transaction.
    """

    log = Logger()

    def __init__(self, database, *, clock=None, journal=None, retry_delay=0.5,
                 max_retry_delay=30.0, batch=200, compact_every=200):
        if clock is None:
            from twisted.internet import reactor as clock
        self.database = database
        self.clock = clock
        self.journal = journal
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.batch = batch
        self.compact_every = compact_every
        self._queue: deque = deque()
        self._busy = False
        self._failures = 0
        self._timer = None
        self._idle: list = []
        self._last_id = None        # the highest alarm id known to be taken
        self._renamed: dict = {}    # id given -> id the database holds it under
        self._since_compact = 0     # ops written since the journal was compacted
        if journal is not None:
            self._take_up(journal.records)

    def _take_up(self, records):
        """What a journal holds from before: still to write (in order), and the ids used."""
        for record in records:
            if record[0] == HIGH_WATER:
                self._last_id = max(self._last_id or 0, record[1])
                continue
            if record[0] == "open":
                self._last_id = max(self._last_id or 0, record[1]["id"])
            self._queue.append(tuple(record))
        if self._queue:
            self.log.warn("alarm journal: {n} records from before are written to the "
                          "database", n=len(self._queue))

    def start(self) -> defer.Deferred:
        """
        At start-up: write what the journal kept from before, and learn the
        ids used so far (so that the first #9 waits for nothing).
        """
        if self._queue and not self._busy and self._timer is None:
            self._write()
        return self._ids_known()

    # The first write ------------------------------------------------------

    def open_alarm(self, *, at: float, caller_raw: str, caller_number, household_id,
                   address: str, detail: str = "") -> defer.Deferred:
        """
        Put a new alarm on record: its opening on the disk (the journal),
        then its id. Fires with the id as soon as it is known: at once when
        this recorder knows the ids used so far, else once the database has
        said (within L{ID_DEADLINE} seconds; past it the journal decides).
        Fails only if the journal cannot be written.
        """
        d = self._ids_known()
        d.addCallback(lambda _: self._open(at, caller_raw, caller_number, household_id,
                                           address, detail))
        return d

    def _open(self, at, caller_raw, caller_number, household_id, address, detail):
        alarm_id = (self._last_id or 0) + 1
        row = dict(id=alarm_id, household_id=household_id, caller_raw=str(caller_raw)[:80],
                   caller_number=None if caller_number is None else str(caller_number)[:20],
                   address=str(address)[:300], status="open", opened_at=at,
                   room=room_name(alarm_id), outcome="")
        self._enqueue(("open", row), durable=True)   # raises if it cannot be written
        self._last_id = alarm_id
        self.event(alarm_id, "opened", at=at, number=str(caller_raw)[:80] or None,
                   detail=detail)
        return alarm_id

    def _ids_known(self):
        if self._last_id is not None:
            return defer.succeed(None)

        def work(session):
            return session.execute(select(func.max(Alarm.id))).scalar() or 0

        d = self.database.run(work)
        d.addTimeout(ID_DEADLINE, self.clock)

        def known(last):
            if self._last_id is None:
                self._last_id = last
            else:
                self._last_id = max(self._last_id, last)

        def unknown(failure):
            self.log.warn("alarm ids: the database did not answer ({error}); counting on "
                          "from the journal", error=failure.getErrorMessage())
            if self._last_id is None:
                self._last_id = 0

        return d.addCallbacks(known, unknown)

    # The timeline ---------------------------------------------------------

    def event(self, alarm_id, kind: str, *, at: float, leg=None, number=None, detail="") -> None:
        """Queue a timeline event of alarm C{alarm_id} at POSIX time C{at}."""
        row = dict(alarm_id=int(alarm_id), at=at, kind=kind[:24],
                   leg=None if leg is None else str(leg)[:80],
                   number=None if number is None else str(number)[:80],
                   detail=str(detail or "")[:300])
        self._enqueue(("event", row))

    def update(self, alarm_id, **fields) -> None:
        """
        Queue a change of alarm C{alarm_id}'s row: C{status}, C{outcome},
        C{confirmed_at}/C{closed_at} (POSIX times), C{room}.
        """
        for name, limit in (("status", 16), ("outcome", 200), ("room", 80)):
            if name in fields and fields[name] is not None:
                fields[name] = str(fields[name])[:limit]
        self._enqueue(("update", int(alarm_id), fields))

    def _enqueue(self, op, durable=False):
        if self.journal is not None:
            try:
                self.journal.append(list(op), durable=durable)
            except OSError:
                if durable:
                    raise
                self.log.failure("alarm journal: not written (kept in memory)",
                                 level=LogLevel.critical)
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
            self._compact()
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)
            return
        self._busy = True
        ops = list(islice(self._queue, self.batch))
        renamed = dict(self._renamed)

        def work(session):
            connection = session.connection()
            events = []

            def flush_events():
                if events:
                    connection.execute(_INSERT_EVENT, events)
                    events.clear()

            for op in ops:  # in order: runs of events go as one executemany
                if op[0] == "event":
                    row = dict(op[1], at=utc(op[1]["at"]))
                    row["alarm_id"] = renamed.get(row["alarm_id"], row["alarm_id"])
                    events.append(row)
                    continue
                flush_events()
                if op[0] == "open":
                    _insert_alarm(session, connection, op[1], renamed)
                else:
                    fields = dict(op[2])
                    for name in ("confirmed_at", "closed_at"):
                        if fields.get(name) is not None:
                            fields[name] = utc(fields[name])
                    alarm_id = renamed.get(op[1], op[1])
                    connection.execute(update(_ALARM).where(_ALARM.c.id == alarm_id)
                                       .values(**fields))
            flush_events()
            return renamed

        d = self.database.run(work)
        d.addCallbacks(self._written, self._failed, callbackArgs=(len(ops),))

    def _written(self, renamed, count):
        for given, held in renamed.items():
            if self._renamed.get(given) != held:
                self._renamed[given] = held
                self.log.critical("ALARM {given} is in the database as alarm {held} (its id "
                                  "was taken while the database could not be asked)",
                                  given=given, held=held)
        for _ in range(count):
            self._queue.popleft()
        self._since_compact += count
        self._busy = False
        self._failures = 0
        self._write()

    def _compact(self):
        """Everything is in the database: the journal keeps only the ids given."""
        if self.journal is None or self._since_compact < self.compact_every and \
                self.journal.appended < self.compact_every:
            return
        try:
            self.journal.compact([[HIGH_WATER, self._last_id or 0]])
            self._since_compact = 0
        except OSError:
            self.log.failure("alarm journal: not compacted (it is kept as it is)")

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
        """Write what is queued (the service is stopping); the journal keeps the rest."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
            self._timer = None
            self._write()
        return self.flush()

    # Reading back ---------------------------------------------------------

    def open_alarms(self) -> defer.Deferred:
        """
        Fire with an L{OpenAlarm} for every alarm not closed, oldest first:
        those in the database, and those only in the journal so far (when
        the database cannot be read, those alone).
        """
        def work(session):
            rows = session.execute(select(Alarm).where(Alarm.closed_at.is_(None))
                                   .order_by(Alarm.id)).scalars()
            return [OpenAlarm(a.id, a.household_id, a.caller_raw, a.caller_number, a.address,
                              a.status, a.room or room_name(a.id), a.opened_at, a.confirmed_at)
                    for a in rows]

        def unreadable(failure):
            self.log.failure("open alarms: the database cannot be read; the journal's only",
                             failure, level=LogLevel.critical)
            return []

        d = self.database.run(work)
        d.addErrback(unreadable)
        d.addCallback(self._with_journaled)
        return d

    def _with_journaled(self, found):
        """C{found} and the alarms still waiting in the queue, as the queue leaves them."""
        alarms = {a.id: a for a in found}
        for op in self._queue:
            if op[0] == "open":
                row = op[1]
                alarms[row["id"]] = OpenAlarm(
                    row["id"], row["household_id"], row["caller_raw"], row["caller_number"],
                    row["address"], row["status"], row["room"], utc(row["opened_at"]), None)
            elif op[0] == "update" and op[1] in alarms:
                fields = op[2]
                if fields.get("closed_at") is not None:
                    del alarms[op[1]]
                    continue
                current = alarms[op[1]]
                alarms[op[1]] = OpenAlarm(
                    current.id, current.household_id, current.caller_raw,
                    current.caller_number, current.address, fields.get("status", current.status),
                    current.room, current.opened_at,
                    utc(fields["confirmed_at"]) if fields.get("confirmed_at") is not None
                    else current.confirmed_at)
        return [alarms[i] for i in sorted(alarms)]

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


def _insert_alarm(session, connection, row, renamed):
    """Insert an alarm's row under the id it was given, or, if that is taken, a new one."""
    row = dict(row, opened_at=utc(row["opened_at"]))
    try:
        with session.begin_nested():
            connection.execute(_INSERT_ALARM, row)
    except IntegrityError:
        given = row.pop("id")
        held = connection.execute(_INSERT_ALARM, row).inserted_primary_key[0]
        renamed[given] = held


_ALARM = Alarm.__table__
_INSERT_ALARM = insert(_ALARM)
_INSERT_EVENT = insert(AlarmEvent.__table__)


def room_name(alarm_id) -> str:
    """The ConfBridge room of an alarm."""
    return f"alarm-{alarm_id}"


