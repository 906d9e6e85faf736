"""The alarm engine with a task.Clock, a fake AMI and a real SQLite database."""

import pytest
from sqlalchemy import select
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from alarm.models import Alarm
from switchboard.ami import AMIConnectionLost, AMINotConnected, OriginateResult

from tests.test_alarm_support import (
    DUTY,
    Rig,
    add_household,
    alarm_row,
    household,
    number,
    timeline,
)

pytestmark = pytest.mark.database


class Case(SynchronousTestCase):
    config = {}

    def setUp(self):
        import tempfile
        self.tmp = tempfile.mkdtemp()
        self.rig = Rig(self.tmp, **self.config)
        self.ami = self.rig.ami
        self.coordinator = self.rig.coordinator
        add_household(self.rig.db, 1)
        add_household(self.rig.db, 2)

    def raise_(self, snapshot=None, caller="87650001"):
        return self.successResultOf(self.coordinator.raise_alarm(caller, snapshot))

    def kinds(self, alarm):
        return [k for k, _, _ in timeline(self.rig.db, alarm.id)]

    def neighbour_calls(self):
        return [c for c in self.ami.calls if c.variables and
                c.channel.startswith("PJSIP/8765") and c.channel[-3:] not in ("190", "191", "199")]


class InterfaceTests(Case):
    def test_the_fake_ami_places_calls_as_the_real_one_and_legs_have_an_owner(self):
        from zope.interface.verify import verifyObject
        from switchboard.ringgroup import ICallPlacer, IRingListener
        self.assertTrue(verifyObject(ICallPlacer, self.ami))
        self.assertTrue(verifyObject(IRingListener, self.coordinator.leg_policy))
        alarm = self.raise_(household(1, 2))
        leg = next(iter(alarm.legs.values()))
        self.assertIs(leg.alarm, alarm)
        self.assertEqual((leg.stage, leg.group.name), ("neighbours", f"ALARM {alarm.id}"))
        self.assertTrue(leg.id.startswith(f"swb-{alarm.id}-"))


