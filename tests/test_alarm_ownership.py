"""
Two switchboard instances on one database, each holding the alarms it
raised under a lease (switchboard.leases, alarm.ownership): what the other
does when one dies, hangs, or starts. A task.Clock shared by both, a fake
AMI each, a real database (SQLite, then PostgreSQL in the second pass).
"""

import pytest
from sqlalchemy import select, update
from twisted.internet import defer
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from alarm.adoption import TimelineEntry, standing
from alarm.coordinator import AlarmCoordinator
from alarm.models import Alarm
from alarm.ownership import AlarmOwnership
from alarm.recorder import AlarmRecorder
from switchboard.journal import Journal
from switchboard.leases import CHECK_DEADLINE

from tests import databases
from tests.test_alarm_support import (
    DIALER,
    DUTY,
    SECURITY,
    FakeAMI,
    SyncDatabase,
    add_household,
    alarm_row,
    config,
    database,
    household,
    number,
    timeline,
)

pytestmark = pytest.mark.database


class SharedDatabase(SyncDatabase):
    """A L{SyncDatabase} that says what it is: on PostgreSQL, alarm ids come from its sequence."""

    @property
    def engine(self):
        return self.db.engine


class FakeIndex:
    """The households the ownership reads for an alarm it takes over."""

    def __init__(self, snapshots):
        self.snapshots = {s.id: s for s in snapshots}

    def households(self, ids):
        return defer.succeed({i: self.snapshots[i] for i in ids if i in self.snapshots})


class FakeNameLock:
    """The lock on an instance's name: held unless another live process has it."""

    def __init__(self, free=True):
        self.free = free
        self.released = False

    def acquire(self):
        return defer.succeed(self.free)

    def release(self):
        self.released = True
        return defer.succeed(None)

    def close(self):
        pass


class Instance:
    """One switchboard's alarm side: recorder, coordinator, fake AMI, leases."""

    def __init__(self, name, db, clock, folder, alarm_config, index, *, leading,
                 name_lock=None):
        self.name = name
        self.ami = FakeAMI()
        self.recorder = AlarmRecorder(db, Journal(folder, "alarm"), clock=clock, owner=name)
        self.recorder.start()
        self.coordinator = AlarmCoordinator(DIALER, self.ami, self.recorder, alarm_config, clock,
                                            hotline_number="12345", kick=self.ami.kick,
                                            room_size=lambda room: defer.succeed(1))
        self.leading = leading
        self.ownership = AlarmOwnership(db, self.coordinator, self.recorder, index, name, clock,
                                        leading=lambda: self.leading, name_lock=name_lock)

    def start(self, test):
        """As the alarm feature starts: its own open alarms taken up, then the leases kept."""
        found = test.successResultOf(self.recorder.open_alarms())
        mine = test.successResultOf(self.ownership.claim(found))
        recovered = test.successResultOf(self.coordinator.recover_open_alarms(rows=mine))
        self.ownership.start()
        return recovered

    def die(self):
        """kill -9: nothing more happens here (its timers never fire, it renews nothing)."""
        self.ownership.keeper._loop.stop()
        self.coordinator.stop()

    def calls_to(self, target):
        return self.ami.to(target)


class Case(SynchronousTestCase):
    def setUp(self):
        import tempfile
        self.tmp = tempfile.mkdtemp()
        self.clock = task_clock()
        self.db = database(self.tmp)
        self.sync = SharedDatabase(self.db)
        add_household(self.db, 1)
        self.snapshot = household(1, 10)
        self.index = FakeIndex([self.snapshot])
        self.config = config()
        self.a = self.instance("agi://10.0.0.5:4573", leading=False)
        self.b = self.instance("agi://10.0.0.6:4573", leading=True)
        self.a.start(self)
        self.b.start(self)

    def instance(self, name, *, leading, name_lock=None):
        import tempfile
        return Instance(name, self.sync, self.clock, tempfile.mkdtemp(dir=self.tmp), self.config,
                        self.index, leading=leading, name_lock=name_lock)

    def advance(self, seconds, step=0.5):
        while seconds > 0:
            self.clock.advance(min(step, seconds))
            seconds -= step

    def raise_on_a(self):
        alarm = self.successResultOf(self.a.coordinator.raise_alarm("87650001", self.snapshot))
        for call in self.a.ami.calls:
            self.b.ami.channels[call.channel_id] = "Ringing"
        return alarm

    def kinds(self, alarm_id):
        return [k for k, _, _ in timeline(self.db, alarm_id)]


