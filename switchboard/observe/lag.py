"""How late the reactor runs: every call in progress waits as long."""

from __future__ import annotations

from twisted.internet import task


class ReactorLag:
    """
    A timer due every C{interval} seconds, and how late it ran each time:
    a reactor held by a long computation, a garbage collection or a
    blocking call runs it late by as much. Each measure goes to
    C{observe(seconds)}.

    @ivar last: the lateness measured last (seconds).
    @ivar ticked: when it last ran (C{clock} time), or L{None}.
    """

    def __init__(self, clock, observe=lambda seconds: None, interval: float = 0.5):
        self.clock = clock
        self.observe = observe
        self.interval = interval
        self.last = 0.0
        self.ticked = None
        self._due = None
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = clock

    @property
    def running(self) -> bool:
        return self._loop.running

    def start(self) -> None:
        if not self._loop.running:
            self._due = self.clock.seconds() + self.interval
            self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _tick(self) -> None:
        now = self.clock.seconds()
        self.last = max(0.0, now - self._due)
        self.ticked = now
        # The next one is due an interval from now (LoopingCall skips the
        # beats a long stall missed rather than running them all at once).
        self._due = now + self.interval - ((now - self._due) % self.interval)
        self.observe(self.last)

    def since_tick(self) -> float | None:
        """Seconds since it last ran (L{None}: not yet)."""
        return None if self.ticked is None else self.clock.seconds() - self.ticked