class RingAllTests(Case):
    def test_alarm_on_record_before_all_ten_ring_at_once(self):
        from switchboard.journal import Journal
        journaled = []
        self.ami.on_originate = lambda call: journaled.append(
            [r for r in Journal(self.rig.journal_folder, "alarm").open() if r.get("op") == "open"])
        self.rig.sync.hold = True    # the database does not answer
        alarm = self.successResultOf(self.coordinator.raise_alarm("87650001",
                                                                  household(1, 10)))
        # All ten legs went out at once, the clock never moved, each after
        # the alarm's opening was on the disk.
        self.assertEqual(len(self.ami.calls), 10)
        self.assertTrue(all(opened and opened[-1]["id"] == alarm.id for opened in journaled))
        self.rig.sync.hold = False

    def test_each_leg_is_answered_by_the_instance_that_holds_its_alarm(self):
        # Two instances share a dialplan listing both; a neighbour's leg must
        # reach the one that raised the alarm, which alone knows it.
        alarm = self.successResultOf(self.coordinator.raise_alarm("87650001", household(1, 2)))
        self.assertNotIn("SWITCHBOARD_AGI", self.ami.calls[0].variables)
        self.coordinator.fastagi = "agi://10.0.0.6:4573"
        self.coordinator.ring_first_stage(alarm, "now")
        self.assertEqual(self.ami.calls[-1].variables["SWITCHBOARD_AGI"], "agi://10.0.0.6:4573")

    def test_all_ten_ring_at_once_while_the_database_hangs(self):
        # The alarm is on record in the journal (fsynced) before any phone
        # rings; the database's row follows when it takes it. Before, the
        # phones waited for the database (16 s with it locked).
        journaled = []
        self.ami.on_originate = lambda call: journaled.append(self.rig.recorder.pending())
        self.rig.sync.hold = True
        d = self.coordinator.raise_alarm("87650001", household(1, 10))
        alarm = self.successResultOf(d)
        self.assertEqual(len(self.ami.calls), 10)
        self.assertTrue(all(n >= 1 for n in journaled))
        self.assertIsNone(alarm_row(self.rig.db, alarm.id))
        self.rig.sync.hold = False
        while self.rig.sync.held:
            self.rig.sync.release()
        self.successResultOf(self.rig.recorder.flush())
        self.assertEqual(alarm_row(self.rig.db, alarm.id).status, "open")
        while self.rig.sync.held:
            self.rig.sync.release()   # the database takes it all, in order
        self.assertEqual([c.channel for c in self.ami.calls],
                         [f"PJSIP/8765{n:04d}" for n in range(2, 12)])
        ids = [c.channel_id for c in self.ami.calls]
        self.assertEqual(len(set(ids)), 10)
        for call in self.ami.calls:
            self.assertEqual(call.kwargs["context"], "switchboard-alarm-responder")
            self.assertEqual(call.kwargs["exten"], "s")
            self.assertEqual(call.kwargs["timeout"], 30.0)
            self.assertEqual(call.kwargs["caller_id"], '"ALARM" <12345>')
            self.assertEqual(call.variables["SWITCHBOARD_ALARM"], str(alarm.id))
            self.assertEqual(call.variables["SWITCHBOARD_LEG"], call.channel_id)
            self.assertEqual(call.variables["SWITCHBOARD_ROOM"], f"alarm-{alarm.id}")
        self.assertEqual(alarm.room, f"alarm-{alarm.id}")
        self.assertEqual(self.kinds(alarm), ["opened"] + ["ringing"] * 10)

    def test_household_with_three_neighbours(self):
        alarm = self.raise_(household(1, 3))
        self.assertEqual(len(self.ami.calls), 3)
        self.assertEqual(len(alarm.legs), 3)
        self.rig.later(59)
        self.assertEqual(len(self.ami.calls), 3)
        self.rig.later(1)
        self.assertEqual([c.channel for c in self.ami.calls[3:]], ["PJSIP/87650190"])

    def test_household_without_neighbours_goes_to_duty_at_once(self):
        alarm = self.raise_(household(1, 0))
        self.assertEqual([c.channel for c in self.ami.calls], ["PJSIP/87650190"])
        self.assertIn("no-neighbours", self.kinds(alarm))
        # Later stages keep their spacing from the first: security 60 s on.
        self.rig.later(59)
        self.assertEqual(len(self.ami.calls), 1)
        self.rig.later(1)
        self.assertEqual(self.ami.calls[-1].channel, "PJSIP/87650191")

    def test_unregistered_caller_goes_to_duty(self):
        alarm = self.raise_(None, caller="0591-87650150")
        self.assertEqual([c.channel for c in self.ami.calls], ["PJSIP/87650190"])
        row = alarm_row(self.rig.db, alarm.id)
        self.assertIsNone(row.household_id)
        self.assertEqual(row.caller_raw, "0591-87650150")
        self.assertEqual(row.caller_number, "+8659187650150")
        self.assertIn("unregistered", timeline(self.rig.db, alarm.id)[0][2])

    def test_no_caller_id_still_raises(self):
        alarm = self.raise_(None, caller="")
        self.assertEqual([c.channel for c in self.ami.calls], ["PJSIP/87650190"])
        # A second anonymous call soon after is held with the first (see
        # UnidentifiedTests): the duty phone is not rung twice.
        other = self.raise_(None, caller="")
        self.assertIs(alarm, other)
        self.assertEqual(len(self.ami.calls), 1)

    def test_database_refusing_does_not_delay_a_ring_and_loses_nothing(self):
        self.rig.sync.fail_next = 8       # locked, read-only, full...
        alarm = self.raise_(household(1))
        self.assertEqual(len(self.ami.calls), 10, "rung at once")
        self.assertIsNone(alarm_row(self.rig.db, alarm.id))
        for _ in range(12):
            self.rig.later(30)            # the database takes writes again
        row = alarm_row(self.rig.db, alarm.id)
        self.assertEqual(row.status, "open")
        self.assertEqual(self.kinds(alarm)[:2], ["opened", "ringing"])
        self.flushLoggedErrors(RuntimeError)

    def test_database_silent_at_start_ids_from_the_journal(self):
        from alarm.recorder import AlarmRecorder
        from switchboard.journal import Journal
        first = self.raise_(household(1))
        self.coordinator.stop()
        self.rig.sync.hold = True         # the database hangs from now on
        recorder = AlarmRecorder(self.rig.sync, Journal(self.rig.journal_folder, "alarm"),
                                 clock=self.rig.clock)
        self.coordinator.recorder = recorder
        d = self.coordinator.raise_alarm("87650020", household(2, 3, own=20))
        self.assertNoResult(d)
        self.rig.later(1.0)               # the recorder asks the database, briefly
        second = self.successResultOf(d)
        self.assertGreater(second.id, first.id, "no id given twice")
        self.assertEqual(len(self.ami.calls), 13)

    def test_journal_unwritable_nothing_rings_from_here(self):
        def full(record, durable=False):
            raise OSError(28, "No space left on device")

        self.rig.recorder.journal.append = full
        d = self.coordinator.raise_alarm("87650001", household(1))
        self.failureResultOf(d, OSError)
        self.flushLoggedErrors(OSError)
        self.assertEqual(self.ami.calls, [], "the dialplan rings natively")
        # The household is not stuck as "open": the next #9 tries again.
        del self.rig.recorder.journal.append
        self.raise_(household(1))
        self.assertEqual(len(self.ami.calls), 10)

    def test_database_refuses_all_ten_ring_and_it_is_written_later(self):
        # Before: three refused inserts and the alarm failed, nothing rang
        # from the server and nothing was ever on record.
        self.rig.sync.fail_next = 5
        d = self.coordinator.raise_alarm("87650001", household(1))
        alarm = self.successResultOf(d)
        self.assertEqual(len(self.ami.calls), 10)
        for delay in (0.5, 1, 2, 4, 8):
            self.rig.later(delay)
        self.successResultOf(self.rig.recorder.flush())
        self.assertEqual(alarm_row(self.rig.db, alarm.id).status, "open")
        self.assertEqual(self.kinds(alarm), ["opened"] + ["ringing"] * 10)


