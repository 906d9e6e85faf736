"""
Writing alarms down without ever blocking the reactor, or the caller.

An alarm's opening goes to the local journal (L{switchboard.journal}),
fsynced, and the alarm has its id at once: the recorder gives out the ids
itself, above the database's highest and the journal's. The database gets
the row, the timeline and every change behind, in order, on its thread
pool; a refused write is retried with growing delays, the journal keeping
it meanwhile, across restarts; nothing is ever dropped.
"""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass

from sqlalchemy import func, insert, select, text, update
from twisted.internet import defer
from twisted.logger import Logger

from alarm.adoption import TimelineEntry
from alarm.models import Alarm, AlarmEvent
from switchboard.community.models import Household, utc
from switchboard.journal import Journal, WriteBehind
from switchboard.leases import LEASE_SECONDS
from switchboard.listeners import Listeners
from switchboard.storage import on_postgres


# How long alarms wait at start-up for the database to say which ids it has
# used, before they are numbered on from the journal.
ID_DEADLINE = 1.0


@dataclass(frozen=True)
class OpenAlarm:
    """An alarm found open in the database or the journal (for restart recovery)."""

    id: int
    household_id: int | None
    caller_raw: str
    caller_number: str | None
    address: str
    status: str
    room: str
    opened_at: object
    confirmed_at: object
    asterisk: str = ""   # the caller's Asterisk server ("": the only one)


def _text(value, size):
    """C{value} as text that fits its column (NULs removed: PostgreSQL refuses them)."""
    return None if value is None else str(value).replace("\0", "")[:size]


_SIZES = {"status": 16, "room": 80, "outcome": 200}
_TIMES = ("opened_at", "confirmed_at", "closed_at")


#: Seconds an alarm's records wait in the journal before the database is
#: written, in the server. Written at once, the opening's row was on the
#: database thread while the reactor built the ten Originates: each of the
#: reactor's system calls (a journal line, the log, epoll) let that thread
#: take the GIL, and building the legs took 2.7-3.9 ms (p50, bench.alarm_fanout
#: --probe) instead of 1.7 ms, the bytes leaving 0.5-1.0 ms after the turn
#: instead of 0.2 ms. 50 ms also writes the opening and its legs' timeline
#: in one transaction. The journal is the record: nothing waits for the copy.
WRITE_BEHIND = 0.05


