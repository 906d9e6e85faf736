"""
Records of hotline calls: who called, which way the call went, where it
ended and how.

The hotline handler hands each finished call to L{CallLog.record}, which
returns at once: the rows are written in batches on the database's thread
pool, one batch at a time. A slow or failing database costs log lines,
never a caller's time; if it falls far behind, the oldest unwritten
records are dropped (with an error) rather than memory growing without
bound.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import insert, DateTime, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column
from twisted.internet import defer
from twisted.logger import Logger

from switchboard.storage import Base

ANSWERED = "answered"
BUSY = "busy"
NO_ANSWER = "no-answer"
VOICEMAIL = "voicemail"
ANNOUNCEMENT = "announcement"
ABANDONED = "abandoned"
FAILED = "failed"
OUTCOMES = (ANSWERED, BUSY, NO_ANSWER, VOICEMAIL, ANNOUNCEMENT, ABANDONED, FAILED)


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

    def row(self) -> dict:
        return dict(uniqueid=self.uniqueid, caller=self.caller, hotline=self.hotline,
                    path=json.dumps(self.path, ensure_ascii=False),
                    destination=self.destination, outcome=self.outcome or FAILED,
                    started=utc(self.started), answered=utc(self.answered), ended=utc(self.ended))


_INSERT = insert(CallRecord.__table__)


class CallLog:
    """
    Writes call records without ever making a caller wait.

    @param database: a L{switchboard.storage.Database} (its C{run} is used).
    @param max_pending: records kept while the database is behind.
    @param batch: records written per transaction.
    @param delay: seconds records gather before a write, so a busy hotline
        writes one transaction for many calls rather than one each.
    @param clock: provides C{callLater}; the reactor by default.
    """

    log = Logger()

    def __init__(self, database, *, max_pending: int = 10000, batch: int = 200,
                 delay: float = 0.0, clock=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.database = database
        self.max_pending = max_pending
        self.batch = batch
        self.delay = delay
        self.clock = clock
        self.dropped = 0
        self.written = 0
        self._pending: deque = deque()
        self._writing = False
        self._scheduled = None
        self._idle: list = []

    def record(self, call: Call) -> None:
        """Queue C{call} for writing; returns at once and never raises."""
        try:
            if len(self._pending) >= self.max_pending:
                self._pending.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    self.log.error("call log {pending} records behind: dropped the oldest "
                                   "({dropped} dropped so far)", pending=len(self._pending),
                                   dropped=self.dropped)
            self._pending.append(call.row())
            if not self._writing and self._scheduled is None:
                if self.delay > 0:
                    self._scheduled = self.clock.callLater(self.delay, self._write)
                else:
                    self._write()
        except Exception:
            self.log.failure("call log: could not queue the record of a call")

    def flush(self) -> defer.Deferred:
        """A Deferred that fires once everything queued so far is written (or given up)."""
        if not self._writing and not self._pending:
            return defer.succeed(None)
        d = defer.Deferred()
        self._idle.append(d)
        if self._scheduled is not None:
            self._write()
        return d

    def _write(self) -> None:
        if self._scheduled is not None:
            if self._scheduled.active():
                self._scheduled.cancel()
            self._scheduled = None
        rows = [self._pending.popleft() for _ in range(min(self.batch, len(self._pending)))]
        self._writing = True

        def work(session):
            # Core executemany: no ORM objects or bookkeeping for records
            # that are only ever written here.
            session.connection().execute(_INSERT, rows)
            return len(rows)

        try:
            d = self.database.run(work)
        except Exception:
            d = defer.fail()
        d.addCallbacks(self._written, self._failed, errbackArgs=(len(rows),))
        d.addBoth(self._next)

    def _written(self, count):
        self.written += count

    def _failed(self, failure, count):
        self.log.failure("call log: {count} call record(s) could not be written", failure,
                         count=count)

    def _next(self, _):
        self._writing = False
        if self._pending:
            self._write()
        else:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)

    @staticmethod
    def recent(session, limit: int = 20) -> list:
        """The latest C{limit} calls, newest first (synchronous: CLI use)."""
        query = select(CallRecord).order_by(CallRecord.started.desc(), CallRecord.id.desc())
        return list(session.execute(query.limit(limit)).scalars())