class EscalationTests(Case):
    def test_nobody_confirms_stages_in_order(self):
        alarm = self.raise_(household(1))
        self.rig.later(59.9)
        self.assertEqual(len(self.ami.calls), 10)
        self.rig.later(0.1)
        self.assertEqual(self.ami.calls[-1].channel, "PJSIP/87650190")
        self.assertEqual(self.ami.calls[-1].variables["SWITCHBOARD_ALARM"], str(alarm.id))
        self.rig.later(60)
        self.assertEqual(self.ami.calls[-1].channel, "PJSIP/87650191")
        self.rig.later(60)
        self.assertEqual(self.ami.calls[-1].channel, "PJSIP/87650199")
        self.assertEqual(len(self.ami.calls), 13)
        escalations = [d for k, _, d in timeline(self.rig.db, alarm.id) if k == "escalated"]
        self.assertEqual(escalations, ["duty officer: nobody confirmed within 60 s",
                                       "property security: nobody confirmed within 120 s",
                                       "outside: nobody confirmed within 180 s"])

    def test_confirmation_stops_escalation(self):
        alarm = self.raise_(household(1))
        leg = self.ami.calls[3]
        self.rig.later(12)
        leg.finish("answered", channel="PJSIP/87650005-0001")
        self.successResultOf(self.coordinator.answered(alarm.id, leg.channel_id))
        self.assertTrue(self.successResultOf(self.coordinator.confirm(alarm.id, leg.channel_id)))
        self.rig.later(1000)
        self.assertEqual(len(self.ami.calls), 10)
        row = alarm_row(self.rig.db, alarm.id)
        self.assertEqual(row.status, "confirmed")
        self.assertEqual((row.confirmed_at - row.opened_at).total_seconds(), 12)
        events = timeline(self.rig.db, alarm.id)
        self.assertIn(("answered", number(5), ""), events)
        self.assertIn(("confirmed", number(5), ""), events)

    def test_repeat_first_stage_until_confirmed(self):
        self.rig.coordinator.reconfigure(self.rig.config.__class__(
            **{**self.rig.config.__dict__, "repeat_every": 120.0}))
        alarm = self.raise_(household(1))
        self.rig.later(180)
        self.assertEqual(len(self.ami.calls), 13)
        self.rig.later(120)
        self.assertEqual(self.ami.calls[-1].channel, "PJSIP/87650190")
        self.rig.later(120)
        self.assertEqual(len(self.ami.calls), 15)
        duty = self.ami.calls[-1]
        duty.finish("answered")
        self.successResultOf(self.coordinator.confirm(alarm.id, duty.channel_id))
        self.rig.later(1000)
        self.assertEqual(len(self.ami.calls), 15)

    def test_unanswered_neighbours_retried_once(self):
        alarm = self.raise_(household(1, 3))
        first = list(self.ami.calls)
        self.rig.later(30)
        for call in first:
            call.finish("no-answer")
        self.assertEqual(len(self.ami.calls), 3)
        self.rig.later(10)
        second = self.ami.calls[3:]
        self.assertEqual([c.channel for c in second], [c.channel for c in first])
        self.assertEqual(len({c.channel_id for c in self.ami.calls}), 6)
        self.rig.later(20)  # t=60: the duty officer too
        self.assertEqual(self.ami.calls[-1].channel, "PJSIP/87650190")
        self.rig.later(10)
        for call in second:
            call.finish("no-answer")
        self.rig.later(110)  # t=180
        self.assertEqual([c.channel for c in self.ami.calls[7:]],
                         ["PJSIP/87650191", "PJSIP/87650199"], "no third try")
        kinds = self.kinds(alarm)
        self.assertEqual(kinds.count("no-answer"), 6)
        self.assertEqual(kinds.count("retry"), 3)

    def test_busy_neighbour(self):
        alarm = self.raise_(household(1))
        busy = self.ami.calls[0]
        busy.finish("busy")
        self.assertEqual(alarm.legs[busy.channel_id].state, "busy")
        self.assertIn(("busy", number(2), ""), timeline(self.rig.db, alarm.id))
        self.rig.later(10)
        self.assertEqual(self.ami.calls[-1].channel, busy.channel)
        self.assertEqual(len(self.ami.calls), 11)
        # The others keep ringing meanwhile.
        self.assertEqual(sum(1 for leg in alarm.legs.values() if leg.state == "ringing"), 10)

    def test_everyone_declines_escalates_at_once(self):
        alarm = self.raise_(household(1, 2), caller="87650001")
        for call in list(self.ami.calls):
            call.finish("answered")
            self.successResultOf(self.coordinator.answered(alarm.id, call.channel_id))
            self.successResultOf(self.coordinator.decline(alarm.id, call.channel_id))
        self.assertEqual(self.ami.calls[-1].channel, "PJSIP/87650190")
        self.assertEqual(len(self.ami.calls), 3, "declined neighbours are not rung again")
        self.assertEqual(self.kinds(alarm).count("declined"), 2)

    def test_no_key_pressed_counts_as_unanswered(self):
        alarm = self.raise_(household(1, 1))
        call = self.ami.calls[0]
        call.finish("answered")
        self.successResultOf(self.coordinator.answered(alarm.id, call.channel_id))
        self.successResultOf(self.coordinator.unconfirmed(alarm.id, call.channel_id))
        self.assertEqual(alarm.legs[call.channel_id].state, "unconfirmed")
        self.rig.later(10)
        self.assertEqual(len(self.ami.calls), 2)


