"""
The in-memory state of alarms being handled: each alarm and its legs (one
originated call each: a neighbour, a duty phone...).
"""

from __future__ import annotations

from twisted.internet import defer

from alarm.models import CANCELLED, CLOSED, CONFIRMED, OPEN

# Leg states.
RINGING = "ringing"
ANSWERED = "answered"
LEG_CONFIRMED = "confirmed"
DECLINED = "declined"
UNCONFIRMED = "unconfirmed"   # answered, never pressed 1 (voicemail, fax, hung up)
BUSY = "busy"
NO_ANSWER = "no-answer"
FAILED = "failed"
LEG_CANCELLED = "cancelled"   # still ringing when the alarm ended: hung up

LIVE = (RINGING, ANSWERED)
# Leg endings worth ringing the same phone again for.
UNANSWERED = (BUSY, NO_ANSWER, FAILED, UNCONFIRMED)

NEIGHBOURS = "neighbours"


class CallRefused(Exception):
    """Asterisk did not place a leg's call (it refused the originate)."""


class Leg:
    """One call placed for an alarm; C{id} is also the channel's unique id."""

    __slots__ = ("id", "alarm", "stage", "target", "dial", "attempt", "state", "channel",
                 "changed", "in_room", "resumed", "following", "quiet", "via_caller")

    def __init__(self, id, alarm, stage, target, dial, attempt=1):
        self.id = id
        self.alarm = alarm
        self.stage = stage        # "neighbours" or the escalation stage's name
        self.target = target      # E.164 or channel as configured
        self.dial = dial          # the channel originated
        self.attempt = attempt
        self.state = RINGING
        self.channel = None       # the channel's name once Asterisk reports it
        self.changed = None       # POSIX time of the last state change
        self.in_room = False
        # Placed again, with the same id, after the AMI link lost the outcome
        # of the first call, which may still be up.
        self.resumed = False
        self.following = False    # ... and found up: the leg is that first call
        # A retry of a call not placed: its attempt is not written down again.
        self.quiet = False
        self.via_caller = False   # placed through the #9 caller's line (no AMI)

    @property
    def live(self) -> bool:
        return self.state in LIVE

    def __repr__(self) -> str:
        return f"<Leg {self.id} {self.stage} {self.target} {self.state}>"


class ActiveAlarm:
    """
    An alarm this server is handling. C{id} and C{room} are known once the
    alarm is on record (L{when_ready}).
    """

    def __init__(self, *, keys, household, caller_raw, caller_number, address, opened):
        self.id = None
        self.room = None
        self.keys = keys                # what de-duplicates it: household, caller number
        self.household = household      # HouseholdSnapshot or None (unregistered, recovered)
        self.household_id = household.id if household is not None else None
        self.caller_raw = caller_raw
        self.caller_number = caller_number
        self.address = address
        self.opened = opened
        self.status = "opening"
        self.confirmed_at = None
        self.outcome = ""
        self.legs: dict = {}
        self.callers = 1                # present callers; None when unknown (recovered)
        self.recovered = False
        self.stages_rung: set = set()
        self.timers: list = []          # escalation, repeats and retries to cancel
        self.retries = 0                # retries waiting for their time
        self.legs_made = 0
        self._waiters: list = []
        self._ready = None

    @property
    def confirmed(self) -> bool:
        return self.status == CONFIRMED

    @property
    def ended(self) -> bool:
        return self.status in (CANCELLED, CLOSED, "failed")

    @property
    def active(self) -> bool:
        return self.status in (OPEN, CONFIRMED)

    @property
    def cancelled(self) -> bool:
        return self.status == CANCELLED

    def live_legs(self) -> list:
        return [leg for leg in self.legs.values() if leg.live]

    def in_room(self) -> list:
        return [leg for leg in self.legs.values() if leg.in_room]

    def when_ready(self) -> defer.Deferred:
        """Fires with this alarm once it is on record (or fails if it could not be)."""
        if self._ready is not None:
            ok, value = self._ready
            return defer.succeed(value) if ok else defer.fail(value)
        d = defer.Deferred()
        self._waiters.append(d)
        return d

    def _fire_ready(self, ok: bool, value) -> None:
        self._ready = (ok, value)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            if ok:
                d.callback(value)
            else:
                d.errback(value)

    def cancel_timers(self) -> None:
        for call in self.timers:
            if call.active():
                call.cancel()
        self.timers = []
        self.retries = 0

    def __repr__(self) -> str:
        return f"<ActiveAlarm {self.id} {self.status} {self.address or self.caller_raw!r}>"
