"""
The #9 alarm as the duty board sees and handles it: L{AlarmDesk} provides
L{switchboard.duty.IAlarmDesk} over the coordinator (what is happening
now, through L{alarm.changes.AlarmChanges}) and the database (what
happened). Staff actions go through the same changes as everything else,
so they land on the timeline (L{alarm.changes.Timeline}) and on every
board watching, attributed to the staff member.
"""

from __future__ import annotations

from sqlalchemy import select
from twisted.internet import defer
from zope.interface import implementer

from alarm.changes import AlarmChange
from alarm.models import Alarm, AlarmEvent
from switchboard.duty import OUTCOMES, IAlarmDesk

ACKNOWLEDGED = "acknowledged"
NOTE = "note"
CALLING_BACK = "calling-back"    # staff asked for the caller to be rung (who)
CALLED_BACK = "called-back"      # and how that call went (the caller's number)
#: The kinds after which the escalation is timed from then, not from the opening
#: (the coordinator rings the first stage at once: L{AlarmCoordinator._schedule}).
_AT_ONCE = ("no-neighbours", "recovered")
#: How an outcome reads on the timeline and in C{switchboard alarms}.
OUTCOME_TEXT = {"emergency": "real emergency", "false-alarm": "false alarm", "test": "test"}
#: Longest staff note kept (the timeline's detail column is 300 characters).
NOTE_LIMIT = 250


def _seconds(stored) -> float | None:
    """A stored naive UTC datetime as POSIX seconds."""
    if stored is None:
        return None
    from datetime import timezone
    return stored.replace(tzinfo=timezone.utc).timestamp()


def _clean(text, limit) -> str:
    """One line of at most C{limit} characters (control characters dropped)."""
    text = "".join(c if c.isprintable() else " " for c in str(text or ""))
    return " ".join(text.split())[:limit]


