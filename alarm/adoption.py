"""
Where an alarm stood, read from its timeline on record: what an instance
needs to carry on with an alarm another instance held (its lease ran out,
L{switchboard.leases}) without ringing anyone twice.

Pure: the timeline's entries in, a L{Standing} out; the coordinator does
the rest (L{alarm.coordinator.AlarmCoordinator.adopt}).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alarm.state import ANSWERED, RINGING

# Timeline kinds that end a leg (alarm.changes lists them all).
_LEG_ENDINGS = {"confirmed", "declined", "unconfirmed", "busy", "no-answer", "failed",
                "cancelled", "left"}
# Kinds saying a stage's phones were rung (detail: "<stage name>: why" or "<stage name> why").
_STAGE_RUNG = {"escalated", "silent"}


@dataclass(frozen=True)
class TimelineEntry:
    """One entry of an alarm's timeline, as on record."""

    kind: str
    leg: str | None = None
    number: str | None = None
    detail: str = ""


@dataclass
class Standing:
    """
    An alarm's standing: legs whose call may still be up (C{ringing} and
    C{answered}: id -> (tag, number)), the indexes of the escalation stages
    already rung, whether its first stage was rung at once (nobody to ring
    first), and whether someone confirmed.
    """

    ringing: dict = field(default_factory=dict)
    answered: dict = field(default_factory=dict)
    stages_rung: set = field(default_factory=set)
    at_once: bool = False
    confirmed: bool = False


def _tag(detail: str) -> str:
    """The leg's tag in a C{ringing} entry's detail ("neighbours, attempt 2" -> "neighbours")."""
    return detail.split(", attempt ")[0].split(": the call placed before")[0]


def _stage_index(detail: str, names: list) -> int | None:
    # The longest name first: "duty night" is not "duty".
    for index, name in sorted(enumerate(names), key=lambda p: -len(p[1])):
        if detail == name or detail.startswith((name + ":", name + " ")):
            return index
    return None


def standing(entries, stage_names) -> Standing:
    """Read C{entries} (L{TimelineEntry}, oldest first) against the stages C{stage_names}."""
    names = list(stage_names)
    found = Standing()
    for entry in entries:
        kind, leg = entry.kind, entry.leg
        if kind == RINGING and leg:
            found.answered.pop(leg, None)
            found.ringing[leg] = (_tag(entry.detail or ""), entry.number or "")
        elif kind == ANSWERED and leg:
            was = found.ringing.pop(leg, None)
            found.answered[leg] = was or ("unknown", entry.number or "")
        elif kind in _LEG_ENDINGS and leg:
            found.ringing.pop(leg, None)
            found.answered.pop(leg, None)
            if kind == "confirmed":
                found.confirmed = True
        elif kind in _STAGE_RUNG:
            index = _stage_index(entry.detail or "", names)
            if index is not None:
                found.stages_rung.add(index)
        elif kind == "no-neighbours":
            found.at_once = True
    return found
