"""The alarm recorder: first row awaited, timeline queued in order, never dropped."""

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

    def test_insert_retried_then_fails(self):
        self.sync.fail_next = 2
        d = self.recorder.open_alarm(at=0, caller_raw="1", caller_number=None,
                                     household_id=None, address="")
        self.clock.advance(0.5)
        self.clock.advance(0.5)
        self.assertTrue(self.successResultOf(d))
        self.sync.fail_next = 3
        d = self.recorder.open_alarm(at=0, caller_raw="1", caller_number=None,
                                     household_id=None, address="")
        self.clock.advance(0.5)
        self.clock.advance(0.5)
        self.failureResultOf(d, RuntimeError)
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
