"""
The ring-group engine (switchboard.ringgroup) on its own: a verified fake
call placer, a recording owner, a task.Clock.
"""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from switchboard.ami import (
    AMIClient,
    AMIConnectionLost,
    AMINotConnected,
    AMITimeout,
    OriginateResult,
)
from switchboard.ringgroup import (
    ANSWERED,
    BUSY,
    CANCELLED,
    FAILED,
    NO_ANSWER,
    RETRY,
    RINGING,
    AMICallPlacer,
    ICallPlacer,
    IRingListener,
    Party,
    Retry,
    RingEngine,
)
from switchboard.ringgroup.testing import FakeCallPlacer


@implementer(IRingListener)
class Owner:
    """Records what the group tells it; C{want} is what C{wanted} answers."""

    def __init__(self):
        self.want = True
        self.notes: list = []     # (leg target, kind, detail)
        self.fates: list = []     # (leg id, target, state, retried)
        self.not_placed_legs: list = []

    def wanted(self, group):
        return self.want

    def variables(self, leg):
        return {"LEG": leg.id, "WHO": leg.target}

    def noted(self, leg, kind, detail):
        self.notes.append((leg.target, kind, detail))

    def ended(self, leg, retried):
        self.fates.append((leg.id, leg.target, leg.state, retried))

    def not_placed(self, leg, link_down):
        self.not_placed_legs.append((leg.id, link_down))


class Line:
    """A lent FastAGI session: records the applications run on it."""

    hungup = False

    def __init__(self):
        self.run: list = []

    def exec_(self, app, *args):
        self.run.append((app,) + args)
        return defer.succeed(0)


def party(n, retry=None, tag="household"):
    return Party(f"+86591876500{n:02d}", f"PJSIP/876500{n:02d}", tag, retry)