def task_clock():
    from twisted.internet import task
    clock = task.Clock()
    clock.advance(1_700_000_000)
    return clock


class LeaseTests(Case):
    def test_the_alarm_is_on_record_as_its_raisers_and_its_lease_is_renewed(self):
        alarm = self.raise_on_a()
        row = alarm_row(self.db, alarm.id)
        self.assertEqual(row.owner, self.a.name)
        first = row.lease_until
        self.advance(20)
        row = alarm_row(self.db, alarm.id)
        self.assertEqual(row.owner, self.a.name, "a live owner keeps its alarm")
        self.assertGreater(row.lease_until, first)
        self.assertNotIn("adopted", self.kinds(alarm.id))
        self.assertEqual(self.b.ami.calls, [])

    def test_an_instance_that_starts_leaves_another_live_instances_alarms_alone(self):
        alarm = self.raise_on_a()
        c = self.instance("agi://10.0.0.7:4573", leading=False)
        self.assertEqual(c.start(self), [])
        self.assertEqual(c.ami.calls, [])
        self.assertEqual(alarm_row(self.db, alarm.id).owner, self.a.name)

    def test_a_restarted_instance_takes_its_own_alarms_back_at_once(self):
        alarm = self.raise_on_a()
        self.a.die()
        again = self.instance(self.a.name, leading=False)
        recovered = again.start(self)
        self.assertEqual([r.id for r in recovered], [alarm.id])
        self.assertEqual([c.channel for c in again.ami.calls], [DIALER.dial_string(DUTY)])
        self.assertEqual(self.b.ami.calls, [])

    def test_a_process_sharing_a_live_instances_name_leaves_its_alarms_to_it(self):
        # Two processes given the same name (agi.advertise copied between
        # hosts): the second to start must not take the first's alarms.
        alarm = self.raise_on_a()
        twin = self.instance(self.a.name, leading=False, name_lock=FakeNameLock(free=False))
        self.assertEqual(twin.start(self), [])
        self.assertEqual(twin.ami.calls, [])
        self.advance(20)
        self.assertIsNone(twin.coordinator.alarm(alarm.id))
        self.assertIsNotNone(self.a.coordinator.alarm(alarm.id))

    def test_a_row_under_this_name_that_nobody_here_works_on_is_taken_over(self):
        # Its holder, a process under the same name, died: the twin alive
        # does not keep its lease running (it renews only what it works on).
        alarm = self.raise_on_a()
        twin = self.instance(self.a.name, leading=False, name_lock=FakeNameLock(free=False))
        twin.start(self)
        self.a.die()
        self.advance(7)
        self.assertIsNotNone(self.b.coordinator.alarm(alarm.id), "taken over by the leader")
        self.assertEqual(alarm_row(self.db, alarm.id).owner, self.b.name)

    def test_with_its_name_free_a_restart_takes_its_alarms_at_once_and_lets_the_name_go(self):
        alarm = self.raise_on_a()
        self.a.die()
        lock = FakeNameLock()
        again = self.instance(self.a.name, leading=False, name_lock=lock)
        self.assertEqual([r.id for r in again.start(self)], [alarm.id])
        self.successResultOf(again.ownership.stop())
        self.assertTrue(lock.released)

    def test_alarm_ids_of_two_instances_never_collide(self):
        # Each takes its ids from the sequence, a block at a time. (On
        # SQLite one instance serves: this runs in the PostgreSQL pass.)
        if not databases.ON_POSTGRES:
            raise SkipTest("one instance per SQLite database; this runs in the PostgreSQL pass")
        first = self.raise_on_a()
        other = self.successResultOf(self.b.coordinator.raise_alarm(
            "87650030", household(1, 2, own=30)))
        self.assertNotEqual(first.id, other.id)
        self.assertNotEqual(first.room, other.room)
        self.assertEqual({alarm_row(self.db, i).owner for i in (first.id, other.id)},
                         {self.a.name, self.b.name})


