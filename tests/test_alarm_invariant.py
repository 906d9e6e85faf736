"""
The alarm's invariant, over whatever happens: an open alarm nobody has
confirmed has a phone ringing, or one due within SILENCE_BOUND seconds; and
the safety net (SilenceGuard) rings an alarm that breaks it.

Property-based (hypothesis): sequences of AMI link drops, Asterisk refusing
calls, database errors, restarts, caller hang-ups and every leg outcome,
on a task.Clock, a fake AMI and a real database (SQLite, then PostgreSQL).
"""

import pytest
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from alarm.coordinator import SILENCE_BOUND, AlarmCoordinator
from alarm.guard import SilenceGuard
from alarm.recorder import AlarmRecorder
from switchboard.ami import AMIConnectionLost, AMINotConnected, OriginateResult
from tests import databases
from tests.test_alarm_support import FakeAMI, Rig, add_household, household

pytestmark = pytest.mark.database

GUARD_EVERY = 5.0
# While calls can be placed, nothing rings for at most this long.
LONGEST_SILENCE = SILENCE_BOUND + GUARD_EVERY

ACTIONS = st.one_of(
    st.tuples(st.just("advance"), st.floats(0.1, 5.0)),
    st.tuples(st.just("link-down"), st.none()),
    st.tuples(st.just("link-up"), st.none()),
    st.tuples(st.just("refusing"), st.sampled_from([None, 0])),
    st.tuples(st.just("accepting"), st.none()),
    st.tuples(st.just("outcome"), st.tuples(
        st.integers(0, 30), st.sampled_from(["busy", "no-answer", "congestion", "failed",
                                             "refused"]))),
    st.tuples(st.just("answer"), st.tuples(st.integers(0, 30),
                                           st.sampled_from(["unconfirmed", "declined",
                                                            "hung up"]))),
    st.tuples(st.just("database-fails"), st.integers(1, 5)),
    st.tuples(st.just("caller-left"), st.none()),
    st.tuples(st.just("restart"), st.none()),
    st.tuples(st.just("second-alarm"), st.none()),
)


class World:
    """One server's coordinator and guard over a database that outlives restarts."""

    def __init__(self, stages=True, **config):
        self.rig = Rig(tempfile.mkdtemp(), **config)
        add_household(self.rig.db, 1)
        add_household(self.rig.db, 2)
        self.clock = self.rig.clock
        self.link_up = True
        self.refusing = None      # None: accepting; else the refusal's reason code
        self.boot(self.rig.ami, self.rig.coordinator)

    def boot(self, ami, coordinator):
        self.ami = ami
        self.coordinator = coordinator
        self.guard = SilenceGuard(coordinator, clock=self.clock, every=GUARD_EVERY)
        self.guard.start()
        self.apply_link()

    def apply_link(self):
        self.ami.connected = self.link_up
        self.ami.refuse_with = None if self.link_up else AMINotConnected
        self.ami.refuse_calls = (None if self.refusing is None else
                                 (self.refusing[0], "Asterisk is shutting down"))

    def can_place_calls(self):
        return self.link_up and self.refusing is None

    def pending(self):
        return [c for c in self.ami.calls if not c.deferred.called]

    def restart(self):
        self.guard.stop()
        self.coordinator.stop()
        ami = FakeAMI()
        recorder = AlarmRecorder(self.rig.sync, clock=self.clock)
        coordinator = AlarmCoordinator(
            self.rig.coordinator.dialer, ami, recorder, self.rig.config, self.clock,
            hotline_number="12345", kick=ami.kick, room_size=lambda room: defer.succeed(1))
        self.boot(ami, coordinator)
        coordinator.recover_open_alarms()

    def do(self, action, arg):
        if action == "advance":
            self.clock.advance(arg)
        elif action == "link-down":
            self.link_up = False
            self.apply_link()
            for call in self.pending():
                call.deferred.errback(AMIConnectionLost("link dropped"))
        elif action == "link-up":
            self.link_up = True
            self.apply_link()
            self.ami.connect()  # those waiting for the link are told
        elif action == "refusing":
            self.refusing = (arg,)
            self.apply_link()
        elif action == "accepting":
            self.refusing = None
            self.apply_link()
        elif action == "outcome":
            pending = self.pending()
            if pending:
                call = pending[arg[0] % len(pending)]
                if arg[1] == "refused":
                    call.deferred.callback(OriginateResult(call.channel_id, "failed", None,
                                                           "refused"))
                else:
                    call.finish(arg[1])
        elif action == "answer":
            pending = self.pending()
            if pending:
                call = pending[arg[0] % len(pending)]
                alarm_id = call.variables["SWITCHBOARD_ALARM"]
                call.finish("answered")
                self.coordinator.answered(alarm_id, call.channel_id)
                if arg[1] == "declined":
                    self.coordinator.decline(alarm_id, call.channel_id)
                else:
                    self.coordinator.unconfirmed(alarm_id, call.channel_id, arg[1])
        elif action == "database-fails":
            self.rig.sync.fail_next = arg
        elif action == "caller-left":
            for alarm in self.coordinator.open_alarms():
                self.coordinator.caller_left(alarm.id)
        elif action == "restart":
            self.restart()
        elif action == "second-alarm":
            self.coordinator.raise_alarm("87650020", household(2, 3, own=20)).addErrback(
                lambda _: None)


