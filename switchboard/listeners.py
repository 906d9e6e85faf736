"""
Callables told of something as it happens (a call recorded, a timeline
event, a database write), for whoever wants to watch without the code
that does the work knowing who watches: the metrics of
L{switchboard.observe}, the duty board later.
"""

from __future__ import annotations

from twisted.logger import Logger


class Listeners:
    """
    A list of callables, each called with what happened. A listener that
    raises is logged and the others still hear of it: watching must never
    cost the call or the alarm being watched.
    """

    log = Logger()

    def __init__(self):
        self._callbacks: list = []

    def add(self, callback):
        """Call C{callback(*args)} from now on; returns it (for L{remove})."""
        self._callbacks.append(callback)
        return callback

    def remove(self, callback) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def __len__(self) -> int:
        return len(self._callbacks)

    def __call__(self, *args, **kwargs) -> None:
        for callback in self._callbacks:
            try:
                callback(*args, **kwargs)
            except Exception:
                self.log.failure("listener {callback!r} failed", callback=callback)