class AlarmRecorder:
    """
    Records alarms in C{database} (a L{switchboard.storage.Database} or
    anything with its C{run(work) -> Deferred}), through C{journal} (a
    L{Journal}; by default one kept in memory only). L{start} replays the
    journal and must be called first (L{open_alarm} waits for it).

    @param delay: seconds the journaled records gather before the database
        is written (L{WriteBehind}'s C{delay}). The server gives
        L{WRITE_BEHIND}: the alarm is on record once its journal line is
        fsynced, and the database's copy, written on a thread, must not
        compete for the GIL with the reactor while it originates the legs.

    @ivar batch: the most queued writes done in one transaction.
    @ivar listeners: told C{(alarm_id, kind, at, leg)} of every timeline
        entry as it is recorded: C{"opened"} (L{open_alarm}) and each
        L{event}; C{(None, "not-recorded", at, None)} for an alarm the
        journal could not take.
    """

    log = Logger()

    def __init__(self, database, journal=None, *, clock=None, retry_delay=0.5,
                 max_retry_delay=30.0, batch=200, owner=None, lease=LEASE_SECONDS,
                 delay=0.0):
        if clock is None:
            from twisted.internet import reactor as clock
        self.database = database
        self.clock = clock
        #: This instance's name as the owner of the alarms it opens
        #: (L{switchboard.leases}); None: alarms are written without one.
        self.owner = owner
        self.lease = lease
        self.journal = journal if journal is not None else Journal(None, "alarm")
        self.writer = WriteBehind(self.journal, database,
                                  functools.partial(_apply, lease_until=self._lease_until),
                                  clock=clock,
                                  state=lambda: {"high": self._high}, retry_delay=retry_delay,
                                  max_retry_delay=max_retry_delay, batch=batch, delay=delay)
        self._high = 0
        self._started = None
        self._ready = False
        self._replayed: dict = {}  # id -> what the journal held of it at start
        self._waiting: list = []
        self._given = 0            # ids given by this recorder
        # On PostgreSQL several instances may open alarms: each takes its
        # ids from the table's sequence, a block at a time, ahead of need.
        self._sequence = on_postgres(database)
        self._block: collections.deque = collections.deque()
        self._reserving = None
        # Opens waiting for the reservation in flight (their block ran dry).
        self._id_waiters: list = []
        # Whether the database answered the last reservation in time: while
        # it does not, alarms are numbered from the journal without waiting.
        self._answering = True
        # A burst of alarms must not empty the block before more come: two
        # instances numbering from their journals meanwhile would share ids.
        self.block_size = 128
        self.listeners = Listeners()

    def start(self) -> defer.Deferred:
        """Replay the journal; learn the highest alarm id. Fires when alarms can be opened."""
        if self._started is None:
            def read(session):
                highest = session.execute(select(func.max(Alarm.id))).scalar() or 0
                return highest, (_reserve(session, self.block_size) if self._sequence else [])

            def replayed(result):
                pending, header, (highest, block) = result
                if self._ready and int(highest) > self._high - self._given:
                    self.log.critical("alarm ids: the database holds alarms up to {db} that "
                                      "the journal did not know of", db=highest)
                self._high = max(self._high, int(highest), int(header.get("high", 0)))
                for record in pending:
                    if record["op"] == "open":
                        self._high = max(self._high, record["id"])
                        self._replayed[record["id"]] = dict(record["row"])
                    elif record["op"] == "update":
                        self._replayed.setdefault(record["id"], {}).update(record["fields"])
                self._block.extend(i for i in block if i > self._high)

                self._ready = True

            def failed(failure):
                # The journal cannot be read: no alarm can be put on record.
                self._started = None  # tried again by the next call
                self.log.failure("alarm journal unreadable", failure)
                return None

            self._started = self.writer.start(read).addCallbacks(replayed, failed)
            if not self._started.called:
                # The database does not answer yet: alarms are not kept
                # waiting for it; their ids follow the journal's.
                self.clock.callLater(ID_DEADLINE, self._ids_from_journal)
        d = defer.Deferred()
        if self._ready:
            d.callback(None)
        else:
            self._waiting.append(d)
            self._started.addBoth(self._release_waiting)
        return d

    def _release_waiting(self, result):
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)
        return None

    def _ids_from_journal(self):
        if self._ready:
            return
        high = 0
        for record in self.writer.records:
            if "header" in record:
                high = max(high, int((record.get("state") or {}).get("high", 0)))
            elif record.get("op") == "open":
                high = max(high, int(record["id"]))
        self._high = max(self._high, high)
        self._ready = True
        self._answering = False
        self.log.critical("alarm ids: the database did not answer within {s} s; alarms are "
                          "numbered on from the journal ({high}) and written once it does",
                          s=ID_DEADLINE, high=self._high)
        self._release_waiting(None)

    def _lease_until(self):
        """
        The lease of an alarm written now (on the database's thread): it
        runs from the write, not the opening, so a row written late (the
        database was away) is not taken for its owner's dead one.
        """
        return utc(self.clock.seconds() + self.lease)

    # The first write ------------------------------------------------------

    def open_alarm(self, *, at: float, caller_raw: str, caller_number, household_id,
                   address: str, detail: str = "", asterisk: str = "") -> defer.Deferred:
        """
        Give a new alarm its id and journal it (fsynced); fire with the id
        at once, without waiting for the database, which gets the row and
        its C{opened} event behind.
        """
        if not self._ready:
            def started(_):
                if not self._ready:
                    raise OSError("the alarm journal cannot be read: not on record")
                return self.open_alarm(at=at, caller_raw=caller_raw,
                                       caller_number=caller_number, household_id=household_id,
                                       address=address, detail=detail, asterisk=asterisk)
            return self.start().addCallback(started)
        if self._sequence and not self._block and self._answering:
            # The block ran dry (a burst): wait for the reservation in flight
            # rather than number from the journal, which another instance
            # doing the same would collide with; up to ID_DEADLINE s.
            d = defer.ensureDeferred(self._reserved(self.clock.seconds() + ID_DEADLINE))
            return d.addCallback(lambda _: self._open(at, caller_raw, caller_number,
                                                      household_id, address, detail, asterisk))
        return self._open(at, caller_raw, caller_number, household_id, address, detail,
                          asterisk)

    async def _reserved(self, deadline) -> None:
        """Wait until this instance's block holds an id, or until C{deadline}."""
        while not self._block and self.clock.seconds() < deadline:
            waiter = defer.Deferred()
            self._id_waiters.append(waiter)
            self._reserve_more()
            timer = self.clock.callLater(max(0.0, deadline - self.clock.seconds()),
                                         lambda w=waiter: w.called or w.callback(None))
            await waiter
            if timer.active():
                timer.cancel()
        if not self._block:
            self._answering = False

    def _open(self, at, caller_raw, caller_number, household_id, address, detail, asterisk):
        alarm_id = self._next_id()
        row = dict(household_id=None if household_id is None else int(household_id),
                   caller_raw=_text(caller_raw, 80) or "",
                   caller_number=_text(caller_number, 20), address=_text(address, 300) or "",
                   status="open", opened_at=float(at), room=room_name(alarm_id), outcome="")
        if self.owner is not None:
            row["owner"] = self.owner
        if asterisk:
            row["asterisk"] = _text(asterisk, 40)
        opened = dict(at=float(at), kind="opened", leg=None,
                      number=_text(caller_raw, 80) or None, detail=_text(detail, 300) or "")
        try:
            self.writer.add({"op": "open", "id": alarm_id, "row": row, "event": opened},
                            durable=True)
        except OSError:
            # Not on record (disk full, read-only): the dialplan rings natively.
            self.log.failure("ALARM NOT RECORDED: the journal cannot be written")
            self.listeners(None, "not-recorded", float(at), None)
            return defer.fail()
        self.listeners(alarm_id, "opened", float(at), None)
        return defer.succeed(alarm_id)

    def _next_id(self) -> int:
        """
        The next alarm's id: from this instance's block of the sequence on
        PostgreSQL (another block reserved once half is used), else above
        every id this recorder has seen. Without a block (the database away
        since start) it numbers on from the journal, which two instances
        could both do: said loudly.
        """
        self._given += 1
        if self._block:
            alarm_id = self._block.popleft()
        else:
            if self._sequence:
                self.log.critical("alarm ids: no ids reserved from the database (it does not "
                                  "answer): numbering on from the journal; another instance "
                                  "doing the same may take the same id")
            alarm_id = self._high + 1
        self._high = max(self._high, alarm_id)
        if self._sequence and len(self._block) < self.block_size // 2:
            self._reserve_more()
        return alarm_id

    def _reserve_more(self):
        if self._reserving is not None:
            return

        def reserved(ids):
            self._answering = True
            self._block.extend(i for i in ids if i > self._high)
            waiters, self._id_waiters = self._id_waiters, []
            for waiter in waiters:
                if not waiter.called:
                    waiter.callback(None)

        def done(_):
            self._reserving = None

        size = max(self.block_size, 2 * len(self._id_waiters))
        self._reserving = d = self.database.run(lambda s: _reserve(s, size))
        d.addCallbacks(reserved, lambda f: self.log.error(
            "alarm ids: cannot reserve more: {e}", e=f.getErrorMessage()))
        d.addBoth(done)

    # The timeline ---------------------------------------------------------

    def event(self, alarm_id, kind: str, *, at: float, leg=None, number=None, detail="") -> None:
        """Queue a timeline event of alarm C{alarm_id} at POSIX time C{at}."""
        row = dict(at=float(at), kind=_text(kind, 24), leg=_text(leg, 80),
                   number=_text(number, 80), detail=_text(detail or "", 300))
        self.writer.add({"op": "event", "id": int(alarm_id), "event": row})
        self.listeners(int(alarm_id), kind, float(at), leg)

    def update(self, alarm_id, **fields) -> None:
        """
        Queue a change of alarm C{alarm_id}'s row: C{status}, C{outcome},
        C{confirmed_at}/C{closed_at} (POSIX times), C{room}.
        """
        for name, value in fields.items():
            if name in _TIMES:
                fields[name] = None if value is None else float(value)
            else:
                fields[name] = _text(value, _SIZES.get(name, 200))
        self.writer.add({"op": "update", "id": int(alarm_id), "fields": fields})

    def pending(self) -> int:
        return self.writer.pending()

    def flush(self) -> defer.Deferred:
        """A Deferred that fires once everything queued so far is written."""
        return self.writer.flush()

    def stop(self) -> defer.Deferred:
        """Write what is queued if the database takes it (the journal keeps the rest)."""
        return self.writer.stop()

    # Reading back ---------------------------------------------------------

    def open_alarms(self) -> defer.Deferred:
        """
        Fire with an L{OpenAlarm} for every alarm not closed, oldest first:
        those in the database, with what the journal held at start (alarms
        and changes the database had not taken yet) laid over them.
        """
        def work(session):
            rows = session.execute(select(Alarm).where(Alarm.closed_at.is_(None))
                                   .order_by(Alarm.id)).scalars()
            return {a.id: dict(household_id=a.household_id, caller_raw=a.caller_raw,
                               caller_number=a.caller_number, address=a.address,
                               status=a.status, room=a.room, opened_at=a.opened_at,
                               confirmed_at=a.confirmed_at, closed_at=None, owner=a.owner,
                               asterisk=a.asterisk or "")
                    for a in rows}

        def merge(found):
            # Another instance's alarms are its own (it renews their leases;
            # once it stops, the leader takes them over): not this one's to
            # take up, even those this one's journal still held.
            theirs = {i for i, r in found.items()
                      if self.owner is not None and r.get("owner") not in (None, self.owner)}
            for alarm_id in theirs:
                del found[alarm_id]
            for alarm_id, journaled in self._replayed.items():
                if alarm_id in theirs:
                    continue
                row = found.get(alarm_id)
                if row is None and "opened_at" not in journaled:
                    continue  # closed in the database (by staff), or not this journal's
                row = dict(row or {})
                for name, value in journaled.items():
                    row[name] = utc(value) if name in _TIMES and value is not None else value
                found[alarm_id] = row
            return [OpenAlarm(i, r.get("household_id"), r.get("caller_raw") or "",
                              r.get("caller_number"), r.get("address") or "",
                              r.get("status") or "open", r.get("room") or room_name(i),
                              r.get("opened_at"), r.get("confirmed_at"), r.get("asterisk") or "")
                    for i, r in sorted(found.items()) if r.get("closed_at") is None]

        return self.start().addCallback(lambda _: self.database.run(work)).addCallback(merge)

    def taken_over(self, alarm_id) -> defer.Deferred:
        """
        Fire with an open alarm of another instance as on record: its
        L{OpenAlarm} and its timeline (L{TimelineEntry}, oldest first), or
        None if it is closed meanwhile.
        """
        def work(session):
            a = session.get(Alarm, int(alarm_id))
            if a is None or a.closed_at is not None:
                return None
            row = OpenAlarm(a.id, a.household_id, a.caller_raw or "", a.caller_number,
                            a.address or "", a.status or "open", a.room or room_name(a.id),
                            a.opened_at, a.confirmed_at, a.asterisk or "")
            entries = [TimelineEntry(e.kind, e.leg, e.number, e.detail or "")
                       for e in session.execute(select(AlarmEvent).where(
                           AlarmEvent.alarm_id == a.id).order_by(AlarmEvent.id)).scalars()]
            return row, entries

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