class InvariantTests(SynchronousTestCase):
    # On PostgreSQL (the second pass, tests/databases.py) fewer examples: each
    # makes a schema, and the property is the coordinator's, not the SQL's.
    @settings(max_examples=25 if databases.ON_POSTGRES else 150, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(ACTIONS, max_size=60))
    def test_never_silent_while_calls_can_be_placed(self, actions):
        world = World()
        world.coordinator.raise_alarm("87650001", household(1, 3)).addErrback(lambda _: None)
        quiet_since = {}
        for action, arg in actions + [("link-up", None), ("accepting", None)] + \
                [("advance", 5.0)] * 12:
            world.do(action, arg)
            now = world.clock.seconds()
            for alarm in world.coordinator.open_alarms():
                if alarm.confirmed or alarm.live_legs() or not world.can_place_calls():
                    quiet_since[alarm.id] = now
                    continue
                since = quiet_since.setdefault(alarm.id, now)
                self.assertLessEqual(
                    now - since, LONGEST_SILENCE + 0.001,
                    f"alarm {alarm.id} silent for {now - since:.1f} s after {actions!r}")
        self.flushLoggedErrors(AMIConnectionLost, AMINotConnected, RuntimeError)


class GuardTests(SynchronousTestCase):
    def setUp(self):
        self.world = World()
        self.coordinator = self.world.coordinator
        self.ami = self.world.ami

    def test_an_alarm_with_nothing_ringing_and_nothing_due_is_rung(self):
        alarm = self.successResultOf(self.coordinator.raise_alarm("87650001", household(1, 2)))
        # Lose every leg and every timer, as a bug would.
        for call in list(self.ami.calls):
            leg = alarm.legs[call.channel_id]
            leg.state = "no-answer"
        alarm.cancel_timers()
        self.assertTrue(self.coordinator.silent(alarm))
        calls = len(self.ami.calls)
        self.world.clock.advance(GUARD_EVERY)
        self.assertEqual([c.channel for c in self.ami.calls[calls:]], ["PJSIP/87650190"])
        self.assertEqual(self.world.guard.rung, 1)
        self.assertFalse(self.coordinator.silent(alarm))
        from tests.test_alarm_support import timeline
        self.assertIn("silent", [k for k, _, _ in timeline(self.world.rig.db, alarm.id)])

    def test_ringing_or_due_soon_is_not_silent(self):
        alarm = self.successResultOf(self.coordinator.raise_alarm("87650001", household(1, 1)))
        self.assertFalse(self.coordinator.silent(alarm), "a neighbour rings")
        self.ami.calls[0].finish("busy")
        self.assertFalse(self.coordinator.silent(alarm), "the retry is due in 10 s")
        self.world.clock.advance(GUARD_EVERY)
        self.assertEqual(self.world.guard.rung, 0)

    def test_without_a_link_the_guard_only_says_so(self):
        alarm = self.successResultOf(self.coordinator.raise_alarm("87650001", household(1, 1)))
        alarm.legs[self.ami.calls[0].channel_id].state = "no-answer"
        alarm.cancel_timers()
        self.world.link_up = False
        self.world.apply_link()
        self.world.clock.advance(GUARD_EVERY)
        self.assertEqual((self.world.guard.rung, len(self.ami.calls)), (0, 1))
