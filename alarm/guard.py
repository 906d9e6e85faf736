"""
The alarm's safety net: the invariant, checked while the server runs.

An open alarm that nobody has confirmed always has a phone ringing, or a
ring due within L{SILENCE_BOUND} seconds. The coordinator is built to keep
it; this guard checks it every few seconds, whatever went wrong on the way
(a lost outcome, a bug, a configuration that waits too long), and rings the
first escalation stage of an alarm found silent. While no call can be placed
at all (no AMI link) it can only say so: once a minute, loudly, per alarm.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.logger import Logger

from alarm.coordinator import SILENCE_BOUND


class SilenceGuard:
    """
    Every C{every} seconds, rings each silent alarm of C{coordinator}.

    Worst case, an alarm is silent for C{SILENCE_BOUND + every} seconds
    before the guard rings it (20 s with the defaults).
    """

    log = Logger()

    def __init__(self, coordinator, clock=None, every=5.0, bound=SILENCE_BOUND,
                 warn_every=60.0):
        if clock is None:
            from twisted.internet import reactor as clock
        self.coordinator = coordinator
        self.clock = clock
        self.every = every
        self.bound = bound
        self.warn_every = warn_every
        self.rung = 0                  # alarms the guard had to ring
        self._warned: dict = {}        # alarm id -> when "cannot place calls" was said
        self._loop = task.LoopingCall(self.check)
        self._loop.clock = clock

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(self.every, now=False).addErrback(
                lambda f: self.log.failure("alarm silence guard stopped", f))

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def check(self) -> int:
        """Ring every silent alarm now; returns how many were found."""
        found = 0
        for alarm in self.coordinator.open_alarms():
            try:
                if not self.coordinator.silent(alarm, self.bound):
                    continue
                found += 1
                self._ring(alarm)
            except Exception:
                self.log.failure("ALARM {id}: silence check", id=alarm.id)
        return found

    def _ring(self, alarm):
        now = self.clock.seconds()
        if not self.coordinator.can_place_calls(alarm):
            last = self._warned.get(alarm.id)
            if last is None or now - last >= self.warn_every:
                self._warned[alarm.id] = now
                self.log.critical("ALARM {id}: nothing rings and no call can be placed (no AMI "
                                  "link): it rings as soon as calls can be placed", id=alarm.id)
            return
        self._warned.pop(alarm.id, None)
        self.rung += 1
        self.log.critical("ALARM {id}: nothing was ringing and nothing was due: ringing the "
                          "first escalation stage", id=alarm.id)
        self.coordinator.ring_first_stage(
            alarm, "rung by the safety net: nothing was ringing", kind="silent")
