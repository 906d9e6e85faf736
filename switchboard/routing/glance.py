"""
Today's routing at a glance: what each office is now (open, closed, or
closed for a holiday) and when that next changes, for the duty board and
C{switchboard status}. Pure functions of a L{Routing} and a time, like the
router: the same answer C{switchboard route} would give.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Optional

from switchboard.routing.model import RINGING, VOICEMAIL, Destination, Routing
from switchboard.routing.schedule import Holiday

OPEN = "open"
CLOSED = "closed"
HOLIDAY = "holiday"  # closed because the day is a holiday

#: How far ahead a next change is looked for (a department closed for a long holiday).
HORIZON_DAYS = 14


def state_at(destination: Destination, local: datetime, calendar) -> tuple[str, str]:
    """C{(state, why)} of C{destination} at the wall-clock time C{local}."""
    hours = destination.hours
    if hours is None:
        return OPEN, "no opening hours: always rung"
    status = hours.status(local, calendar)
    if status.open:
        return OPEN, status.why
    special = calendar.special(local.date())
    if isinstance(special, Holiday) and hours.holidays != "weekly":
        return HOLIDAY, status.why
    return CLOSED, status.why


def _instants(destination, local, calendar, horizon):
    """Every time within C{horizon} days of C{local} at which the state may change."""
    zone = local.tzinfo
    found = set()
    for offset in range(-1, horizon + 1):
        day = local.date() + timedelta(days=offset)
        midnight = datetime.combine(day, time(0), tzinfo=zone)
        found.add(midnight)
        ranges, _ = destination.hours.day(day, calendar)
        for r in ranges:
            found.add(midnight + timedelta(minutes=r.start))
            end = r.end if r.end > r.start else r.end + 1440
            found.add(midnight + timedelta(minutes=end))
    return sorted(t for t in found if t > local)


def next_change(destination: Destination, local: datetime, calendar,
                horizon: int = HORIZON_DAYS) -> Optional[tuple[datetime, str]]:
    """
    C{(when, state then)} of the next opening or closing after C{local},
    or L{None} (none in sight). A holiday ending at midnight on a closed
    day is no change: staff want to know when calls are answered again.
    """
    if destination.hours is None:
        return None
    now, _ = state_at(destination, local, calendar)
    for instant in _instants(destination, local, calendar, horizon):
        state, _ = state_at(destination, instant, calendar)
        if (state == OPEN) != (now == OPEN):
            return instant, state
    return None


def glance(routing: Routing, local: datetime) -> list[dict]:
    """
    One entry per destination that is rung (departments, outside services,
    the operator), in the file's order:
    C{{"name", "label", "kind", "state", "why" (as the router says it at
    C{local}), "next_change" (ISO 8601,
    local time, or None), "next_state", "closed_to" (the label of where
    calls go while it is closed, or None)}}.
    """
    entries = []
    for destination in routing.destinations.values():
        if destination.kind not in RINGING:
            continue
        state, why = state_at(destination, local, routing.calendar)
        change = next_change(destination, local, routing.calendar)
        closed = routing.destinations.get(destination.closed) if destination.closed else None
        entries.append({
            "name": destination.name, "label": destination.label, "kind": destination.kind,
            "state": state, "why": why,
            "next_change": change[0].isoformat() if change else None,
            "next_state": change[1] if change else None,
            "closed_to": closed.label if closed is not None else None,
        })
    return entries


def mailbox_labels(routing: Routing) -> dict:
    """Mailbox (C{box@context}) -> the label of the voicemail destination that has it."""
    labels: dict = {}
    for destination in routing.destinations.values():
        if destination.kind == VOICEMAIL and destination.mailbox:
            labels.setdefault(destination.mailbox, destination.label)
    return labels
