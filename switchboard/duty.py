"""
What the duty board reads from the #9 alarm and does to it, declared by the
core so that the alarm can offer it and the board use it without either
importing the other (features never import one another:
L{switchboard.features}).

The alarm's running part keeps an object providing L{IAlarmDesk} as one of
its attributes; the board finds it among the running features
(L{find}). Everything the desk hands out is plain data (dicts of str, int,
float, None, lists): the board turns it into JSON once and sends the same
bytes to every browser watching.

An alarm's view::

    {"id": 12, "status": "open" | "confirmed" | "closed" | "cancelled" | "native",
     "caller": "...", "caller_number": "+86..." | None, "address": "...",
     "residents": "...", "notes": "...", "opened": POSIX, "confirmed_at": POSIX | None,
     "ended_at": POSIX | None, "outcome": "...",
     "acknowledged": {"by": "NAME", "at": POSIX} | None,
     "legs": [{"id": "...", "number": "+86...", "stage": "neighbours", "state": "ringing",
               "changed": POSIX, "attempt": 1}, ...],
     "next_stage": {"name": "duty", "at": POSIX} | None}

A timeline entry::

    {"alarm_id": 12, "kind": "confirmed", "at": POSIX, "number": "...", "detail": "..."}

Leg states: C{ringing}, C{answered}, C{confirmed} (pressed 1: coming),
C{declined} (pressed 2), C{unconfirmed} (answered, no key), C{busy},
C{no-answer}, C{failed}, C{cancelled}.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface

#: How staff may close an alarm from the board.
OUTCOMES = ("emergency", "false-alarm", "test")


class IAlarmDesk(Interface):
    """The #9 alarm as the duty office sees and handles it."""

    outcomes = Attribute("The outcomes an alarm may be closed with (L{OUTCOMES}).")

    def open_alarms():
        """The views of the alarms open now, newest first (a list; no I/O)."""

    def watch(listener):
        """
        Call C{listener(entry)} on the reactor for every change of every
        alarm from now on (the timeline entry: cheap, on the #9's path;
        the views are read when they are shown, L{alarm_view}). Returns a
        callable that stops it.
        """

    def alarm_view(alarm_id):
        """The view of the alarm C{alarm_id} now (ended ones for a while), or None."""

    def recent(limit):
        """A Deferred firing with the last C{limit} alarms' views, each with its
        C{"timeline"} (a list of entries), newest first (read on the database's pool)."""

    def acknowledge(alarm_id, who):
        """C{who} is handling alarm C{alarm_id}: on its timeline. Deferred -> bool (open?)."""

    def note(alarm_id, who, text):
        """A note by C{who} on the alarm's timeline. Deferred -> bool (alarm known?)."""

    def ring(alarm_id, who, number):
        """
        Ring one more phone for the alarm now (a relative, a neighbour not
        registered), asked by C{who}: answered, it hears who needs help and
        presses 1 to join, as a neighbour. Deferred -> bool (was open?);
        fails with ValueError for a number that is not one.
        """

    def call_back(alarm_id, who):
        """
        Ring the caller again and put them back with the responders (their
        line dropped), asked by C{who}; the request and the call's outcome
        go on the timeline. Deferred -> bool (asked for?).
        """

    def close(alarm_id, who, outcome, text=""):
        """
        End the alarm (escalation stops, phones still ringing hang up) with
        C{outcome} (one of L{OUTCOMES}), by C{who}. Deferred -> bool (was open?).
        """


class IRequestDesk(Interface):
    """The residents' requests to be called back (*0, voicemails left at the offices)."""

    def snapshot():
        """A Deferred firing with C{{"open": [...], "done": [...], "overdue": N}}, each
        request a dict (id, kind, caller, office, office_label, requested_at, overdue,
        recording, done_by, note, called_back_at...)."""

    def watch(listener):
        """Call C{listener(request_id, what)} for each new, done or called-back request;
        returns a callable that stops it."""

    def done(request_id, who, note):
        """Mark it done with a note, by C{who}: a Deferred (fails with LookupError)."""

    def call_back(request_id, who, from_phone):
        """Ring C{from_phone} (staff), then the resident from it: a Deferred firing once
        asked for (fails with LookupError, or ValueError for a phone that is not one)."""

    def recording(request_id):
        """A Deferred firing with the voicemail's file on this host, or None."""


class ICallDesk(Interface):
    """The hotline's recent calls, for the duty office to see who called and where it went."""

    def recent(limit):
        """A Deferred firing with the latest C{limit} calls, newest first, each a dict
        (id, caller, hotline, started, ended: ISO 8601 UTC; outcome, destination,
        path: the steps the call took)."""

    def watch(listener):
        """Call C{listener(call_id)} for each call recorded as it ends; returns a
        callable that stops it."""


def find(services, interface=IAlarmDesk):
    """The first provider of C{interface} among the attributes of the running C{services}."""
    for service in services:
        for value in getattr(service, "__dict__", {}).values():
            if interface.providedBy(value):
                return value
    return None
