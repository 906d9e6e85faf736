"""
Noticing what staff changed with the CLI, which runs in another process.

Every few seconds one cheap query reads the registry version (at once when
PostgreSQL tells of a change: L{RegistryWatcher.poke}); when it has moved, the caller index takes in the changed households and AstDB follows,
and the announcements of the changed households are rendered (in the
background: AstDB does not wait for a speech engine).
Alarms that staff closed from the CLI (C{switchboard alarms close ID}) are
ended here too, so their escalation stops.
"""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.logger import Logger


class RegistryWatcher:
    """
    @param index: the L{CallerIndex}.
    @param astdb: the L{AstDBSync}, or None.
    @param coordinator: the L{AlarmCoordinator}, or None.
    @param recorder: the L{AlarmRecorder} (to read alarms closed by staff), or None.
    @param announcer: the L{alarm.speaking.Announcer}, or None.
    """

    log = Logger()

    def __init__(self, index, astdb=None, coordinator=None, recorder=None, *, interval=5.0,
                 clock=None, announcer=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.index = index
        self.astdb = astdb
        self.coordinator = coordinator
        self.recorder = recorder
        self.announcer = announcer
        #: The announcements being rendered for the last change seen (a Deferred).
        self.rendering = None
        self.interval = interval
        self.clock = clock
        #: Rounds by result: C{changed} (households taken in), C{unchanged}, C{failed}.
        self.refreshes = {"changed": 0, "unchanged": 0, "failed": 0}
        self._loop = None
        self._checking = None   # the round under way (a Deferred)
        self._again = False     # poked meanwhile: one more round after it

    def poke(self, what=None) -> None:
        """
        Look now (a change was announced, L{switchboard.pgnotify}); if a
        round is under way, one more follows it, so nothing announced
        during a round is missed.
        """
        if self._loop is None:
            return
        if self._checking is not None:
            self._again = True
            return
        self._round()

    def _round(self):
        self._checking = self.check()

        def done(_):
            self._checking = None
            if self._again and self._loop is not None:
                self._again = False
                self._round()

        self._checking.addBoth(done)
        return self._checking

    def start(self) -> None:
        self._loop = task.LoopingCall(self.poke)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    @defer.inlineCallbacks
    def check(self):
        """One round; never fails (a failure is logged and the next round tries again)."""
        try:
            changes = yield self.index.refresh()
            if changes is None or changes:
                if self.announcer is not None:
                    self.rendering = (self.announcer.prepare(self.index) if changes is None
                                      else self.announcer.changed(changes))
                if self.astdb is not None:
                    yield self.astdb.apply(changes)
                self.refreshes["changed"] += 1
            else:
                self.refreshes["unchanged"] += 1
        except Exception:
            self.refreshes["failed"] += 1
            self.log.failure("registry refresh")
        if self.coordinator is None or self.recorder is None:
            return
        try:
            ids = [a.id for a in self.coordinator.open_alarms()]
            if ids:
                closed = yield self.recorder.closed_among(ids)
                self.coordinator.ended_elsewhere(closed)
        except Exception:
            self.log.failure("checking for alarms closed by staff")
