"""
Delays between reconnection attempts.
"""

from __future__ import annotations

import random as _random


class Backoff:
    """
    Capped exponential backoff with jitter.

    The n-th delay since the last L{reset} is C{initial * 2**(n-1)}, capped
    at C{maximum}, then shortened by up to C{jitter} of itself (so that
    clients started together do not reconnect in step, and no delay ever
    exceeds C{maximum}). It never stops producing delays.

    @param random: a callable returning a float in [0, 1) (injected in
        tests).
    """

    def __init__(self, initial=0.2, maximum=3.0, jitter=0.25, random=None):
        if initial <= 0 or maximum < initial:
            raise ValueError(f"need 0 < initial <= maximum, got {initial!r}, {maximum!r}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter!r}")
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.random = random or _random.random
        self.attempts = 0
        self._base = initial

    def next(self) -> float:
        """The delay before the next attempt (counts the attempt)."""
        base = self._base
        self.attempts += 1
        self._base = min(self.maximum, base * 2)
        return base * (1 - self.jitter * self.random())

    def reset(self):
        """Start again from C{initial} (after a successful login)."""
        self.attempts = 0
        self._base = self.initial
