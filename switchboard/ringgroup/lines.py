"""
The second way into Asterisk: the caller's own FastAGI session.

A feature may lend a ring group the FastAGI session of the person the group
rings for, between two commands of its own (the #9 caller waits for the
cancel key in short C{WAIT FOR DIGIT}s until a neighbour confirms). When the AMI link is down, a leg that cannot be originated
through AMI is placed from there with the dialplan application C{Originate}
(asynchronous, C{a}), with the same channel variables: the phone rings, and
whoever answers reaches the feature's script over FastAGI (which needs no
AMI). Its outcome is known only if it is answered; a leg not answered within
the ring time and a margin counts as not answered.
"""

from __future__ import annotations

from twisted.logger import Logger

# Characters with a meaning inside Originate's arguments and its v() option.
_SEPARATORS = str.maketrans("", "", ",()^|\"\\\r\n\0")


def _plain(text) -> str:
    return str(text or "").translate(_SEPARATORS)


class CallerLines:
    """The sessions lent to ring groups (e.g. #9 callers between two slices), by group key."""

    log = Logger()

    def __init__(self):
        self._sessions: dict = {}

    def hold(self, key, session) -> None:
        """C{session} may place calls for the group C{key} until L{release}."""
        self._sessions.setdefault(str(key), []).append(session)

    def release(self, key, session) -> None:
        sessions = self._sessions.get(str(key), [])
        if session in sessions:
            sessions.remove(session)
        if not sessions:
            self._sessions.pop(str(key), None)

    def line_for(self, key):
        """A session lent to the group C{key} still up, or None."""
        for session in self._sessions.get(str(key), []):
            if not getattr(session, "hungup", False):
                return session
        return None

    @staticmethod
    def originate_args(dial, variables, *, context, exten, ring_timeout, caller_number,
                       caller_name):
        """
        The arguments of C{Originate} placing a call to C{dial} with the
        channel C{variables} (a dict) as the AMI originate would.
        """
        variables = "^".join(f"{name}={_plain(value)}" for name, value in variables.items())
        options = f"av({variables})n({_plain(caller_name)})"
        if caller_number:
            options += f"c({_plain(caller_number)})"
        return (_plain(dial), "exten", context, exten, "1",
                str(max(1, int(round(ring_timeout)))), options)