class TakeOverTests(Case):
    def test_a_dead_instances_ringing_alarm_is_followed_not_rung_again(self):
        alarm = self.raise_on_a()
        self.advance(3)
        self.a.die()
        self.advance(4)
        self.assertIsNone(self.b.coordinator.alarm(alarm.id), "the lease still runs")
        self.advance(3)
        held = self.b.coordinator.alarm(alarm.id)
        self.assertIsNotNone(held, "taken over once the lease ran out")
        self.assertEqual(alarm_row(self.db, alarm.id).owner, self.b.name)
        self.assertIn("adopted", self.kinds(alarm.id))
        self.assertEqual(self.b.ami.calls, [], "no neighbour is rung twice")
        self.assertEqual(len(held.live_legs()), 10)
        self.assertEqual(sorted(self.b.ami.state_asked),
                         sorted(c.channel_id for c in self.a.ami.calls))

    def test_escalation_fires_on_time_after_the_hand_over(self):
        alarm = self.raise_on_a()
        opened = self.clock.seconds()
        self.a.die()
        self.advance(59.5 - (self.clock.seconds() - opened))
        self.assertEqual(self.b.ami.calls, [])
        self.advance(1)
        self.assertEqual([c.channel for c in self.b.ami.calls], [DIALER.dial_string(DUTY)],
                         "the first stage at 60 s from the opening, as it was due")
        self.advance(60)
        self.assertEqual([c.channel for c in self.b.ami.calls[1:]],
                         [DIALER.dial_string(SECURITY)])

    def test_a_neighbour_answering_after_the_hand_over_is_put_through(self):
        alarm = self.raise_on_a()
        leg_id = self.a.ami.to(number(5))[0].channel_id
        self.a.die()
        self.advance(7)
        leg = self.successResultOf(self.b.coordinator.answered(alarm.id, leg_id))
        self.assertEqual(leg.target, number(5))
        self.assertTrue(self.successResultOf(self.b.coordinator.confirm(alarm.id, leg_id)))
        self.assertIsNotNone(alarm_row(self.db, alarm.id).confirmed_at)
        self.advance(120)
        self.assertEqual(self.b.ami.calls, [], "confirmed: nobody else is rung")

    def test_legs_gone_meanwhile_end_and_the_next_stage_rings_at_once(self):
        alarm = self.raise_on_a()
        self.a.die()
        self.b.ami.channels.clear()  # every phone stopped ringing while nobody held the alarm
        self.advance(7)
        held = self.b.coordinator.alarm(alarm.id)
        self.assertEqual(held.live_legs()[0].target if held.live_legs() else None, DUTY)
        self.assertEqual([c.channel for c in self.b.ami.calls], [DIALER.dial_string(DUTY)])
        kinds = self.kinds(alarm.id)
        self.assertEqual(kinds.count("no-answer"), 10)

    def test_a_followed_leg_hanging_up_is_noted(self):
        alarm = self.raise_on_a()
        leg_id = self.a.ami.to(number(3))[0].channel_id
        self.a.die()
        self.advance(7)
        self.b.coordinator.note_hangup(leg_id)
        self.assertEqual(self.b.coordinator.alarm(alarm.id).legs[leg_id].state, "no-answer")

    def test_a_confirmed_alarm_taken_over_rings_nobody_and_closes_when_its_room_empties(self):
        alarm = self.raise_on_a()
        leg_id = self.a.ami.to(number(2))[0].channel_id
        self.successResultOf(self.a.coordinator.answered(alarm.id, leg_id))
        self.successResultOf(self.a.coordinator.confirm(alarm.id, leg_id))
        self.a.die()
        self.advance(7)
        held = self.b.coordinator.alarm(alarm.id)
        self.assertTrue(held.confirmed)
        self.advance(200)
        self.assertEqual(self.b.ami.calls, [])

    def test_many_alarms_are_taken_over_a_batch_a_round(self):
        # The leader's own renewals are never held back behind a long take-over.
        alarms = [self.successResultOf(self.a.coordinator.raise_alarm(
            f"876500{n}", household(n, 1, own=n))) for n in (40, 50, 60)]
        self.b.ownership.keeper.batch = 2
        self.a.die()
        taken = []
        for _ in range(16):
            self.advance(0.5)
            taken.append(sum(self.b.coordinator.alarm(a.id) is not None for a in alarms))
        self.assertEqual(sorted(set(taken)), [0, 2, 3])

    def test_only_the_leader_takes_over(self):
        self.b.leading = False
        alarm = self.raise_on_a()
        self.a.die()
        self.advance(30)
        self.assertIsNone(self.b.coordinator.alarm(alarm.id))
        self.b.leading = True
        self.advance(1.5)
        self.assertIsNotNone(self.b.coordinator.alarm(alarm.id))

    def test_an_instance_that_wakes_after_its_alarm_was_taken_lets_it_go(self):
        alarm = self.raise_on_a()
        self.a.ownership.keeper._loop.stop()   # hung: renews nothing for a while
        self.advance(7)
        self.assertIsNotNone(self.b.coordinator.alarm(alarm.id))
        self.a.ownership.keeper.round()         # wakes
        self.assertIsNone(self.a.coordinator.alarm(alarm.id))
        before = len(self.a.ami.calls)
        self.advance(200)
        self.assertEqual(len(self.a.ami.calls), before, "the old owner rings nobody more")
        self.assertEqual(self.a.ami.hangups, [], "nor hangs up the calls the other follows")


    def test_a_holder_stalled_past_its_lease_rings_nobody_when_it_wakes(self):
        # Its escalation timer, overdue when the process runs again, waits
        # for a lease round, which finds the alarm taken over: nothing rings.
        alarm = self.raise_on_a()
        self.a.ownership.keeper._loop.stop()   # stalled: no round runs
        self.advance(61)
        self.assertEqual(len(self.b.ami.to(DUTY)), 1, "the leader rang the duty stage on time")
        self.assertEqual(self.a.ami.to(DUTY), [], "the woken holder rang it too")
        self.assertIsNone(self.a.coordinator.alarm(alarm.id))

    def test_a_holder_stalled_but_still_holding_acts_once_it_has_checked(self):
        # Nobody took it over (no leader): after the check it rings as due.
        self.b.leading = False
        alarm = self.raise_on_a()
        self.a.ownership.keeper._loop.stop()
        self.advance(61)
        self.assertEqual(len(self.a.ami.to(DUTY)), 1)
        self.assertIsNotNone(self.a.coordinator.alarm(alarm.id))
        self.assertEqual(alarm_row(self.db, alarm.id).owner, self.a.name)

    def stalled_then_the_database_hangs(self, *, round_first):
        """
        A stalled past a lease (a paused VM); when it runs again the database
        hangs instead of failing (a partition: TCP retries for minutes), so
        the lease round that would say what A still holds never answers.
        With C{round_first}, the renewal loop's overdue round starts before
        the #9 comes, else the #9's call starts it. Returns the #9's raising.
        """
        self.b.leading = False
        keeper = self.a.ownership.keeper
        keeper._loop.stop()                     # stalled: no round runs
        self.advance(6)
        self.sync.hold = True                   # the database answers nothing
        keeper._loop.start(1.0, now=round_first)   # runs again
        return self.a.coordinator.raise_alarm("87650001", self.snapshot)

    def test_the_round_started_by_the_loop_does_not_keep_a_new_alarm_silent_either(self):
        raising = self.stalled_then_the_database_hangs(round_first=True)
        self.assertEqual(self.a.ami.calls, [], "waits for the round at first")
        self.clock.advance(CHECK_DEADLINE)
        self.assertEqual(len(self.a.ami.calls), 10)
        self.successResultOf(raising)

    def test_a_stalled_holder_whose_database_hangs_does_not_keep_a_new_alarm_silent(self):
        # A new #9's neighbours ring after CHECK_DEADLINE: better twice than never.
        raising = self.stalled_then_the_database_hangs(round_first=False)
        self.assertEqual(self.a.ami.calls, [], "waits for the round at first")
        self.clock.advance(CHECK_DEADLINE - 0.01)
        self.assertEqual(self.a.ami.calls, [])
        self.clock.advance(0.01)
        self.assertEqual(len(self.a.ami.calls), 10)
        alarm = self.successResultOf(raising)
        # From then on nothing waits for the hung round: the duty stage on time.
        self.advance(60)
        self.assertEqual(len(self.a.ami.to(DUTY)), 1)
        # The database answers again: the round ends, checks go back to normal.
        self.sync.hold = False
        while self.sync.held:
            self.sync.release()
        self.advance(2)
        self.assertIsNone(self.a.ownership.keeper.checked())
        self.assertIsNotNone(self.a.coordinator.alarm(alarm.id))


