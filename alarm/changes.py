"""
Every change of the alarms, in one place: the coordinator tells
L{AlarmChanges}, and whoever wants to know subscribes (the timeline on
record, L{Timeline}; a duty board, metrics, a text message to the duty
officer...).

Kinds: C{opened} (on record: C{alarm} is None when it was handed to the
dialplan at once, followed by C{native}), C{joined}, C{no-neighbours},
C{recovered}, C{waiting}; per leg C{ringing}, C{answered}, C{confirmed}
(the alarm is confirmed by then), C{declined}, C{unconfirmed}, C{busy},
C{no-answer}, C{failed}, C{cancelled}, C{retry}, C{left}; C{escalated},
C{silent} (rung by the safety net), C{caller-left}; and how it ended,
C{cancelled} or C{closed}.
"""

from __future__ import annotations

from twisted.logger import Logger

OPENED = "opened"


class AlarmChange:
    """
    One change: C{kind} at POSIX time C{at}, of the alarm C{alarm_id}
    (C{alarm}, its L{alarm.state.ActiveAlarm}, or None), about C{leg} (a
    leg, or None) or the phone C{number}, with a C{detail} for people.
    """

    __slots__ = ("alarm_id", "alarm", "kind", "at", "leg", "number", "detail")

    def __init__(self, alarm_id, alarm, kind, at, leg=None, number=None, detail=""):
        self.alarm_id = alarm_id
        self.alarm = alarm
        self.kind = kind
        self.at = at
        self.leg = leg
        self.number = leg.target if leg is not None else number
        self.detail = detail

    def __repr__(self) -> str:
        return f"<AlarmChange {self.alarm_id} {self.kind} {self.number or ''} {self.detail!r}>"


class AlarmChanges:
    """
    Listeners (callables taking an L{AlarmChange}), told each change in the
    order they subscribed, on the reactor: they must not block. One that
    raises is logged; the others are still told.
    """

    log = Logger()

    def __init__(self):
        self._listeners: list = []

    def subscribe(self, listener):
        """Tell C{listener} every change from now on; returns what unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def tell(self, change) -> None:
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:
                self.log.failure("alarm change listener {listener} on {change}",
                                 listener=listener, change=change)


class Timeline:
    """
    The listener writing changes to the alarm's timeline on record
    (L{alarm.recorder.AlarmRecorder.event}). The opening is not written
    again: it went on record with the alarm's row (C{open_alarm}).
    """

    def __init__(self, recorder):
        self.recorder = recorder

    def __call__(self, change) -> None:
        if change.kind == OPENED:
            return
        self.recorder.event(change.alarm_id, change.kind, at=change.at,
                            leg=change.leg.id if change.leg is not None else None,
                            number=change.number, detail=change.detail)