class DedupeCancelCloseTests(Case):
    def test_second_alarm_joins(self):
        alarm = self.raise_(household(1))
        again = self.raise_(household(1), caller="059187650001")
        self.assertIs(again, alarm)
        self.assertEqual(len(self.ami.calls), 10)
        self.assertEqual(alarm.callers, 2)
        self.assertIn(("joined", "059187650001",
                       "another #9 call while the alarm is open: joins it"),
                      timeline(self.rig.db, alarm.id))
        with self.rig.db.session() as s:
            self.assertEqual(len(s.execute(select(Alarm)).all()), 1)

    def test_same_number_joins_even_if_not_recognised(self):
        alarm = self.raise_(household(1))
        self.assertIs(self.raise_(None, caller="+8659187650001"), alarm)
        unregistered = self.raise_(None, caller="87650150")
        self.assertIs(self.raise_(None, caller="0591 8765 0150"), unregistered)
        self.assertEqual(len(self.ami.calls), 11)

    def test_second_alarm_while_first_is_being_recorded(self):
        self.rig.sync.hold = True
        d1 = self.coordinator.raise_alarm("87650001", household(1))
        d2 = self.coordinator.raise_alarm("87650001", household(1))
        self.rig.sync.hold = False
        self.rig.sync.release()
        self.assertIs(self.successResultOf(d1), self.successResultOf(d2))
        self.assertEqual(len(self.ami.calls), 10)

    def test_other_household_separate(self):
        a = self.raise_(household(1))
        b = self.raise_(household(2, own=20), caller="87650020")
        self.assertNotEqual(a.id, b.id)
        self.assertEqual(len(self.ami.calls), 20)

    def test_cancel(self):
        alarm = self.raise_(household(1))
        calls = list(self.ami.calls)
        for i, call in enumerate(calls[:5]):
            self.coordinator.note_channel(call.channel_id, f"PJSIP/8765000{i}-0000{i}")
        confirmed = calls[9]
        confirmed.finish("answered")
        self.successResultOf(self.coordinator.confirm(alarm.id, confirmed.channel_id))
        declined = calls[8]
        self.successResultOf(self.coordinator.decline(alarm.id, declined.channel_id))
        self.rig.later(5)
        self.assertTrue(self.successResultOf(self.coordinator.cancel(alarm.id)))
        # Legs Asterisk has not named yet are hung up by their unique id.
        self.assertEqual(self.ami.hangups, [f"PJSIP/8765000{i}-0000{i}" for i in range(5)]
                         + [call.channel_id for call in calls[5:8]])
        # A leg whose channel shows up after the cancel is hung up then.
        self.coordinator.note_channel(calls[6].channel_id, "PJSIP/87650008-0006")
        self.assertEqual(self.ami.hangups[-1], "PJSIP/87650008-0006")
        self.assertEqual(self.ami.kicks, [alarm.room], "confirmed neighbours are told")
        self.assertTrue(alarm.cancelled)
        self.rig.later(1000)
        self.assertEqual(len(self.ami.calls), 10, "no stage after a cancel")
        row = alarm_row(self.rig.db, alarm.id)
        self.assertEqual((row.status, row.outcome), ("cancelled", "cancelled by caller"))
        self.assertIsNotNone(row.closed_at)
        kinds = self.kinds(alarm)
        self.assertEqual(kinds.count("cancelled"), 9)  # eight ringing legs and the alarm
        self.assertEqual(kinds[-1], "cancelled")
        self.assertFalse(self.successResultOf(self.coordinator.cancel(alarm.id)))
        # A fresh #9 is a fresh alarm.
        self.assertNotEqual(self.raise_(household(1)).id, alarm.id)

    def test_confirm_after_cancel_refused(self):
        alarm = self.raise_(household(1))
        call = self.ami.calls[0]
        call.finish("answered")
        self.successResultOf(self.coordinator.answered(alarm.id, call.channel_id))
        self.successResultOf(self.coordinator.cancel(alarm.id))
        self.assertFalse(self.successResultOf(self.coordinator.confirm(alarm.id, call.channel_id)))

    def test_caller_hangup_does_not_cancel(self):
        alarm = self.raise_(household(1))
        self.successResultOf(self.coordinator.caller_left(alarm.id))
        self.assertEqual(alarm.status, "open")
        self.rig.later(60)
        self.assertEqual(self.ami.calls[-1].channel, "PJSIP/87650190")
        self.assertIn(("caller-left", None, "nobody has confirmed yet: the alarm goes on"),
                      timeline(self.rig.db, alarm.id))

    def test_closes_when_everyone_left_after_confirmation(self):
        alarm = self.raise_(household(1, 2))
        call = self.ami.calls[0]
        call.finish("answered")
        self.successResultOf(self.coordinator.confirm(alarm.id, call.channel_id))
        self.successResultOf(self.coordinator.caller_left(alarm.id))
        self.assertEqual(alarm.status, "confirmed")
        self.successResultOf(self.coordinator.responder_left(alarm.id, call.channel_id))
        self.assertEqual(alarm.status, "closed")
        row = alarm_row(self.rig.db, alarm.id)
        self.assertEqual((row.status, row.outcome), ("closed", "caller and responders have left"))

    def test_staff_close(self):
        alarm = self.raise_(household(1))
        self.assertTrue(self.successResultOf(self.coordinator.close(alarm.id)))
        self.rig.later(1000)
        self.assertEqual(len(self.ami.calls), 10)
        self.assertEqual(alarm_row(self.rig.db, alarm.id).status, "closed")

    def test_closed_elsewhere(self):
        alarm = self.raise_(household(1))
        self.coordinator.ended_elsewhere([(alarm.id, "closed by staff (cli)")])
        self.assertEqual(alarm.status, "closed")
        self.rig.later(1000)
        self.assertEqual(len(self.ami.calls), 10)