class Case(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.placer = FakeCallPlacer()
        self.engine = RingEngine(self.placer, self.clock, follow_every=5.0)
        self.owner = Owner()
        self.group = self.engine.group(self.owner, "subject", context="ctx", exten="s",
                                       caller_name='Alarm"<', caller_number="12345",
                                       ring_timeout=30.0, originate_retry=2.0, key="7",
                                       name="TEST 7", prefix="t-7")

    def fates(self):
        return [(target, state, retried) for _, target, state, retried in self.owner.fates]


class InterfaceTests(Case):
    def test_fake_and_real_placers_and_the_owner_provide_their_interfaces(self):
        self.assertTrue(verifyObject(ICallPlacer, self.placer))
        client = AMIClient("127.0.0.1", 5038, "u", "s", reactor=MemoryReactorClock())
        self.assertTrue(verifyObject(ICallPlacer, AMICallPlacer(client)))
        self.assertTrue(verifyObject(IRingListener, self.owner))

    def test_the_real_placer_asks_the_ami_client(self):
        class Client:
            connected = False

            def when_connected(self):
                return defer.succeed("up")

        placer = AMICallPlacer(Client())
        self.assertFalse(placer.can_place_calls())
        self.assertEqual(self.successResultOf(placer.when_connected()), "up")


class ParallelTests(Case):
    def test_every_party_rung_at_once_each_under_its_own_channel_id(self):
        legs = self.group.ring_all([party(1), party(2), party(3)])
        calls = self.placer.calls
        self.assertEqual([c.channel for c in calls],
                         ["PJSIP/87650001", "PJSIP/87650002", "PJSIP/87650003"])
        self.assertEqual([c.channel_id for c in calls], [leg.id for leg in legs])
        self.assertEqual(len(set(leg.id for leg in legs)), 3)
        self.assertTrue(all(leg.id.startswith("t-7-") for leg in legs))
        self.assertEqual(calls[1].variables, {"LEG": legs[1].id, "WHO": "+8659187650002"})
        self.assertEqual(calls[0].kwargs["caller_id"], '"Alarm" <12345>')
        self.assertEqual((calls[0].kwargs["context"], calls[0].kwargs["exten"],
                          calls[0].kwargs["timeout"]), ("ctx", "s", 30.0))
        self.assertEqual(self.owner.notes, [(p, RINGING, "household") for p in
                                            ("+8659187650001", "+8659187650002",
                                             "+8659187650003")])
        self.assertIs(self.engine.leg(legs[0].id), legs[0])
        self.assertEqual(self.group.live_legs(), legs)

    def test_outcomes_are_fates_and_answered_is_not(self):
        legs = self.group.ring_all([party(1), party(2), party(3)])
        self.placer.calls[0].finish("answered", channel="PJSIP/87650001-00000001")
        self.placer.calls[1].finish("busy")
        self.placer.calls[2].finish("no-answer")
        self.assertEqual([leg.state for leg in legs], [ANSWERED, BUSY, NO_ANSWER])
        self.assertEqual(legs[0].channel, "PJSIP/87650001-00000001")
        self.assertEqual(self.fates(), [("+8659187650002", BUSY, False),
                                        ("+8659187650003", NO_ANSWER, False)])
        # What the owner learns of the answered leg is its fate.
        self.group.settle(legs[0], "delivered")
        self.assertEqual(self.fates()[-1], ("+8659187650001", "delivered", False))


class LateOutcomeTests(Case):
    def test_a_call_whose_channel_was_made_is_followed_not_placed_again_when_its_outcome_is_late(
            self):
        leg = self.group.ring("+1", "PJSIP/1")
        call = self.placer.calls[0]
        self.engine.note_channel(leg.id, "PJSIP/1-00000001")   # Asterisk made the channel
        self.placer.channels[leg.id] = "Ringing"
        call.deferred.errback(AMITimeout("no outcome within 30 s"))
        self.clock.advance(30)
        self.assertEqual(len(self.placer.calls), 1, "rung twice")
        self.assertEqual(leg.state, RINGING)
        del self.placer.channels[leg.id]                           # it rang out
        self.clock.advance(5)
        self.assertEqual(leg.state, NO_ANSWER)
        self.assertEqual(len(self.placer.calls), 1)

    def test_a_call_never_seen_made_is_placed_again(self):
        self.group.ring("+1", "PJSIP/1")
        self.placer.calls[0].deferred.errback(AMITimeout("no outcome within 30 s"))
        self.clock.advance(3)
        self.assertEqual(len(self.placer.calls), 2)


class GateTests(Case):
    """The owner's gate holds calls and timers until it has checked it still owns its groups."""

    def test_calls_and_timers_wait_for_the_gate_and_are_dropped_if_no_longer_wanted(self):
        opened = defer.Deferred()
        self.engine.gate = lambda: opened if not opened.called else None
        leg = self.group.ring("+1", "PJSIP/1")
        fired = []
        self.group.later(1, fired.append, "timer")
        self.clock.advance(2)
        self.assertEqual((self.placer.calls, fired, self.owner.notes), ([], [], []))
        self.assertEqual(leg.state, RINGING, "a leg waiting to be placed counts as ringing")
        opened.callback(None)
        self.assertEqual([c.channel for c in self.placer.calls], ["PJSIP/1"])
        self.assertEqual(fired, ["timer"])

    def test_a_group_given_up_meanwhile_places_nothing(self):
        opened = defer.Deferred()
        self.engine.gate = lambda: opened
        self.group.ring("+1", "PJSIP/1")
        fired = []
        self.group.later(0, fired.append, "timer")
        self.clock.advance(1)
        self.owner.want = False
        opened.callback(None)
        self.assertEqual((self.placer.calls, fired, self.owner.notes), ([], [], []))


class SequenceTests(Case):
    def test_parties_rung_one_after_another(self):
        first = self.group.ring_in_order([party(1), party(2), party(3)])
        self.assertEqual([c.channel for c in self.placer.calls], ["PJSIP/87650001"])
        self.placer.calls[0].finish("busy")
        self.assertEqual([c.channel for c in self.placer.calls],
                         ["PJSIP/87650001", "PJSIP/87650002"])
        # Answered: the next waits for the answered leg's fate.
        self.placer.calls[1].finish("answered")
        self.assertEqual(len(self.placer.calls), 2)
        second = self.engine.leg(self.placer.calls[1].channel_id)
        self.group.settle(second, "refused-by-owner")
        self.assertEqual(self.placer.calls[-1].channel, "PJSIP/87650003")
        self.placer.calls[-1].finish("no-answer")
        self.assertEqual(len(self.placer.calls), 3, "the last party: nobody after it")
        self.assertEqual([state for _, state, _ in self.fates()],
                         [BUSY, "refused-by-owner", NO_ANSWER])
        self.assertEqual(first.state, BUSY)

    def test_a_group_no_longer_wanted_rings_nobody_next(self):
        self.group.ring_in_order([party(1), party(2)])
        self.owner.want = False
        self.placer.calls[0].finish("no-answer")
        self.assertEqual(len(self.placer.calls), 1)
        self.assertEqual(self.fates(), [("+8659187650001", NO_ANSWER, False)])

    def test_a_retried_party_keeps_its_place(self):
        self.group.ring_in_order([party(1, Retry((BUSY,), 1, 10.0)), party(2)])
        self.placer.calls[0].finish("busy")
        self.assertEqual(len(self.placer.calls), 1)
        self.clock.advance(10)
        self.assertEqual([c.channel for c in self.placer.calls], ["PJSIP/87650001"] * 2)
        self.placer.calls[1].finish("busy")
        self.assertEqual([c.channel for c in self.placer.calls][-1], "PJSIP/87650002")


class RetryTests(Case):
    def test_chosen_outcomes_rung_again_as_new_legs(self):
        retry = Retry((BUSY, NO_ANSWER), 2, 10.0)
        leg = self.group.ring_all([party(1, retry)])[0]
        self.placer.calls[0].finish("busy")
        self.assertEqual(self.fates(), [("+8659187650001", BUSY, True)])
        self.assertEqual(self.group.retries, 1)
        self.assertTrue(self.group.due_within(10))
        self.clock.advance(9.9)
        self.assertEqual(len(self.placer.calls), 1)
        self.clock.advance(0.1)
        self.assertEqual(len(self.placer.calls), 2)
        again = self.engine.leg(self.placer.calls[1].channel_id)
        self.assertNotEqual(again.id, leg.id)
        self.assertEqual((again.attempt, again.state, self.group.retries), (2, RINGING, 0))
        self.assertIn(("+8659187650001", RETRY, "household: busy before"), self.owner.notes)
        self.assertEqual(self.owner.notes[-1],
                         ("+8659187650001", RINGING, "household, attempt 2"))
        self.placer.calls[1].finish("no-answer")
        self.clock.advance(10)
        self.placer.calls[2].finish("no-answer")
        self.clock.advance(60)
        self.assertEqual(len(self.placer.calls), 3, "two retries, then its fate")
        self.assertEqual(self.fates()[-1], ("+8659187650001", NO_ANSWER, False))

    def test_outcomes_not_chosen_are_not_retried(self):
        self.group.ring_all([party(1, Retry((BUSY,), 3, 10.0))])
        self.placer.calls[0].finish("congestion", reason=8)
        self.clock.advance(60)
        self.assertEqual(len(self.placer.calls), 1)
        self.assertEqual(self.fates(), [("+8659187650001", FAILED, False)])

    def test_cancelled_timers_ring_nobody(self):
        self.group.ring_all([party(1, Retry((BUSY,), 3, 10.0))])
        self.placer.calls[0].finish("busy")
        self.group.cancel_timers()
        self.clock.advance(60)
        self.assertEqual((len(self.placer.calls), self.group.retries), (1, 0))


class NotPlacedTests(Case):
    def test_a_call_not_placed_is_tried_again_under_the_same_channel_id(self):
        self.placer.refuse_with = AMINotConnected
        leg = self.group.ring_all([party(1)])[0]
        self.assertEqual(leg.state, FAILED)
        self.assertEqual(self.owner.not_placed_legs, [(leg.id, True)])
        self.assertEqual(self.fates(), [], "not an outcome")
        self.placer.refuse_with = None
        self.clock.advance(2)
        self.assertEqual([c.channel_id for c in self.placer.calls], [leg.id])
        resumed = self.engine.leg(leg.id)
        self.assertTrue(resumed.resumed)
        self.assertEqual(resumed.state, RINGING)
        self.assertEqual([kind for _, kind, _ in self.owner.notes],
                         [RINGING, FAILED, RETRY, RINGING])
        # Tried again while it cannot be placed: not noted again each time.
        self.placer.calls[0].deferred.errback(AMIConnectionLost("link dropped"))
        self.clock.advance(2)
        self.placer.calls[1].deferred.errback(AMIConnectionLost("link dropped"))
        self.clock.advance(2)
        self.assertEqual([c.channel_id for c in self.placer.calls], [leg.id] * 3)
        self.assertEqual([kind for _, kind, _ in self.owner.notes],
                         [RINGING, FAILED, RETRY, RINGING, FAILED])

    def test_a_phone_that_says_why_is_an_outcome_not_trouble(self):
        # Reason 0 with the phone's hangup cause (not registered, busy):
        # what the party did, rung again by its Retry, not every 2 s.
        self.group.ring_all([party(1, Retry((BUSY, FAILED), 1, 10.0)),
                             party(2, Retry((BUSY, FAILED), 1, 10.0))])
        for call, cause in zip(self.placer.calls, (20, 17)):
            call.deferred.callback(OriginateResult(call.channel_id, "failed", 0,
                                                   "Failure (reason 0: failed)").with_cause(cause))
        self.assertEqual(self.fates(), [("+8659187650001", FAILED, True),
                                        ("+8659187650002", BUSY, True)])
        self.assertEqual(self.owner.not_placed_legs, [])
        self.clock.advance(9.9)
        self.assertEqual(len(self.placer.calls), 2)
        self.clock.advance(0.1)
        self.assertEqual(len(self.placer.calls), 4)

    def test_tried_again_every_few_seconds_under_one_id(self):
        self.placer.refuse_calls = (None, "Asterisk is shutting down")
        self.group.ring_all([party(1)])
        times = []
        start = self.clock.seconds()
        for _ in range(6):
            before = len(self.placer.calls)
            while len(self.placer.calls) == before:
                self.clock.advance(0.5)
            times.append(self.clock.seconds() - start)
        gaps = [b - a for a, b in zip([0.0] + times, times)]
        self.assertEqual(gaps, [2.0] * 6)
        self.assertEqual(len({c.channel_id for c in self.placer.calls}), 1)
        self.assertEqual(len([n for n in self.owner.notes if n[1] == RETRY]), 1)

    def test_refused_retry_follows_the_first_call_still_up(self):
        leg = self.group.ring_all([party(1)])[0]
        self.placer.calls[0].deferred.errback(AMIConnectionLost("link dropped"))
        self.placer.channels[leg.id] = "Ringing"   # Asterisk still rings it
        self.clock.advance(2)
        self.placer.calls[1].refuse(None, "channel id in use")
        following = self.engine.leg(leg.id)
        self.assertTrue(following.following)
        self.assertEqual(following.state, RINGING)
        self.assertIn(("+8659187650001", RINGING, "household: the call placed before the AMI "
                       "link dropped is still up (Ringing)"), self.owner.notes)
        self.clock.advance(30)
        self.assertEqual(len(self.placer.calls), 2, "never rung a third time meanwhile")
        self.assertEqual(self.fates(), [])
        # The first call ends unanswered: the leg's fate, told once.
        self.engine.note_hangup(leg.id)
        self.engine.note_hangup(leg.id)
        del self.placer.channels[leg.id]
        self.clock.advance(30)
        self.assertEqual(self.fates(), [("+8659187650001", NO_ANSWER, False)])

    def test_first_call_gone_seen_by_looking(self):
        leg = self.group.ring_all([party(1)])[0]
        self.placer.calls[0].deferred.errback(AMIConnectionLost("link dropped"))
        self.placer.channels[leg.id] = "Up"
        self.clock.advance(2)
        self.placer.calls[1].refuse(None, "channel id in use")
        del self.placer.channels[leg.id]
        self.clock.advance(5)
        self.assertEqual(self.fates(), [("+8659187650001", NO_ANSWER, False)])
        self.engine.note_hangup(leg.id)   # the Hangup event, late: no second fate
        self.assertEqual(len(self.fates()), 1)

    def test_refused_retry_with_nothing_up_is_retried(self):
        leg = self.group.ring_all([party(1)])[0]
        self.placer.calls[0].deferred.errback(AMIConnectionLost("link dropped"))
        self.clock.advance(2)
        self.placer.calls[1].refuse(None, "refused")
        self.assertEqual(self.placer.state_asked, [leg.id])
        self.clock.advance(10)
        self.assertEqual([c.channel_id for c in self.placer.calls], [leg.id] * 3)

    def test_placed_through_a_lent_line_when_there_is_no_link(self):
        line = Line()
        self.engine.lines.hold("7", line)
        self.placer.refuse_with = AMINotConnected
        leg = self.group.ring_all([party(1)])[0]
        self.assertTrue(leg.via_line)
        self.assertEqual(line.run, [(
            "Originate", "PJSIP/87650001", "exten", "ctx", "s", "1", "30",
            f"av(LEG={leg.id}^WHO=+8659187650001)n(Alarm)c(12345)")])
        self.assertIn(("+8659187650001", RINGING,
                       "household: placed through the caller's line (no AMI link)"),
                      self.owner.notes)
        self.clock.advance(40)
        self.assertEqual(self.fates(), [("+8659187650001", NO_ANSWER, False)])


class HangupTests(Case):
    def test_a_leg_not_yet_named_is_hung_up_by_its_id_then_by_its_name(self):
        legs = self.group.ring_all([party(1), party(2)])
        self.placer.calls[1].finish("answered", channel="PJSIP/87650002-00000002")
        self.group.cancel_ringing("stopped")
        self.assertEqual(self.placer.hangups, [legs[0].id])
        self.assertEqual(legs[0].state, CANCELLED)
        self.assertEqual(legs[1].state, ANSWERED, "an answered leg is the owner's to end")
        self.assertEqual(self.fates(), [("+8659187650001", CANCELLED, False)])
        # Asterisk creates the channel after all: hung up by its name at once.
        self.engine.note_channel(legs[0].id, "PJSIP/87650001-00000009")
        self.assertEqual(self.placer.hangups, [legs[0].id, "PJSIP/87650001-00000009"])
        # Its outcome, late: no second fate.
        self.placer.calls[0].finish("no-answer")
        self.assertEqual(len(self.fates()), 1)

    def test_other_channels_are_left_alone(self):
        self.group.ring_all([party(1)])
        self.engine.note_channel("someone-else", "PJSIP/1-1")
        self.engine.note_hangup("someone-else")
        self.assertEqual(self.placer.hangups, [])

    def test_forgotten_groups_are_not_found_by_id(self):
        leg = self.group.ring_all([party(1)])[0]
        self.engine.forget(self.group)
        self.assertIsNone(self.engine.leg(leg.id))
        self.engine.note_channel(leg.id, "PJSIP/87650001-1")
        self.assertIsNone(leg.channel)
