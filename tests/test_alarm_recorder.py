"""The alarm recorder: its opening journaled, its id at once, the rest queued in order, never dropped."""

import tempfile

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from alarm.recorder import AlarmRecorder

from tests.test_alarm_support import SyncDatabase, alarm_row, database, timeline


class RecorderTests(SynchronousTestCase):
    def setUp(self):
        self.db = database(tempfile.mkdtemp())
        self.sync = SyncDatabase(self.db)
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.recorder = AlarmRecorder(self.sync, clock=self.clock, batch=3)

    def open(self, caller="87650001"):
        return self.successResultOf(self.recorder.open_alarm(
            at=self.clock.seconds(), caller_raw=caller, caller_number="+8659187650001",
            household_id=None, address="building 3", detail="#9"))

    def test_open_alarm(self):
        alarm_id = self.open()
        row = alarm_row(self.db, alarm_id)
        self.assertEqual((row.status, row.room, row.caller_raw, row.address),
                         ("open", f"alarm-{alarm_id}", "87650001", "building 3"))
        self.assertEqual(row.opened_at.isoformat(), "2023-11-14T22:13:20")
        self.assertEqual(timeline(self.db, alarm_id), [("opened", "87650001", "#9")])

    def test_timeline_in_order_in_batches(self):
        alarm_id = self.open()
        self.sync.hold = True
        for i in range(7):
            self.recorder.event(alarm_id, "ringing", at=self.clock.seconds() + i,
                                number=f"n{i}")
        self.recorder.update(alarm_id, status="confirmed", confirmed_at=self.clock.seconds() + 9)
        flushed = self.recorder.flush()
        self.assertNoResult(flushed)
        self.assertEqual(self.recorder.pending(), 8)
        self.sync.hold = False
        writes = 0
        while self.sync.held:
            self.sync.release()
            writes += 1
        self.successResultOf(flushed)
        self.assertEqual(writes, 1)  # the first write was held; the rest followed at once
        self.assertEqual([n for _, n, _ in timeline(self.db, alarm_id)][1:],
                         [f"n{i}" for i in range(7)])
        self.assertEqual(alarm_row(self.db, alarm_id).status, "confirmed")
        # The insert; its room and its opened event, each alone (nothing
        # else was queued yet); the first event alone; then what queued up
        # meanwhile, in batches of 3, 3 and 1.
        self.assertEqual(self.sync.calls, 1 + 2 + 1 + 3)

    def test_failed_writes_retried_never_dropped(self):
        alarm_id = self.open()
        self.sync.fail_next = 4
        for i in range(5):
            self.recorder.event(alarm_id, "ringing", at=self.clock.seconds(), number=f"n{i}")
        self.assertEqual(self.recorder.pending(), 5)
        for delay in (0.5, 1.0, 2.0, 4.0):
            self.clock.advance(delay)
        self.assertEqual(self.recorder.pending(), 0)
        self.assertEqual([n for _, n, _ in timeline(self.db, alarm_id)][1:],
                         [f"n{i}" for i in range(5)])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 4)

    def test_backoff_capped(self):
        alarm_id = self.open()
        self.sync.fail_next = 50
        self.recorder.event(alarm_id, "ringing", at=self.clock.seconds())
        for _ in range(60):
            self.clock.advance(30)
        self.assertEqual(self.recorder.pending(), 0)
        self.flushLoggedErrors(RuntimeError)

    def test_stop_writes_what_waits(self):
        alarm_id = self.open()
        self.sync.fail_next = 1
        self.recorder.event(alarm_id, "closed", at=self.clock.seconds())
        self.assertEqual(self.recorder.pending(), 1)
        self.successResultOf(self.recorder.stop())
        self.assertEqual(timeline(self.db, alarm_id)[-1][0], "closed")
        self.flushLoggedErrors(RuntimeError)

    def test_an_alarm_is_given_its_id_with_the_database_down(self):
        self.sync.fail_next = 3
        first = self.open()
        second = self.open()
        self.assertEqual(second, first + 1)
        self.assertIsNone(alarm_row(self.db, first))
        self.clock.advance(0.5)
        self.clock.advance(1.0)
        self.clock.advance(2.0)
        self.assertEqual(alarm_row(self.db, second).status, "open")
        self.flushLoggedErrors(RuntimeError)

    def test_open_alarms_and_closed_among(self):
        first, second, third = self.open(), self.open(), self.open()
        self.recorder.update(second, status="cancelled", closed_at=self.clock.seconds(),
                             outcome="cancelled by caller")
        self.recorder.update(third, status="confirmed", confirmed_at=self.clock.seconds())
        rows = self.successResultOf(self.recorder.open_alarms())
        self.assertEqual([(r.id, r.status) for r in rows], [(first, "open"), (third, "confirmed")])
        self.assertEqual(rows[0].room, f"alarm-{first}")
        self.assertEqual(self.successResultOf(self.recorder.closed_among([first, second])),
                         [(second, "cancelled by caller")])
        self.assertEqual(self.successResultOf(self.recorder.closed_among([])), [])