def _apply(connection, records, lease_until=None):
    """
    Write journal records in order (on the database's thread); runs of
    events go together. An alarm with an owner gets its lease from
    C{lease_until()}.
    """
    events, opened = [], False

    def flush_events():
        if events:
            connection.execute(_INSERT_EVENT, events)
            events.clear()

    for record in records:
        op = record["op"]
        if op == "event":
            events.append(_event_row(record["id"], record["event"]))
            continue
        flush_events()
        if op == "open":
            row = dict(record["row"], id=record["id"], opened_at=utc(record["row"]["opened_at"]))
            if row.get("owner") is not None and lease_until is not None:
                row["lease_until"] = lease_until()
            if row["household_id"] is not None and connection.execute(
                    select(Household.id).where(Household.id == row["household_id"])).first() is None:
                row["household_id"] = None  # deleted since: the address is kept in the row
            connection.execute(_INSERT_ALARM, row)
            events.append(_event_row(record["id"], record["event"]))
            opened = True
        elif op == "update":
            fields = {k: (utc(v) if k in _TIMES and v is not None else v)
                      for k, v in record["fields"].items()}
            connection.execute(update(_ALARM).where(_ALARM.c.id == record["id"]).values(**fields))
    flush_events()
    if opened and connection.dialect.name == "postgresql":
        # Ids numbered from a journal (the database was away) are not the
        # sequence's: keep it above them, never below what it gave out.
        connection.execute(text(
            "SELECT setval(pg_get_serial_sequence('alarm', 'id'), GREATEST("
            "(SELECT max(id) FROM alarm), COALESCE(pg_sequence_last_value("
            "pg_get_serial_sequence('alarm', 'id')::regclass), 1)))"))


def _reserve(session, n) -> list:
    """C{n} alarm ids from the table's sequence, this caller's alone (PostgreSQL)."""
    return [row[0] for row in session.execute(text(
        "SELECT nextval(pg_get_serial_sequence('alarm', 'id')) FROM generate_series(1, :n)"),
        {"n": int(n)})]


def _event_row(alarm_id, event):
    return dict(event, alarm_id=alarm_id, at=utc(event["at"]))


def room_name(alarm_id) -> str:
    """The ConfBridge room of an alarm."""
    return f"alarm-{alarm_id}"
