"""
Legs placed again after the AMI link lost the outcome of their first call.

Such a retry keeps the first call's channel id, and Asterisk refuses a
channel id in use: a refused retry may mean that the first call is still
ringing the neighbour (or has been answered). Asterisk is asked; while that
call is up the leg follows it, so the phone is not rung a third time, and
once it is gone unanswered the leg counts as not answered.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.python.failure import Failure

from alarm.state import NO_ANSWER, RINGING, CallRefused


class FirstCalls:
    """
    The coordinator's handling of refused retries. Expects of its host:
    C{channel_state}, C{follow_every}, C{log}, C{_legs}, C{_set()},
    C{_event()}, C{_later()}, C{_after_leg()} and C{_leg_error()}.
    """

    def _look_for_first_call(self, leg, why):
        """
        A resumed leg was not placed. Asterisk refuses a channel id in use,
        so the call the link lost may still be up: if it is, the leg
        follows it; if not (or nobody can tell), the leg has failed.
        """
        d = self._first_call_state(leg)

        def decided(state):
            if not self._current(leg):
                return
            if state is None:
                # Nothing is up with that id: the refusal was Asterisk's own
                # trouble, retried like a call that could not be placed.
                self._not_placed(Failure(CallRefused(why or "retry refused")), leg)
                return
            leg.following = True
            self._event(leg.alarm, RINGING, leg=leg,
                        detail=f"{leg.stage}: the call placed before the AMI link dropped "
                               f"is still up ({state})")
            self._later(leg.alarm, self.follow_every, self._follow_first_call, leg)

        d.addCallback(decided)
        d.addErrback(self._leg_error, leg)

    def _follow_first_call(self, leg):
        """Look again at the first call of C{leg}: once it is gone unanswered, so is the leg."""
        if not self._current(leg):
            return
        d = self._first_call_state(leg, unknown="unknown")

        def looked(state):
            if not self._current(leg):
                return
            if state is None:
                self._first_call_ended(leg)
            else:
                self._later(leg.alarm, self.follow_every, self._follow_first_call, leg)

        d.addCallback(looked)
        d.addErrback(self._leg_error, leg)

    def _first_call_state(self, leg, unknown=None):
        """
        Deferred state of the channel with C{leg}'s id, L{None} if there is
        none; C{unknown} when Asterisk cannot be asked.
        """
        if self.channel_state is None:
            return defer.succeed(unknown)
        try:
            d = self.channel_state(leg.id)
        except Exception:
            d = defer.fail()

        def cannot_ask(failure):
            self.log.warn("ALARM {id}: cannot ask Asterisk about {leg}: {error}",
                          id=leg.alarm.id, leg=leg.id, error=failure.getErrorMessage())
            return unknown

        return d.addErrback(cannot_ask)

    def _first_call_ended(self, leg):
        self._set(leg, NO_ANSWER, detail="the call placed before the AMI link dropped ended")
        self._after_leg(leg)

    def note_hangup(self, uniqueid) -> None:
        """
        Asterisk hung up a channel (AMI C{Hangup}: C{Uniqueid}); a leg that
        follows that first call, still ringing when it is gone, was not
        answered. (Other legs learn their outcome from their Originate.)
        """
        leg = self._legs.get(uniqueid)
        if leg is not None and leg.following and self._current(leg):
            self._first_call_ended(leg)

    def _current(self, leg) -> bool:
        """C{leg} is still the one ringing for its id, in an alarm nobody has confirmed."""
        alarm = leg.alarm
        return (leg.state == RINGING and alarm.legs.get(leg.id) is leg and alarm.active
                and not alarm.confirmed)