class LinkTroubleTests(Case):
    def test_not_connected_retried_and_escalated(self):
        self.ami.refuse_with = AMINotConnected
        alarm = self.raise_(household(1, 3))
        row = alarm_row(self.rig.db, alarm.id)
        self.assertEqual(row.status, "open", "the alarm is on record")
        self.assertEqual(self.ami.calls, [])
        self.rig.later(0)
        self.assertIn("escalated", self.kinds(alarm))
        self.ami.refuse_with = None      # the link is back
        self.rig.later(2)
        channels = sorted(c.channel for c in self.ami.calls)
        self.assertEqual(channels, ["PJSIP/87650002", "PJSIP/87650003", "PJSIP/87650004",
                                    "PJSIP/87650190"])
        kinds = self.kinds(alarm)
        self.assertEqual(kinds.count("failed"), 4)
        self.assertEqual(kinds.count("retry"), 4)

    def test_retries_continue_while_link_is_down(self):
        self.ami.refuse_with = AMINotConnected
        alarm = self.raise_(household(1, 1))
        for _ in range(10):
            self.rig.later(10)
        self.ami.refuse_with = None
        self.rig.later(10)
        self.assertEqual(sorted(c.channel for c in self.ami.calls)[:2],
                         ["PJSIP/87650002", "PJSIP/87650190"])
        self.assertEqual(alarm.status, "open")

    def test_connection_lost_after_sending(self):
        alarm = self.raise_(household(1, 2))
        first = self.ami.calls[0]
        first.deferred.errback(AMIConnectionLost("link dropped"))
        self.rig.later(0)
        self.assertEqual(self.ami.calls[-1].channel, "PJSIP/87650190")
        self.rig.later(2)
        retry = self.ami.calls[-1]
        self.assertEqual(retry.channel, "PJSIP/87650002")
        # The same channel id: should the first call still ring, Asterisk
        # refuses this one rather than ring the neighbour twice.
        self.assertEqual(retry.channel_id, first.channel_id)
        self.assertEqual(alarm.legs[first.channel_id].state, "ringing")
        self.assertIn("failed", self.kinds(alarm))

    def test_first_call_answered_after_the_link_came_back(self):
        alarm = self.raise_(household(1, 1))
        first = self.ami.calls[0]
        first.deferred.errback(AMIConnectionLost("link dropped"))
        self.rig.later(2)
        retry = self.ami.to(number(2))[-1]
        # Asterisk refuses the retry (the first call still rings); then the
        # neighbour answers the first call and presses 1.
        retry.deferred.errback(Exception("Originate failed"))
        self.flushLoggedErrors(Exception)
        self.successResultOf(self.coordinator.answered(alarm.id, first.channel_id))
        self.assertTrue(self.successResultOf(self.coordinator.confirm(alarm.id, first.channel_id)))
        self.assertTrue(alarm.confirmed)

    def test_no_ami_link_hands_a_new_alarm_to_the_dialplan(self):
        from alarm.coordinator import HandedToDialplan

        self.ami.connected = False
        failure = self.failureResultOf(self.coordinator.raise_alarm("87650001", household(1, 3)),
                                       HandedToDialplan)
        self.assertIn("rung natively by the dialplan", str(failure.value))
        self.assertEqual(self.ami.calls, [])
        self.assertEqual(self.coordinator.open_alarms(), [])
        # On record, ended as handed over (a restart does not ring for it again).
        from alarm.models import Alarm
        with self.rig.db.session() as session:
            row = session.execute(select(Alarm)).scalars().one()
        self.assertEqual((row.status, row.household_id), ("native", 1))
        self.assertIsNotNone(row.closed_at)
        self.assertEqual(self.kinds(row), ["opened", "native"])
        self.rig.later(1000)
        self.assertEqual(self.ami.calls, [], "nothing rings from here later either")
        # Back on line: the next #9 is a fresh alarm run from here.
        self.ami.connected = True
        alarm = self.raise_(household(1, 3))
        self.assertNotEqual(alarm.id, row.id)
        self.assertEqual(len(self.ami.calls), 3)

    def test_no_ami_link_still_joins_a_confirmed_alarm(self):
        alarm = self.raise_(household(1, 1))
        call = self.ami.calls[0]
        self.successResultOf(self.coordinator.answered(alarm.id, call.channel_id))
        self.successResultOf(self.coordinator.confirm(alarm.id, call.channel_id))
        self.ami.connected = False
        self.assertIs(self.raise_(household(1, 1)), alarm)

    def test_no_ami_link_and_an_unconfirmed_alarm_goes_native(self):
        from alarm.coordinator import HandedToDialplan

        self.raise_(household(1, 1))
        self.ami.connected = False
        self.failureResultOf(self.coordinator.raise_alarm("87650001", household(1, 1)),
                             HandedToDialplan)

    def lose_first_call(self, alarm):
        """The link drops with the first neighbour's call placed; its retry is sent."""
        first = self.ami.to(number(2))[0]
        first.deferred.errback(AMIConnectionLost("link dropped"))
        self.rig.later(2)
        retry = self.ami.to(number(2))[-1]
        self.assertEqual(retry.channel_id, first.channel_id)
        return first, retry

    def test_refused_retry_follows_the_first_call(self):
        alarm = self.raise_(household(1, 1))
        first, retry = self.lose_first_call(alarm)
        # The first call still rings, so Asterisk refuses the retry.
        self.ami.channels[first.channel_id] = "Ringing"
        retry.finish("failed")
        self.assertEqual(self.ami.state_asked, [first.channel_id])
        leg = alarm.legs[first.channel_id]
        self.assertEqual(leg.state, "ringing")
        self.assertIn(("ringing", number(2), "neighbours: the call placed before the AMI link "
                       "dropped is still up (Ringing)"), timeline(self.rig.db, alarm.id))
        self.rig.later(15)
        self.assertEqual(len(self.ami.to(number(2))), 2, "the phone is not rung a third time")
        # The first call rings out: the neighbour is tried again, on a new channel.
        del self.ami.channels[first.channel_id]
        self.coordinator.note_hangup(first.channel_id)
        self.assertEqual(leg.state, "no-answer")
        self.rig.later(10)
        again = self.ami.to(number(2))[-1]
        self.assertNotEqual(again.channel_id, first.channel_id)
        self.assertEqual(len(self.ami.to(number(2))), 3)

    def test_cancel_hangs_up_the_first_call(self):
        alarm = self.raise_(household(1, 1))
        first = self.ami.to(number(2))[0]
        self.coordinator.note_channel(first.channel_id, "PJSIP/87650002-0000001")
        first.deferred.errback(AMIConnectionLost("link dropped"))
        self.rig.later(2)
        retry = self.ami.to(number(2))[-1]
        self.ami.channels[first.channel_id] = "Ringing"
        retry.finish("failed")
        self.successResultOf(self.coordinator.cancel(alarm.id))
        self.assertIn("PJSIP/87650002-0000001", self.ami.hangups)

    def test_hangup_of_a_resumed_call_not_followed_changes_nothing(self):
        alarm = self.raise_(household(1, 1))
        first, retry = self.lose_first_call(alarm)
        # The retry was placed (the first call was gone): its own outcome counts.
        self.coordinator.note_hangup(retry.channel_id)
        self.assertEqual(alarm.legs[first.channel_id].state, "ringing")
        retry.finish("busy")
        self.assertEqual(alarm.legs[first.channel_id].state, "busy")

    def test_first_call_followed_without_hangup_event(self):
        alarm = self.raise_(household(1, 1))
        first, retry = self.lose_first_call(alarm)
        self.ami.channels[first.channel_id] = "Ringing"
        retry.finish("failed")
        self.rig.later(5)
        self.rig.later(5)
        leg = alarm.legs[first.channel_id]
        self.assertEqual(leg.state, "ringing")
        del self.ami.channels[first.channel_id]  # its Hangup event was lost
        self.rig.later(5)
        self.assertEqual(leg.state, "no-answer")

    def test_first_call_answered_while_followed(self):
        alarm = self.raise_(household(1, 1))
        first, retry = self.lose_first_call(alarm)
        self.ami.channels[first.channel_id] = "Up"
        retry.finish("failed")
        self.successResultOf(self.coordinator.answered(alarm.id, first.channel_id))
        self.assertTrue(self.successResultOf(self.coordinator.confirm(alarm.id, first.channel_id)))
        self.coordinator.note_hangup(first.channel_id)
        self.assertEqual(alarm.legs[first.channel_id].state, "confirmed")
        self.assertTrue(alarm.confirmed)

    def test_refused_retry_without_a_first_call_fails(self):
        alarm = self.raise_(household(1, 1))
        first, retry = self.lose_first_call(alarm)
        retry.finish("failed")
        self.assertEqual(alarm.legs[first.channel_id].state, "failed")
        self.rig.later(10)
        self.assertEqual(len(self.ami.to(number(2))), 3, "tried again on a new channel")

    def test_first_call_answered_during_the_outage_is_not_placed_again(self):
        alarm = self.raise_(household(1, 1))
        first = self.ami.to(number(2))[0]
        first.deferred.errback(AMIConnectionLost("link dropped"))
        # FastAGI still works without AMI: the neighbour answers the first call.
        self.successResultOf(self.coordinator.answered(alarm.id, first.channel_id))
        self.rig.later(2)
        self.assertEqual(len(self.ami.to(number(2))), 1)
        self.assertEqual(alarm.legs[first.channel_id].state, "answered")

    def test_first_call_unknown_while_link_is_down(self):
        alarm = self.raise_(household(1, 1))
        first, retry = self.lose_first_call(alarm)
        self.ami.refuse_with = AMINotConnected  # cannot even ask
        retry.finish("failed")
        self.assertEqual(self.flushLoggedErrors(), [])  # the refusal is handled, not a traceback
        self.assertEqual(alarm.legs[first.channel_id].state, "failed")