class StandingTests(SynchronousTestCase):
    def test_legs_stages_and_confirmation_are_read_from_the_timeline(self):
        names = ["duty", "duty night", "outside"]
        found = standing([
            TimelineEntry("ringing", "l1", "+1", "neighbours"),
            TimelineEntry("ringing", "l2", "+2", "neighbours"),
            TimelineEntry("ringing", "l3", "+3", "neighbours, attempt 2"),
            TimelineEntry("busy", "l2", "+2"),
            TimelineEntry("answered", "l3", "+3"),
            TimelineEntry("escalated", None, None, "duty night: nobody confirmed within 60 s"),
            TimelineEntry("silent", None, None, "duty rung by the safety net: nothing rang"),
        ], names)
        self.assertEqual(found.ringing, {"l1": ("neighbours", "+1")})
        self.assertEqual(found.answered, {"l3": ("neighbours", "+3")})
        self.assertEqual(found.stages_rung, {0, 1})
        self.assertFalse(found.confirmed)
        self.assertFalse(found.at_once)

    def test_a_confirmed_leg_ends_and_confirms(self):
        found = standing([TimelineEntry("no-neighbours", detail="caller not registered"),
                          TimelineEntry("ringing", "l1", "+1", "duty"),
                          TimelineEntry("confirmed", "l1", "+1")], ["duty"])
        self.assertEqual((found.ringing, found.confirmed, found.at_once), ({}, True, True))