class JournalTests(SynchronousTestCase):
    """What the journal keeps while the database cannot take it, across restarts."""

    def setUp(self):
        import os
        from switchboard.journal import Journal
        self.Journal = Journal
        self.db = database(tempfile.mkdtemp())
        self.sync = SyncDatabase(self.db)
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.path = os.path.join(tempfile.mkdtemp(), "state", "alarms.journal")

    def recorder(self, **kw):
        recorder = AlarmRecorder(self.sync, clock=self.clock, journal=self.Journal(self.path),
                                 **kw)
        recorder.start()
        return recorder

    def test_killed_with_the_database_down_then_written_after_the_restart(self):
        recorder = self.recorder()
        self.sync.fail_next = 1000
        alarm_id = self.successResultOf(recorder.open_alarm(
            at=self.clock.seconds(), caller_raw="87650001", caller_number="+8659187650001",
            household_id=None, address="building 3", detail="#9"))
        recorder.event(alarm_id, "ringing", at=self.clock.seconds(), number="+8659187650002")
        recorder.update(alarm_id, status="confirmed", confirmed_at=self.clock.seconds())
        # kill -9: nothing flushed, nothing stopped. The database is back.
        self.sync.fail_next = 0
        again = self.recorder()
        rows = self.successResultOf(again.open_alarms())
        self.assertEqual([(r.id, r.status) for r in rows], [(alarm_id, "confirmed")])
        self.successResultOf(again.flush())
        self.assertEqual(alarm_row(self.db, alarm_id).status, "confirmed")
        self.assertEqual([k for k, _, _ in timeline(self.db, alarm_id)], ["opened", "ringing"])
        self.flushLoggedErrors(RuntimeError)

    def test_open_alarms_when_the_database_cannot_be_read(self):
        recorder = self.recorder()
        self.sync.fail_next = 1000
        alarm_id = self.successResultOf(recorder.open_alarm(
            at=self.clock.seconds(), caller_raw="", caller_number=None, household_id=None,
            address=""))
        rows = self.successResultOf(self.recorder().open_alarms())
        self.assertEqual([r.id for r in rows], [alarm_id])
        self.flushLoggedErrors(RuntimeError)

    def test_a_torn_last_line_is_skipped(self):
        recorder = self.recorder()
        self.sync.fail_next = 1000
        self.successResultOf(recorder.open_alarm(
            at=self.clock.seconds(), caller_raw="1", caller_number=None, household_id=None,
            address=""))
        with open(self.path, "ab") as f:
            f.write(b'1234abcd ["event", {"alarm_id": 1, "kin')   # the crash, mid-line
        journal = self.Journal(self.path)
        self.assertEqual([r[0] for r in journal.records], ["open", "event"])
        self.flushLoggedErrors(RuntimeError)

    def test_compacted_once_all_is_written_ids_go_on(self):
        import os
        recorder = self.recorder(compact_every=5)
        for _ in range(5):
            last = self.successResultOf(recorder.open_alarm(
                at=self.clock.seconds(), caller_raw="1", caller_number=None,
                household_id=None, address=""))
        self.assertEqual(self.Journal(self.path).records, [["ids", last]])
        self.assertLess(os.path.getsize(self.path), 30)
        # The database lost meanwhile (restored from an old backup): the ids go on.
        self.db.engine.dispose()
        self.assertEqual(self.recorder().__class__, AlarmRecorder)

    def test_private_files(self):
        import os
        import stat
        old = os.umask(0o022)
        try:
            self.recorder()
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(self.path)).st_mode), 0o700)

    def test_an_id_taken_meanwhile_is_renamed_not_lost(self):
        recorder = AlarmRecorder(self.sync, clock=self.clock, journal=self.Journal(self.path))
        recorder._last_id = 0          # as if the database could not be asked
        from alarm.models import Alarm, utc
        with self.db.sessions.begin() as session:
            session.add(Alarm(id=1, caller_raw="x", status="closed", opened_at=utc(0),
                              closed_at=utc(1)))
        alarm_id = self.successResultOf(recorder.open_alarm(
            at=self.clock.seconds(), caller_raw="87650001", caller_number=None,
            household_id=None, address="", detail="#9"))
        self.assertEqual(alarm_id, 1)
        self.assertEqual(alarm_row(self.db, 2).caller_raw, "87650001")
        self.assertEqual(timeline(self.db, 2), [("opened", "87650001", "#9")])
        self.flushLoggedErrors()