class RefusedCallsTests(Case):
    """Asterisk answers but will not place calls (shutting down, restarting)."""

    config = {"repeat_every": 0.0}
    SHUTTING_DOWN = (None, "Asterisk refused the originate: Asterisk is shutting down")

    def refuse_for(self, seconds, reason_message=SHUTTING_DOWN):
        self.ami.refuse_calls = reason_message
        alarm = self.raise_(household(1, 3))
        self.rig.later(0)
        self.rig.later(seconds)
        self.ami.refuse_calls = None
        return alarm

    def test_calls_refused_for_five_seconds_ring_once_asterisk_takes_calls(self):
        alarm = self.refuse_for(5)
        self.assertEqual(self.ami.placed(), [])
        self.rig.later(10)   # the retry delay is capped at 10 s
        placed = sorted(c.channel for c in self.ami.placed())
        self.assertEqual(placed[:3], ["PJSIP/87650002", "PJSIP/87650003", "PJSIP/87650004"])
        self.assertIn("PJSIP/87650190", placed, "the duty phone rang too")
        self.assertTrue(alarm.active)

    def test_every_stage_refused_is_tried_again_even_without_repeats(self):
        alarm = self.refuse_for(300)
        kinds = self.kinds(alarm)
        self.assertEqual(kinds.count("escalated"), 3, "each stage escalated once, on time")
        self.rig.later(10)
        placed = {c.channel for c in self.ami.placed()}
        self.assertEqual(placed, {"PJSIP/87650002", "PJSIP/87650003", "PJSIP/87650004",
                                  "PJSIP/87650190", "PJSIP/87650191", "PJSIP/87650199"})

    def test_a_refusal_rings_the_duty_stage_at_once(self):
        self.ami.refuse_calls = self.SHUTTING_DOWN
        alarm = self.raise_(household(1, 3))
        self.rig.later(0)
        self.assertIn("PJSIP/87650190", [c.channel for c in self.ami.calls])
        self.assertIn("escalated", self.kinds(alarm))

    def test_reason_zero_is_not_an_outcome(self):
        alarm = self.refuse_for(5, (0, "Failure (reason 0: failed)"))
        self.rig.later(10)
        self.assertEqual(len({c.channel for c in self.ami.placed()}), 4)
        self.assertTrue(alarm.active)

    def test_one_unreachable_neighbour_does_not_ring_the_duty_phone_early(self):
        alarm = self.raise_(household(1, 3))
        self.ami.to(number(2))[0].finish("failed")   # refused, reason None
        self.rig.later(0)
        self.assertNotIn("PJSIP/87650190", [c.channel for c in self.ami.calls])
        self.rig.later(2)
        self.assertEqual(len(self.ami.to(number(2))), 2, "tried again")
        self.assertEqual(self.ami.to(DUTY), [], "the others still ring")
        self.assertTrue(alarm.active)

    def test_congestion_is_an_outcome(self):
        alarm = self.raise_(household(1, 1))
        call = self.ami.to(number(2))[0]
        call.deferred.callback(OriginateResult(call.channel_id, "congestion", 8, "congestion"))
        self.assertEqual(alarm.legs[call.channel_id].state, "failed")
        self.rig.later(2)
        self.assertEqual(len(self.ami.to(number(2))), 1, "not retried as link trouble")
        self.rig.later(8)
        self.assertEqual(len(self.ami.to(number(2))), 2, "retried as not answered")