class RenewalUnderWritesTests(Case):
    def test_a_row_being_written_is_skipped_not_waited_for(self):
        # The instance's write-behind holds a row lock on its alarm (a status
        # change in flight): the renewal neither waits for it (which, in the
        # other order to the writer's, deadlocked under a burst and failed the
        # whole renewal) nor fails; that row is renewed next round.
        if not databases.ON_POSTGRES:
            raise SkipTest("row locks are PostgreSQL's; this runs in its test pass")
        alarm = self.raise_on_a()
        self.advance(1)
        before = alarm_row(self.db, alarm.id).lease_until
        leases = self.a.ownership.leases
        self.a.ownership.keeper._loop.stop()   # only the renewals below
        self.clock.advance(2)
        writer = self.db.engine.connect()
        try:
            writer.execute(update(Alarm.__table__).where(Alarm.__table__.c.id == alarm.id)
                           .values(outcome="being written"))          # locked, not committed
            self.assertEqual(self.successResultOf(leases.renew([alarm.id])), [])
        finally:
            writer.rollback()
            writer.close()
        self.assertEqual(alarm_row(self.db, alarm.id).lease_until, before)
        self.assertEqual(self.successResultOf(leases.renew([alarm.id])), [])
        self.assertGreater(alarm_row(self.db, alarm.id).lease_until, before)
