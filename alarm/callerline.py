"""
The second way into Asterisk: the caller's own FastAGI session.

While nobody has confirmed, the #9 caller waits in the alarm's room in short
slices (a ConfBridge user profile with a C{timeout}), so between two slices
the server may run commands on the caller's channel. When the AMI link is
down, a leg that cannot be originated through AMI is placed from there with
the dialplan application C{Originate} (asynchronous, C{a}), with the same
channel variables: the phone rings, a neighbour who answers reaches the
responder script over FastAGI (which needs no AMI) and joins the room. Its
outcome is known only if it is answered; a leg not answered within the ring
time and a margin counts as not answered.
"""

from __future__ import annotations

from twisted.logger import Logger

# Characters with a meaning inside Originate's arguments and its v() option.
_SEPARATORS = str.maketrans("", "", ",()^|\"\\\r\n\0")


def _plain(text) -> str:
    return str(text or "").translate(_SEPARATORS)


class CallerLines:
    """The sessions of #9 callers waiting between two slices, by alarm id."""

    log = Logger()

    def __init__(self):
        self._sessions: dict = {}

    def hold(self, alarm_id, session) -> None:
        """C{session} (a caller of the alarm) may place calls until L{release}."""
        self._sessions.setdefault(str(alarm_id), []).append(session)

    def release(self, alarm_id, session) -> None:
        sessions = self._sessions.get(str(alarm_id), [])
        if session in sessions:
            sessions.remove(session)
        if not sessions:
            self._sessions.pop(str(alarm_id), None)

    def line_for(self, alarm_id):
        """A session of the alarm's callers still up, or None."""
        for session in self._sessions.get(str(alarm_id), []):
            if not getattr(session, "hungup", False):
                return session
        return None

    @staticmethod
    def originate_args(leg, *, context, exten, ring_timeout, caller_number, caller_name):
        """The arguments of C{Originate} placing C{leg} as the AMI originate would."""
        alarm = leg.alarm
        variables = "^".join(f"{name}={_plain(value)}" for name, value in (
            ("SWITCHBOARD_ALARM", alarm.id), ("SWITCHBOARD_LEG", leg.id),
            ("SWITCHBOARD_ROOM", alarm.room), ("SWITCHBOARD_TARGET", leg.target),
            ("SWITCHBOARD_STAGE", leg.stage)))
        options = f"av({variables})n({_plain(caller_name)})"
        if caller_number:
            options += f"c({_plain(caller_number)})"
        return (_plain(leg.dial), "exten", context, exten, "1",
                str(max(1, int(round(ring_timeout)))), options)