class UnidentifiedTests(Case):
    def test_a_burst_of_unidentified_callers_rings_each_stage_once(self):
        callers = ["", "", "87650150", "87650151", "anonymous"]
        alarms = [self.raise_(None, caller=c) for c in callers]
        self.assertEqual(len({a.id for a in alarms}), 1, "one alarm, one room")
        alarm = alarms[0]
        self.assertEqual(alarm.callers, 5)
        self.assertEqual([c.channel for c in self.ami.calls], ["PJSIP/87650190"])
        self.rig.later(200)
        channels = [c.channel for c in self.ami.calls]
        self.assertEqual(channels.count("PJSIP/87650199"), 1, "the outside number once")
        self.assertEqual(self.kinds(alarm).count("joined"), 4)

    def test_registered_households_are_never_merged(self):
        unknown = self.raise_(None, caller="87650150")
        mine = self.raise_(household(1, 2))
        self.assertNotEqual(unknown.id, mine.id)
        self.assertIsNot(self.raise_(None, caller="87650151"), mine)

    def test_after_the_window_a_new_alarm(self):
        first = self.raise_(None, caller="")
        self.rig.later(121)
        second = self.raise_(None, caller="")
        self.assertNotEqual(first.id, second.id)
        self.assertIs(self.raise_(None, caller="87650151"), second)

    def test_a_cancelled_one_is_not_joined(self):
        first = self.raise_(None, caller="87650150")
        self.successResultOf(self.coordinator.cancel(first.id))
        self.assertNotEqual(self.raise_(None, caller="87650151").id, first.id)


class RingOutTests(Case):
    config = {"repeat_every": 0.0, "retry_unanswered": 0}

    def test_every_stage_busy_rings_the_first_again_without_repeats(self):
        alarm = self.raise_(household(1, 1))
        for _ in range(4):      # the neighbour, then each stage in turn, busy
            self.ami.calls[-1].finish("busy")
        self.assertEqual([c.channel for c in self.ami.calls],
                         ["PJSIP/87650002", "PJSIP/87650190", "PJSIP/87650191",
                          "PJSIP/87650199"])
        self.rig.later(10)
        self.assertEqual(self.ami.calls[-1].channel, "PJSIP/87650190", "never silent")
        self.assertTrue(self.coordinator.alarm(alarm.id).active)