@implementer(IAlarmDesk)
class AlarmDesk:
    """
    @param coordinator: the L{AlarmCoordinator} (its alarms, changes, close).
    @param database: the L{switchboard.storage.Database} (L{recent}).
    @param ami: the AMI client (its C{originate}): L{call_back}.
    """

    outcomes = OUTCOMES

    def __init__(self, coordinator, database, ami=None):
        self.coordinator = coordinator
        self.database = database
        self.ami = ami
        self._acknowledged: dict = {}   # alarm id -> {"by", "at"}
        self._timed_from: dict = {}     # alarm id -> when its stages are timed from
        coordinator.changes.subscribe(self._remember)

    # Reading ------------------------------------------------------------------

    def open_alarms(self) -> list:
        alarms = sorted(self.coordinator.open_alarms(), key=lambda a: a.opened, reverse=True)
        return [self.view(a) for a in alarms if a.id is not None]

    def watch(self, listener):
        return self.coordinator.changes.subscribe(lambda change: listener(self.entry(change)))

    def alarm_view(self, alarm_id) -> dict | None:
        alarm = self.coordinator.alarm(alarm_id)
        return self.view(alarm) if alarm is not None and alarm.id is not None else None

    def _remember(self, change) -> None:
        if change.kind in _AT_ONCE:
            self._timed_from[change.alarm_id] = change.at
        elif change.kind == ACKNOWLEDGED and change.alarm_id not in self._acknowledged:
            self._acknowledged[change.alarm_id] = {"by": change.number, "at": change.at}
        elif change.alarm is not None and change.alarm.ended:
            # Off the board: nothing to time or show any more.
            self._timed_from.pop(change.alarm_id, None)
            self._acknowledged.pop(change.alarm_id, None)

    @staticmethod
    def entry(change) -> dict:
        return {"alarm_id": change.alarm_id, "kind": change.kind, "at": change.at,
                "number": change.number or "", "detail": change.detail or ""}

    def view(self, alarm) -> dict:
        household = alarm.household
        ended = alarm.ended
        return {
            "id": alarm.id, "status": alarm.status, "caller": alarm.caller_raw or "",
            "caller_number": alarm.caller_number, "address": alarm.address or "",
            "residents": household.residents if household is not None else "",
            "notes": household.notes if household is not None else "",
            "opened": alarm.opened, "confirmed_at": alarm.confirmed_at,
            "ended_at": None, "outcome": alarm.outcome if ended else "",
            "acknowledged": self._acknowledged.get(alarm.id),
            "legs": [{"id": leg.id, "number": leg.target, "stage": leg.tag, "state": leg.state,
                      "changed": leg.changed, "attempt": leg.attempt}
                     for leg in alarm.legs.values()] if alarm.group is not None else [],
            "next_stage": None if ended else self.next_stage(alarm),
        }

    def next_stage(self, alarm) -> dict | None:
        """The escalation stage due next and when, or None (confirmed, none left)."""
        if not alarm.active or alarm.confirmed:
            return None
        stages = self.coordinator.config.stages
        following = [i for i in range(len(stages)) if i not in alarm.stages_rung]
        if not following:
            return None
        stage = stages[following[0]]
        start = self._timed_from.get(alarm.id)
        due = (alarm.opened + stage.after if start is None
               else start + stage.after - stages[0].after)
        return {"name": stage.name, "at": due}

    def recent(self, limit=20) -> defer.Deferred:
        limit = max(1, min(int(limit), 200))

        def work(session):
            alarms = session.execute(select(Alarm).order_by(Alarm.id.desc())
                                     .limit(limit)).scalars().all()
            ids = [a.id for a in alarms]
            events: dict = {i: [] for i in ids}
            if ids:
                for e in session.execute(select(AlarmEvent).where(AlarmEvent.alarm_id.in_(ids))
                                         .order_by(AlarmEvent.id)).scalars():
                    events[e.alarm_id].append(
                        {"alarm_id": e.alarm_id, "kind": e.kind, "at": _seconds(e.at),
                         "number": e.number or "", "detail": e.detail or ""})
            return [{"id": a.id, "status": a.status, "caller": a.caller_raw or "",
                     "caller_number": a.caller_number, "address": a.address or "",
                     "opened": _seconds(a.opened_at), "confirmed_at": _seconds(a.confirmed_at),
                     "ended_at": _seconds(a.closed_at), "outcome": a.outcome or "",
                     "timeline": events[a.id]} for a in alarms]

        return self.database.run(work)

    def recover(self, alarm_ids) -> defer.Deferred:
        """
        After a restart: who acknowledged the alarms taken up again
        (C{alarm_ids}), read back from their timelines, so that the board
        still shows who is handling them.
        """
        ids = [int(i) for i in alarm_ids]

        def work(session):
            if not ids:
                return []
            return [(e.alarm_id, e.number, _seconds(e.at)) for e in session.execute(
                select(AlarmEvent).where(AlarmEvent.alarm_id.in_(ids),
                                         AlarmEvent.kind == ACKNOWLEDGED)
                .order_by(AlarmEvent.id)).scalars()]

        def remember(rows):
            for alarm_id, who, at in rows:
                self._acknowledged.setdefault(alarm_id, {"by": who or "", "at": at})
            return len(rows)

        return self.database.run(work).addCallback(remember)

    # Acting -------------------------------------------------------------------

    def _tell(self, alarm, kind, who, detail) -> None:
        self.coordinator.changes.tell(AlarmChange(alarm.id, alarm, kind,
                                                  self.coordinator.clock.seconds(),
                                                  number=_clean(who, 80), detail=detail))

    def acknowledge(self, alarm_id, who) -> defer.Deferred:
        alarm = self.coordinator.alarm(alarm_id)
        if alarm is None or not alarm.active:
            return defer.succeed(False)
        self._tell(alarm, ACKNOWLEDGED, who, "handling it")
        return defer.succeed(True)

    def note(self, alarm_id, who, text) -> defer.Deferred:
        alarm = self.coordinator.alarm(alarm_id)
        text = _clean(text, NOTE_LIMIT)
        if alarm is None or not text:
            return defer.succeed(False)
        self._tell(alarm, NOTE, who, text)
        return defer.succeed(True)

    def ring(self, alarm_id, who, number) -> defer.Deferred:
        number = self.coordinator.dialer.numbers.try_normalise(_clean(number, 40))
        if not number:
            return defer.fail(ValueError("not a phone number"))
        leg = self.coordinator.ring_one_more(alarm_id, number, f"staff: {_clean(who, 60)}")
        return defer.succeed(leg is not None)

    def call_back(self, alarm_id, who) -> defer.Deferred:
        """
        Ring the caller's number and, answered, put them back in the alarm's
        room (ConfBridge, the caller's profile, as on their #9): for a caller
        whose line dropped. The request and the call's outcome go on the
        timeline. Fires at once with whether the call was asked for.
        """
        alarm = self.coordinator.alarm(alarm_id)
        if alarm is None or not alarm.active or not alarm.caller_number or self.ami is None:
            return defer.succeed(False)
        coordinator = self.coordinator
        try:
            dial = coordinator.dialer.dial_string(alarm.caller_number,
                                                  coordinator.config.neighbour_trunk)
        except Exception:
            return defer.succeed(False)
        self._tell(alarm, CALLING_BACK, who, f"calling {alarm.caller_number} back")
        d = defer.maybeDeferred(
            self.ami.originate, dial, application="ConfBridge",
            data=f"{alarm.room},alarm_bridge,alarm_caller,alarm_caller_menu",
            caller_id=alarm.group.caller_id(), timeout=coordinator.config.ring_timeout)

        def ended(result):
            outcome = getattr(result, "outcome", None) or "failed"
            self._tell(alarm, CALLED_BACK, alarm.caller_number or "", outcome)

        def failed(failure):
            self._tell(alarm, CALLED_BACK, alarm.caller_number or "",
                       f"failed: {failure.getErrorMessage()}"[:200])

        d.addCallbacks(ended, failed)
        return defer.succeed(True)

    def close(self, alarm_id, who, outcome, text="") -> defer.Deferred:
        if outcome not in OUTCOME_TEXT:
            return defer.fail(ValueError(f"unknown outcome {outcome!r}"))
        alarm = self.coordinator.alarm(alarm_id)
        if alarm is None or not alarm.active:
            return defer.succeed(False)
        note = _clean(text, NOTE_LIMIT - 60)
        how = f"{OUTCOME_TEXT[outcome]}: closed by {_clean(who, 60)}" + (f": {note}" if note else "")
        return self.coordinator.close(alarm_id, how=how)

