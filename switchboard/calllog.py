"""
Records of hotline calls: who called, which way the call went, where it
ended and how.

The hotline handler hands each call to L{CallLog.begin} when it starts (the
record says C{in progress}) and to L{CallLog.record} when it ends. Both
return at once: the record goes to the local journal (L{switchboard.journal})
and the database gets it behind, in batches on its thread pool, retried
until it takes it; a record leaves the journal only once the database has
committed it. A call still in progress when the server stops (or after a
kill -9, at the next start) is recorded C{interrupted}.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import DateTime, Integer, String, Text, func, insert, select, text, update
from sqlalchemy.orm import Mapped, mapped_column
from twisted.internet import defer
from twisted.logger import Logger

from switchboard.journal import Journal, WriteBehind, describe
from switchboard.listeners import Listeners
from switchboard.storage import Base

ANSWERED = "answered"
BUSY = "busy"
NO_ANSWER = "no-answer"
VOICEMAIL = "voicemail"
ANNOUNCEMENT = "announcement"
ABANDONED = "abandoned"
FAILED = "failed"
IN_PROGRESS = "in progress"
INTERRUPTED = "interrupted"  # the server stopped during the call
OUTCOMES = (ANSWERED, BUSY, NO_ANSWER, VOICEMAIL, ANNOUNCEMENT, ABANDONED, FAILED, IN_PROGRESS,
            INTERRUPTED)
STOPPED = "the server stopped during the call"


class CallRecord(Base):
    """One hotline call (times in UTC)."""

    __tablename__ = "hotline_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uniqueid: Mapped[Optional[str]] = mapped_column(String(64), index=True)
    caller: Mapped[Optional[str]] = mapped_column(String(64))  # E.164, or as presented
    hotline: Mapped[Optional[str]] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of steps
    destination: Mapped[Optional[str]] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(20))
    started: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    answered: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    ended: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    @property
    def steps(self) -> list:
        try:
            return json.loads(self.path or "[]")
        except ValueError:
            return [self.path]


def utc(moment: Optional[datetime]) -> Optional[datetime]:
    """C{moment} as an aware UTC time (SQLite hands back naive UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


@dataclass
class Call:
    """What the handler knows about a call; becomes a L{CallRecord}."""

    started: datetime
    caller: Optional[str] = None
    hotline: Optional[str] = None
    uniqueid: Optional[str] = None
    path: list = field(default_factory=list)
    destination: Optional[str] = None
    outcome: Optional[str] = None
    answered: Optional[datetime] = None
    ended: Optional[datetime] = None
    handled: bool = False  # SWITCHBOARD_RESULT=OK was set (not stored)
    record_id: Optional[int] = None  # given by L{CallLog.begin} (not stored)

    def row(self, outcome=None) -> dict:
        """The record as the journal keeps it: every field bounded to its column."""
        return dict(uniqueid=_text(self.uniqueid, 64), caller=_text(self.caller, 64),
                    hotline=_text(self.hotline, 64),
                    path=json.dumps([_text(step, 300) for step in self.path[:200]],
                                    ensure_ascii=False),
                    destination=_text(self.destination, 200),
                    outcome=_text(outcome or self.outcome or FAILED, 20),
                    started=_seconds(self.started), answered=_seconds(self.answered),
                    ended=_seconds(self.ended))


def _text(value, size):
    return None if value is None else str(value).replace("\0", "")[:size]


def _seconds(moment):
    return None if moment is None else utc(moment).timestamp()


def _stored(row: dict, record_id: int) -> dict:
    """A journal row as the table takes it."""
    row = dict(row, id=record_id)
    for name in ("started", "answered", "ended"):
        if row.get(name) is not None:
            row[name] = datetime.fromtimestamp(row[name], timezone.utc)
    return row


_TABLE = CallRecord.__table__
_INSERT = insert(_TABLE)


class CallLog:
    """
    Writes call records without ever making a caller wait, and without
    losing one.

    @param database: a L{switchboard.storage.Database} (its C{run} is used).
    @param journal: a L{Journal}; by default one kept in memory only.
    @param batch: records written per transaction.
    @param delay: seconds records gather before a write, so a busy hotline
        writes one transaction for many calls rather than one each.
    @param clock: provides C{callLater}; the reactor by default.

    @ivar listeners: told of each ended L{Call} as it is recorded.
    """

    log = Logger()

    def __init__(self, database, journal=None, *, batch: int = 200, delay: float = 0.0,
                 clock=None, retry_delay=0.5, max_retry_delay=30.0):
        if clock is None:
            from twisted.internet import reactor as clock
        self.database = database
        self.clock = clock
        self.journal = journal if journal is not None else Journal(None, "calls")
        self.writer = WriteBehind(self.journal, database, _apply, clock=clock, delay=delay,
                                  batch=batch, state=lambda: {"high": self._high},
                                  retry_delay=retry_delay, max_retry_delay=max_retry_delay)
        self.written = 0
        self._high = 0
        self._ready = False
        self._started = None
        self._waiting: list = []  # (method, call) before the start
        self._open: dict = {}     # record id -> Call in progress
        self.listeners = Listeners()

    def start(self) -> defer.Deferred:
        """
        Replay the journal (calls it holds that never ended are recorded
        C{interrupted}); learn the highest record id.
        """
        if self._started is None:
            def read(session):
                return session.execute(select(func.max(CallRecord.id))).scalar() or 0

            def replayed(result):
                pending, header, highest = result
                self._high = max(int(highest), int(header.get("high", 0)))
                begun = {}
                for record in pending:
                    self._high = max(self._high, record["id"])
                    if record["op"] == "start":
                        begun[record["id"]] = record["row"]
                    else:
                        begun.pop(record["id"], None)
                for record_id, row in begun.items():
                    steps = json.loads(row["path"]) + [STOPPED]
                    self.writer.add({"op": "end", "id": record_id, "row": dict(
                        row, outcome=INTERRUPTED, path=json.dumps(steps, ensure_ascii=False))})
                # Calls whose start the database took, then the journal let go of.
                self.writer.add({"op": "interrupted", "id": self._high})
                self._ready = True
                waiting, self._waiting = self._waiting, []
                for method, call in waiting:
                    method(call)

            def failed(failure):
                self._started = None
                self.log.critical("call log: cannot start ({error}); records wait in memory",
                                  error=describe(failure))

            self._started = self.writer.start(read).addCallbacks(replayed, failed)
        return self._started

    def begin(self, call: Call) -> None:
        """Journal C{call} as in progress; returns at once and never raises."""
        try:
            if not self._ready:
                self._waiting.append((self.begin, call))
                self.start()
                return
            self._high += 1
            call.record_id = self._high
            self._open[call.record_id] = call
            self.writer.add({"op": "start", "id": call.record_id,
                             "row": call.row(outcome=IN_PROGRESS)})
        except Exception:
            self.log.failure("call log: could not journal the start of a call")

    def record(self, call: Call) -> None:
        """Journal C{call} as ended; returns at once and never raises."""
        try:
            if not self._ready:
                self._waiting.append((self.record, call))
                self.start()
                return
            if call.record_id is None:
                self._high += 1
                call.record_id = self._high
            self._open.pop(call.record_id, None)
            self.writer.add({"op": "end", "id": call.record_id, "row": call.row()})
            self.written += 1
            self.listeners(call)
        except Exception:
            self.log.failure("call log: could not journal the record of a call")

    def pending(self) -> int:
        return self.writer.pending() + len(self._waiting)

    def flush(self) -> defer.Deferred:
        """A Deferred that fires once everything journaled so far is in the database."""
        return self.writer.flush()

    def stop(self) -> defer.Deferred:
        """
        The server stops: calls still in progress are recorded
        C{interrupted}; one last write, the journal keeping what the
        database refuses.
        """
        now = datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
        for call in list(self._open.values()):
            call.path.append(STOPPED)
            call.outcome, call.ended = INTERRUPTED, now
            self.record(call)
        return self.writer.stop()

    @staticmethod
    def recent(session, limit: int = 20) -> list:
        """The latest C{limit} calls, newest first (synchronous: CLI use)."""
        query = select(CallRecord).order_by(CallRecord.started.desc(), CallRecord.id.desc())
        return list(session.execute(query.limit(limit)).scalars())


def _apply(connection, records):
    """
    Write journal records in order (on the database's thread): a call's
    start inserts its row, its end replaces it (or inserts it, when the
    start is in the same batch or never reached the table).
    """
    rows, order = {}, []  # id -> row to insert, in order
    ends = {}
    interrupted = None
    for record in records:
        record_id, op = record["id"], record["op"]
        if op == "interrupted":
            interrupted = record_id
        elif op == "start" or record_id in rows:
            if record_id not in rows:
                order.append(record_id)
            rows[record_id] = _stored(record["row"], record_id)
        else:
            ends[record_id] = _stored(record["row"], record_id)
    if interrupted is not None:
        connection.execute(update(_TABLE).where(_TABLE.c.outcome == IN_PROGRESS,
                                                _TABLE.c.id <= interrupted)
                           .values(outcome=INTERRUPTED))
    if ends:
        present = {r[0] for r in connection.execute(
            select(_TABLE.c.id).where(_TABLE.c.id.in_(list(ends))))}
        for record_id, row in ends.items():
            if record_id in present:
                connection.execute(update(_TABLE).where(_TABLE.c.id == record_id).values(**row))
            else:
                rows[record_id] = row
                order.append(record_id)
    if order:
        connection.execute(_INSERT, [rows[i] for i in order])
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT setval(pg_get_serial_sequence('hotline_calls', 'id'), "
                                    "(SELECT max(id) FROM hotline_calls))"))

