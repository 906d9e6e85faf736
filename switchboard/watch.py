"""
Noticing that staff saved a configuration file.

L{FileWatcher} polls the files' modification time and size (cheap, and it
works on every filesystem and editor save pattern) and calls back once per
change, after the file has stopped changing for one poll.
"""

from __future__ import annotations

import os
from typing import Callable

from twisted.internet import task
from twisted.logger import Logger


def _stamp(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class FileWatcher:
    """Calls C{changed(path)} when a watched file changes."""

    log = Logger()

    def __init__(self, paths, changed: Callable[[str], object], *, interval: float = 2.0,
                 clock=None):
        from twisted.internet import reactor
        self.paths = list(paths)
        self.changed = changed
        self.interval = interval
        self._stamps = {p: _stamp(p) for p in self.paths}
        self._pending: dict = {}
        self._loop = task.LoopingCall(self.poll)
        self._loop.clock = clock or reactor

    def start(self) -> None:
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def poll(self) -> None:
        for path in self.paths:
            stamp = _stamp(path)
            if stamp == self._stamps[path]:
                self._pending.pop(path, None)
                continue
            if path not in self._pending or self._pending[path] != stamp:
                # Still being written: wait for one quiet poll.
                self._pending[path] = stamp
                continue
            del self._pending[path]
            self._stamps[path] = stamp
            try:
                self.changed(path)
            except Exception:
                self.log.failure("reacting to a change of {path}", path=path)
