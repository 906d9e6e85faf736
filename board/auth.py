"""
Who is logged in, and who may try: the board's sessions (L{Sessions}) and
its lockout of failed logins (L{Lockout}). Both in memory, on an injected
clock: a restart of the server logs everyone out, which the duty office
notices at once (the page says so and shows the login).
"""

from __future__ import annotations

import hmac
import secrets


def token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def same(a, b) -> bool:
    """Whether two tokens are equal, in constant time (never equal when either is missing)."""
    if not a or not b:
        return False
    return hmac.compare_digest(str(a).encode("utf-8"), str(b).encode("utf-8"))


class Session:
    """One login: its staff member, its CSRF token, and when it ends."""

    __slots__ = ("token", "member", "csrf", "started", "expires")

    def __init__(self, member, started, expires):
        self.token = token()
        self.member = member
        self.csrf = token()
        self.started = started
        self.expires = expires


class Sessions:
    """
    The sessions open, by their token (the cookie's value). A session ends
    C{lifetime} seconds after login (a duty shift and some), or when its
    staff member logs out or is removed.
    """

    def __init__(self, clock, lifetime: float = 14 * 3600.0, limit: int = 10000):
        self.clock = clock
        self.lifetime = lifetime
        self.limit = limit
        self._open: dict = {}

    def start(self, member) -> Session:
        now = self.clock.seconds()
        if len(self._open) >= self.limit:
            self.expire()
            while len(self._open) >= self.limit:  # the oldest go first
                del self._open[next(iter(self._open))]
        session = Session(member, now, now + self.lifetime)
        self._open[session.token] = session
        return session

    def get(self, token_) -> Session | None:
        """The session of C{token_} if it is open (an expired one is ended)."""
        if not token_:
            return None
        session = self._open.get(token_)
        if session is None or not same(session.token, token_):
            return None
        if self.clock.seconds() >= session.expires:
            del self._open[session.token]
            return None
        return session

    def end(self, token_) -> None:
        self._open.pop(token_, None)

    def end_member(self, member_id) -> int:
        """End every session of a staff member (removed, role changed): how many."""
        gone = [t for t, s in self._open.items() if s.member.id == member_id]
        for t in gone:
            del self._open[t]
        return len(gone)

    def members(self) -> set:
        return {s.member for s in self._open.values()}

    def expire(self) -> None:
        now = self.clock.seconds()
        for t in [t for t, s in self._open.items() if now >= s.expires]:
            del self._open[t]

    def __len__(self) -> int:
        return len(self._open)


class Lockout:
    """
    Failed logins, by name and by client address: after C{attempts}
    failures within C{window} seconds, that name (or address) may not try
    again for C{duration} seconds, right password or not. A success clears
    the name's count (not the address's: one person's good login does not
    reset a guesser's).
    """

    def __init__(self, clock, attempts: int = 5, window: float = 900.0,
                 duration: float = 900.0, limit: int = 100000):
        self.clock = clock
        self.attempts = attempts
        self.window = window
        self.duration = duration
        self.limit = limit
        self._failures: dict = {}   # key -> [times of failures within the window]
        self._locked: dict = {}     # key -> locked until

    @staticmethod
    def keys(name, address):
        return (("name", (name or "").strip().lower()), ("address", address or ""))

    def locked(self, name, address) -> float:
        """Seconds left before C{name} from C{address} may try again (0: now)."""
        now = self.clock.seconds()
        left = 0.0
        for key in self.keys(name, address):
            until = self._locked.get(key)
            if until is not None:
                if now >= until:
                    del self._locked[key]
                else:
                    left = max(left, until - now)
        return left

    def failed(self, name, address) -> None:
        now = self.clock.seconds()
        if len(self._failures) > self.limit:
            self._forget_old(now)
        for key in self.keys(name, address):
            times = [t for t in self._failures.get(key, ()) if now - t < self.window]
            times.append(now)
            if len(times) >= self.attempts:
                self._locked[key] = now + self.duration
                times = []
            self._failures[key] = times

    def succeeded(self, name, address) -> None:
        self._failures.pop(self.keys(name, address)[0], None)

    def _forget_old(self, now) -> None:
        for key in [k for k, times in self._failures.items()
                    if not times or now - times[-1] >= self.window]:
            del self._failures[key]
