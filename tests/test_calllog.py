"""
Call records: journaled at once (in progress from the call's start), written
through the database's C{run} in batches behind, never raising into the
caller's path, retried until the database takes them, across restarts.
"""

from __future__ import annotations

import pytest
import json
import os
import shutil
import sqlite3
import tempfile
from datetime import datetime, timedelta, timezone

from twisted.internet import defer, task
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from switchboard.calllog import (ANSWERED, FAILED, IN_PROGRESS, INTERRUPTED, VOICEMAIL, Call,
                                 CallLog, CallRecord, utc)
from switchboard.journal import Journal
from switchboard.storage import Base
from tests import databases
from tests.test_hotline_support import SyncDatabase

pytestmark = pytest.mark.database

T0 = datetime(2026, 10, 8, 2, 0, tzinfo=timezone.utc)


def call(n=0, **kw):
    fields = dict(started=T0 + timedelta(minutes=n), caller="+8659187650001", hotline="12345",
                  uniqueid=f"1790000000.{n}", path=["menu main", "pressed 1: 社区卫生服务中心"],
                  destination="社区卫生服务中心", outcome=ANSWERED,
                  answered=T0 + timedelta(minutes=n, seconds=8),
                  ended=T0 + timedelta(minutes=n, seconds=70))
    fields.update(kw)
    return Call(**fields)


class FakeSession:
    """Collects the rows a write would insert."""

    def __init__(self, rows):
        self.rows = rows

    def connection(self):
        return self

    dialect = type("Dialect", (), {"name": "sqlite"})

    def execute(self, statement, rows=None):
        if isinstance(rows, list):
            self.rows.extend(rows)
        return []


class SlowDatabase:
    """A database whose C{run} waits until the test fires it."""

    def __init__(self):
        self.pending = []

    def run(self, work):
        d = defer.Deferred()
        self.pending.append((work, d))
        return d

    def started(self, log):
        """Start C{log}: its read of the mark and the highest id, answered as an empty database."""
        log.start()
        work, d = self.pending.pop(0)
        d.callback((0, 0))
        if self.pending:  # the "interrupted" sweep of the table (or with the next batch)
            self.pending.pop(0)[1].callback(None)
        return log


class CallLogTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()   # no test leaves a timer on the real reactor
        self.folder = folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        self.database = SyncDatabase(databases.url(folder, "calls"))
        Base.metadata.create_all(self.database.engine, tables=[CallRecord.__table__])
        self.addCleanup(self.database.close)

    def rows(self):
        with self.database.session() as session:
            return CallLog.recent(session, 100)

    def test_record_is_written(self):
        log = CallLog(self.database, clock=self.clock)
        log.record(call())
        self.successResultOf(log.flush())
        (row,) = self.rows()
        self.assertEqual((row.caller, row.hotline, row.destination, row.outcome, row.uniqueid),
                         ("+8659187650001", "12345", "社区卫生服务中心", ANSWERED, "1790000000.0"))
        self.assertEqual(row.steps, ["menu main", "pressed 1: 社区卫生服务中心"])
        self.assertIn("社区卫生服务中心", row.path)  # UTF-8 kept readable, not \\u escapes
        self.assertEqual(utc(row.started), T0)
        self.assertEqual(utc(row.answered), T0 + timedelta(seconds=8))
        self.assertEqual(utc(row.ended), T0 + timedelta(seconds=70))
        self.assertEqual(log.written, 1)

    def test_local_times_are_stored_as_utc(self):
        from zoneinfo import ZoneInfo
        log = CallLog(self.database, clock=self.clock)
        log.record(call(started=datetime(2026, 10, 8, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))))
        (row,) = self.rows()
        self.assertEqual(utc(row.started), T0)

    def test_missing_outcome_is_failed(self):
        log = CallLog(self.database, clock=self.clock)
        log.record(call(outcome=None, answered=None, caller=None))
        (row,) = self.rows()
        self.assertEqual((row.outcome, row.caller, row.answered), (FAILED, None, None))

    def test_recent_newest_first_and_limited(self):
        log = CallLog(self.database, clock=self.clock)
        for n in range(5):
            log.record(call(n, outcome=VOICEMAIL if n % 2 else ANSWERED))
        with self.database.session() as session:
            rows = CallLog.recent(session, 3)
        self.assertEqual([r.uniqueid for r in rows],
                         ["1790000000.4", "1790000000.3", "1790000000.2"])

    def test_record_returns_before_the_database(self):
        slow = SlowDatabase()
        log = slow.started(CallLog(slow, batch=2, clock=self.clock))
        for n in range(5):
            self.assertIsNone(log.record(call(n)))
        self.assertEqual(len(slow.pending), 1)  # one write at a time
        flushed = log.flush()
        self.assertNoResult(flushed)
        sizes = []
        while slow.pending:
            work, d = slow.pending.pop(0)
            added = []
            work(FakeSessionWithMark(added))
            sizes.append(len(added))
            d.callback(None)
        self.assertEqual(sizes, [1, 2, 2])  # the first alone, then batches of what queued
        self.successResultOf(flushed)

    def journal(self):
        return Journal(os.path.join(self.folder, "journal"), "calls")

    def test_on_record_from_its_start_completed_at_its_end(self):
        log = CallLog(self.database, self.journal(), clock=self.clock)
        self.successResultOf(log.start())
        c = call(ended=None, outcome=None)
        log.begin(c)
        (row,) = self.rows()
        self.assertEqual((row.outcome, row.caller, row.ended), (IN_PROGRESS, "+8659187650001", None))
        c.outcome, c.ended = ANSWERED, T0 + timedelta(seconds=70)
        log.record(c)
        (row,) = self.rows()
        self.assertEqual((row.outcome, utc(row.ended)), (ANSWERED, T0 + timedelta(seconds=70)))

    @pytest.mark.sqlite_pass  # another process holding SQLite's write lock
    def test_refused_writes_are_retried_never_lost(self):
        # Before: a failed write was logged and its rows were gone (3 of 3).
        from twisted.internet import task
        from sqlalchemy import event as sa_event
        clock = task.Clock()
        log = CallLog(self.database, self.journal(), clock=clock)
        self.successResultOf(log.start())
        other = sqlite3.connect(os.path.join(self.folder, "calls.db"), timeout=0)
        other.execute("BEGIN EXCLUSIVE")
        self.database.engine.dispose()

        @sa_event.listens_for(self.database.engine, "connect")
        def short_wait(connection, _):
            connection.execute("PRAGMA busy_timeout=50")

        with capturedLogs() as events:
            for n in range(3):
                log.record(call(n, caller="+8659187650001" + "9" * 100))
            clock.advance(0.5)
        self.assertEqual(log.pending(), 3)
        text = " ".join(formatEvent(e) for e in events)
        self.assertIn("database is locked", text)
        self.assertNotIn("87650001", text)  # no resident's number in the log
        other.rollback()
        other.close()
        clock.advance(1.0)
        self.assertEqual(log.pending(), 0)
        rows = self.rows()
        self.assertEqual(len(rows), 3)
        self.assertEqual(len(rows[0].caller), 64)  # bounded to its column

    def test_calls_in_progress_at_a_kill_are_recorded_after_the_restart(self):
        # Before: a call in progress at kill -9 had no record at all.
        log = CallLog(self.database, self.journal(), clock=self.clock)
        self.successResultOf(log.start())
        self.database.fail_next = 1000  # the database refuses: only the journal has them
        for n in range(5):
            log.begin(call(n, ended=None, outcome=None))
        log.record(call(9))
        self.assertEqual(self.flushLoggedErrors(), [])  # warnings, no tracebacks
        # kill -9: nothing more runs. The server starts again.
        self.database.fail_next = 0
        again = CallLog(self.database, self.journal(), clock=self.clock)
        self.successResultOf(again.start())
        self.successResultOf(again.flush())
        rows = self.rows()
        self.assertEqual(sorted(r.outcome for r in rows), [ANSWERED] + [INTERRUPTED] * 5)
        self.assertTrue(all(r.steps[-1] == "the server stopped during the call"
                            for r in rows if r.outcome == INTERRUPTED))
        # Nothing twice after a third start.
        third = CallLog(self.database, self.journal(), clock=self.clock)
        self.successResultOf(third.start())
        self.successResultOf(third.flush())
        self.assertEqual(len(self.rows()), 6)
        third.begin(call(20, ended=None))
        self.assertEqual(max(r.id for r in self.rows()), 7)

    def test_a_kill_after_the_start_was_written(self):
        log = CallLog(self.database, self.journal(), clock=self.clock)
        self.successResultOf(log.start())
        log.begin(call(1, ended=None, outcome=None))
        log.writer._compact()  # the journal let go of the committed start
        again = CallLog(self.database, self.journal(), clock=self.clock)
        self.successResultOf(again.start())
        (row,) = self.rows()
        self.assertEqual(row.outcome, INTERRUPTED)

    def test_stop_records_calls_in_progress(self):
        # Before: calls in progress at SIGTERM had no record (0 of 5).
        log = CallLog(self.database, self.journal(), clock=self.clock)
        self.successResultOf(log.start())
        for n in range(5):
            log.begin(call(n, ended=None, outcome=None))
        self.successResultOf(log.stop())
        rows = self.rows()
        self.assertEqual([r.outcome for r in rows], [INTERRUPTED] * 5)
        self.assertTrue(all(r.ended is not None for r in rows))

    def test_steps_of_a_damaged_path(self):
        record = CallRecord(path="not json")
        self.assertEqual(record.steps, ["not json"])
        self.assertEqual(CallRecord(path=json.dumps(["a"])).steps, ["a"])


class FakeSessionWithMark(FakeSession):
    """A session for a whole write: the rows, and the journal's mark."""

    def get(self, *_):
        return None

    def add(self, _):
        pass


class GatheredWriteTests(SynchronousTestCase):
    def test_records_gather_for_the_delay_then_go_in_one_transaction(self):
        from twisted.internet import task
        slow = SlowDatabase()
        clock = task.Clock()
        log = slow.started(CallLog(slow, delay=0.2, clock=clock))
        for n in range(5):
            log.record(Call(started=datetime(2026, 11, 23, 8, 0, n, tzinfo=timezone.utc),
                            caller=f"+86591876500{n:02d}"))
        self.assertEqual(slow.pending, [])
        clock.advance(0.2)
        self.assertEqual(len(slow.pending), 1)  # one write for all five

    def test_flush_writes_at_once(self):
        from twisted.internet import task
        slow = SlowDatabase()
        clock = task.Clock()
        log = slow.started(CallLog(slow, delay=5, clock=clock))
        log.record(Call(started=datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc), caller="x"))
        d = log.flush()
        self.assertEqual(len(slow.pending), 1)
        self.assertNoResult(d)
