"""
The in-memory state of alarms being handled: each alarm and its legs (one
originated call each: a neighbour, a duty phone...).
"""

from __future__ import annotations

from twisted.internet import defer

from alarm.models import CANCELLED, CLOSED, CONFIRMED, OPEN
from switchboard import ringgroup

# Leg states: the ring group's (switchboard.ringgroup), and the alarm's own.
RINGING = ringgroup.RINGING
ANSWERED = ringgroup.ANSWERED
LEG_CONFIRMED = "confirmed"
DECLINED = "declined"
UNCONFIRMED = "unconfirmed"   # answered, never pressed 1 (voicemail, fax, hung up)
BUSY = ringgroup.BUSY
NO_ANSWER = ringgroup.NO_ANSWER
FAILED = ringgroup.FAILED
LEG_CANCELLED = ringgroup.CANCELLED   # still ringing when the alarm ended: hung up

LIVE = ringgroup.LIVE
# Leg endings worth ringing the same phone again for.
UNANSWERED = (BUSY, NO_ANSWER, FAILED, UNCONFIRMED)

NEIGHBOURS = "neighbours"

CallRefused = ringgroup.CallRefused


class Leg(ringgroup.Leg):
    """
    One call placed for an alarm (a ring group's leg): its C{stage} is the
    leg's tag ("neighbours" or the escalation stage's name).
    """

    __slots__ = ("in_room",)

    def __init__(self, id, group, tag, target, dial, attempt=1):
        super().__init__(id, group, tag, target, dial, attempt)
        self.in_room = False      # confirmed, and in the alarm's room

    @property
    def alarm(self):
        return self.group.subject

    @property
    def stage(self):
        return self.tag


class ActiveAlarm:
    """
    An alarm this server is handling. C{id} and C{room} are known once the
    alarm is on record (L{when_ready}). Its legs and timers are those of
    its ring group, C{group} (set by the coordinator).
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
        self.callers = 1                # present callers; None when unknown (recovered)
        self.recovered = False
        self.stages_rung: set = set()
        self.group = None               # its ring group: legs, escalation and retry timers
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

    @property
    def legs(self) -> dict:
        return self.group.legs

    @property
    def retries(self) -> int:
        """Retries waiting for their time."""
        return self.group.retries

    def live_legs(self) -> list:
        return self.group.live_legs()

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
        """Escalation, repeats and retries: none fires any more."""
        self.group.cancel_timers()

    def __repr__(self) -> str:
        return f"<ActiveAlarm {self.id} {self.status} {self.address or self.caller_raw!r}>"