class RecoveryTests(Case):
    def restart(self, *, connected=True, rooms=None):
        """A new coordinator over the same database: the server was killed and restarted."""
        from alarm.coordinator import AlarmCoordinator
        from alarm.recorder import AlarmRecorder
        from tests.test_alarm_support import FakeAMI
        self.coordinator.stop()
        ami = FakeAMI()
        ami.connected = connected
        self.waiting = ami.waiting
        self.rooms = rooms if rooms is not None else {}
        recorder = AlarmRecorder(self.rig.sync, clock=self.rig.clock)
        coordinator = AlarmCoordinator(
            self.rig.coordinator.dialer, ami, recorder, self.rig.config, self.rig.clock,
            room_size=lambda room: defer.succeed(self.rooms.get(room, 0)))
        recovered = self.successResultOf(coordinator.recover_open_alarms())
        return coordinator, ami, recovered

    def raise_three(self):
        first = self.raise_(household(1))
        confirmed = self.raise_(household(2, own=20), caller="87650020")
        call = self.ami.to(number(21))[0]
        self.successResultOf(self.coordinator.confirm(confirmed.id, call.channel_id))
        done = self.raise_(None, caller="87650150")
        self.successResultOf(self.coordinator.close(done.id))
        return first, confirmed

    def test_open_alarm_rings_the_duty_phones_confirmed_alarm_rings_nobody(self):
        first, confirmed = self.raise_three()
        self.rooms = {first.room: 1, confirmed.room: 2}
        coordinator, ami, recovered = self.restart(rooms=self.rooms)
        self.assertEqual(sorted(a.id for a in recovered), sorted([first.id, confirmed.id]))
        self.assertEqual([(c.channel, c.variables["SWITCHBOARD_ALARM"]) for c in ami.calls],
                         [("PJSIP/87650190", str(first.id))])
        for alarm in recovered:
            self.assertIn("recovered", self.kinds(alarm))
            self.assertEqual(alarm.room, f"alarm-{alarm.id}")
        self.assertTrue(coordinator.alarm(confirmed.id).confirmed)
        self.rig.later(60)
        self.assertEqual([c.channel for c in ami.calls[1:]], ["PJSIP/87650191"])
        # Confirmed after the restart: the first confirmation time stays.
        before = alarm_row(self.rig.db, confirmed.id).confirmed_at
        duty = ami.calls[0]
        self.successResultOf(coordinator.confirm(first.id, duty.channel_id))
        self.assertIsNotNone(before)
        self.assertEqual(alarm_row(self.rig.db, confirmed.id).confirmed_at, before)
        # A new #9 from a recovered household joins its alarm.
        again = self.successResultOf(coordinator.raise_alarm("87650001", household(1)))
        self.assertEqual(again.id, first.id)

    def test_recovered_alarms_close_once_their_room_is_empty(self):
        first, confirmed = self.raise_three()
        rooms = {first.room: 1, confirmed.room: 2}
        coordinator, ami, _ = self.restart(rooms=rooms)
        self.rig.later(30)
        self.assertTrue(coordinator.alarm(confirmed.id).active, "people are in the room")
        rooms[confirmed.room] = 0      # everyone has left
        self.rig.later(10)
        self.assertTrue(coordinator.alarm(confirmed.id).active, "one empty look is not enough")
        self.rig.later(10)
        row = alarm_row(self.rig.db, confirmed.id)
        self.assertEqual(row.status, "closed")
        self.assertIsNotNone(row.closed_at)
        # The unconfirmed one stays open with its room empty (the caller may
        # have hung up unable to speak) until somebody confirms.
        rooms[first.room] = 0
        self.rig.later(30)
        self.assertTrue(coordinator.alarm(first.id).active)
        self.successResultOf(coordinator.confirm(first.id, ami.calls[0].channel_id))
        for _ in range(3):
            self.rig.later(10)
        self.assertEqual(alarm_row(self.rig.db, first.id).status, "closed")
        # Another restart finds nothing open: nobody is rung again.
        coordinator, ami, recovered = self.restart()
        self.assertEqual((recovered, ami.calls), ([], []))

    def test_recovered_alarm_rings_when_the_link_is_up_not_before(self):
        first = self.raise_(household(1))
        coordinator, ami, _ = self.restart(connected=False)
        self.assertEqual(ami.calls, [])
        self.rig.later(5)
        self.assertEqual(ami.calls, [])
        self.assertNotIn("failed", self.kinds(first))
        self.assertIn("waiting", self.kinds(first))
        ami.connected = True
        self.waiting.pop().callback(None)
        self.assertEqual([c.channel for c in ami.calls], ["PJSIP/87650190"])
        self.assertNotIn("failed", self.kinds(first))

    def test_a_leg_placed_before_the_restart_is_taken_up_under_its_number(self):
        first = self.raise_(household(1, 2))
        old_leg = self.ami.to(number(2))[0]
        coordinator, ami, _ = self.restart()
        leg = self.successResultOf(coordinator.answered(
            first.id, old_leg.channel_id, channel="PJSIP/87650002-00000007",
            target=old_leg.variables["SWITCHBOARD_TARGET"],
            stage=old_leg.variables["SWITCHBOARD_STAGE"]))
        self.assertEqual((leg.target, leg.stage), (number(2), "neighbours"))
        self.successResultOf(coordinator.confirm(first.id, leg.id))
        self.assertIn(("confirmed", number(2), ""), timeline(self.rig.db, first.id))


class ChangeListenerTests(Case):
    def listen(self):
        changes = []
        self.coordinator.changes.subscribe(changes.append)
        return changes

    def test_a_listener_hears_an_alarm_from_opening_to_close(self):
        changes = self.listen()
        alarm = self.raise_(household(1, 2))
        calls = self.ami.to(number(2)) + self.ami.to(number(3))
        calls[1].finish("busy")
        calls[0].finish("answered")
        self.successResultOf(self.coordinator.answered(alarm.id, calls[0].channel_id))
        self.successResultOf(self.coordinator.confirm(alarm.id, calls[0].channel_id))
        self.successResultOf(self.coordinator.caller_left(alarm.id))
        self.successResultOf(self.coordinator.responder_left(alarm.id, calls[0].channel_id))
        self.assertEqual([(c.kind, c.number) for c in changes], [
            ("opened", None), ("ringing", number(2)), ("ringing", number(3)),
            ("busy", number(3)), ("answered", number(2)), ("confirmed", number(2)),
            ("caller-left", None), ("left", number(2)), ("closed", None)])
        self.assertTrue(all(c.alarm is alarm and c.alarm_id == alarm.id for c in changes))
        self.assertEqual(changes[0].detail, "#9 from Hualin Garden, building 3, unit 1, room 101")
        self.assertEqual(changes[3].leg.id, calls[1].channel_id)
        # The timeline on record is the first listener: the same changes, the
        # opening written with the alarm's row.
        self.assertEqual([k for k, _, _ in timeline(self.rig.db, alarm.id)],
                         [c.kind for c in changes])

    def test_escalation_and_an_alarm_handed_to_the_dialplan(self):
        changes = self.listen()
        alarm = self.raise_(None, caller="87650150")
        self.assertEqual([c.kind for c in changes], ["opened", "no-neighbours", "escalated",
                                                     "ringing"])
        self.ami.connected = False
        self.failureResultOf(self.coordinator.raise_alarm("87650160", household(2, own=60)))
        self.assertEqual([(c.kind, c.alarm) for c in changes[4:]],
                         [("opened", None), ("native", None)])
        self.assertNotEqual(changes[-1].alarm_id, alarm.id)
        self.assertIn("native", [k for k, _, _ in timeline(self.rig.db, changes[-1].alarm_id)])

    def test_a_failing_listener_costs_nobody_else_anything(self):
        def broken(change):
            raise RuntimeError("the board is down")

        unsubscribe = self.coordinator.changes.subscribe(broken)
        changes = self.listen()
        alarm = self.raise_(household(1, 1))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        self.assertEqual([c.kind for c in changes], ["opened", "ringing"])
        self.assertEqual([k for k, _, _ in timeline(self.rig.db, alarm.id)],
                         ["opened", "ringing"])
        unsubscribe()
        self.ami.calls[0].finish("no-answer")
        self.assertEqual(self.flushLoggedErrors(RuntimeError), [])
        self.assertEqual(changes[-1].kind, "no-answer")
