"""
Call records: written through the database's C{run} in batches, never
raising into the caller's path, bounded when the database falls behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import datetime, timedelta, timezone

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from switchboard.calllog import ANSWERED, FAILED, VOICEMAIL, Call, CallLog, CallRecord, utc
from switchboard.storage import Base
from tests.test_hotline_support import SyncDatabase

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

    def execute(self, statement, rows):
        self.rows.extend(rows)


class SlowDatabase:
    """A database whose C{run} waits until the test fires it."""

    def __init__(self):
        self.pending = []

    def run(self, work):
        d = defer.Deferred()
        self.pending.append((work, d))
        return d


class CallLogTests(SynchronousTestCase):
    def setUp(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        self.database = SyncDatabase(f"sqlite:///{folder}/calls.db")
        Base.metadata.create_all(self.database.engine, tables=[CallRecord.__table__])
        self.addCleanup(self.database.close)

    def rows(self):
        with self.database.session() as session:
            return CallLog.recent(session, 100)

    def test_record_is_written(self):
        log = CallLog(self.database)
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
        log = CallLog(self.database)
        log.record(call(started=datetime(2026, 10, 8, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))))
        (row,) = self.rows()
        self.assertEqual(utc(row.started), T0)

    def test_missing_outcome_is_failed(self):
        log = CallLog(self.database)
        log.record(call(outcome=None, answered=None, caller=None))
        (row,) = self.rows()
        self.assertEqual((row.outcome, row.caller, row.answered), (FAILED, None, None))

    def test_recent_newest_first_and_limited(self):
        log = CallLog(self.database)
        for n in range(5):
            log.record(call(n, outcome=VOICEMAIL if n % 2 else ANSWERED))
        with self.database.session() as session:
            rows = CallLog.recent(session, 3)
        self.assertEqual([r.uniqueid for r in rows],
                         ["1790000000.4", "1790000000.3", "1790000000.2"])

    def test_record_returns_before_the_database(self):
        slow = SlowDatabase()
        log = CallLog(slow, batch=2)
        for n in range(5):
            self.assertIsNone(log.record(call(n)))
        self.assertEqual(len(slow.pending), 1)  # one write at a time
        flushed = log.flush()
        self.assertNoResult(flushed)
        sizes = []
        while slow.pending:
            work, d = slow.pending.pop(0)
            added = []
            sizes.append(work(FakeSession(added)))
            d.callback(sizes[-1])
        self.assertEqual(sizes, [1, 2, 2])  # the first alone, then batches of what queued
        self.successResultOf(flushed)
        self.assertEqual(log.written, 5)

    def test_database_failure_is_logged_not_raised(self):
        class Broken:
            def run(self, work):
                return defer.fail(RuntimeError("disk full"))

        log = CallLog(Broken())
        log.record(call())
        log.record(call(1))
        self.successResultOf(log.flush())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        self.assertEqual(log.written, 0)

    def test_database_raising_at_once_is_logged_not_raised(self):
        class Broken:
            def run(self, work):
                raise RuntimeError("no pool")

        log = CallLog(Broken())
        log.record(call())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_bounded_when_the_database_falls_behind(self):
        slow = SlowDatabase()
        log = CallLog(slow, max_pending=3, batch=10)
        for n in range(8):
            log.record(call(n))
        # The first is being written; of the seven queued after it, the three
        # newest are kept.
        self.assertEqual(log.dropped, 4)
        work, d = slow.pending.pop(0)
        d.callback(1)
        written = []
        work, d = slow.pending.pop(0)
        work(FakeSession(written))
        self.assertEqual([r["uniqueid"] for r in written],
                         ["1790000000.5", "1790000000.6", "1790000000.7"])

    def test_steps_of_a_damaged_path(self):
        record = CallRecord(path="not json")
        self.assertEqual(record.steps, ["not json"])
        self.assertEqual(CallRecord(path=json.dumps(["a"])).steps, ["a"])


class GatheredWriteTests(SynchronousTestCase):
    def test_records_gather_for_the_delay_then_go_in_one_transaction(self):
        from twisted.internet import task
        slow = SlowDatabase()
        clock = task.Clock()
        log = CallLog(slow, delay=0.2, clock=clock)
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
        log = CallLog(slow, delay=5, clock=clock)
        log.record(Call(started=datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc), caller="x"))
        d = log.flush()
        self.assertEqual(len(slow.pending), 1)
        self.assertNoResult(d)
