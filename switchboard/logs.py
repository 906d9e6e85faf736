"""
The server's log: one line of text per event, written for every call, so
it must be cheap.
"""

from __future__ import annotations

from twisted.logger import ILogObserver, LogLevel, formatEventAsClassicLogText, formatTime
from zope.interface import implementer

_RANK = {level: rank for rank, level in enumerate(LogLevel.iterconstants())}


@implementer(ILogObserver)
class LineLogObserver:
    """
    Writes the events at C{level} and above to C{out}, each as the line
    Twisted's C{textFileLogObserver} writes (C{time [namespace#level]
    text}), flushed at once.

    The usual event (a format filled from the event's own keys) is written
    by C{str.format_map} with a time stamp made once a second; an event
    with a failure, a C{log_system}, or a format that Python's formatting
    cannot fill takes Twisted's own formatter.
    """

    def __init__(self, out, level: LogLevel = LogLevel.info):
        self.out = out
        self.least = _RANK[level]
        self._second = None
        self._stamp = "-"

    def __call__(self, event: dict) -> None:
        level = event.get("log_level")
        if level is not None and _RANK.get(level, len(_RANK)) < self.least:
            return
        text = self._line(event)
        if text is None:
            text = formatEventAsClassicLogText(event)
            if not text:
                return
        self.out.write(text)
        self.out.flush()

    def _line(self, event: dict) -> str | None:
        form = event.get("log_format")
        if form is None or "log_failure" in event or "log_system" in event:
            return None
        try:
            text = form.format_map(event)
        except Exception:
            return None  # call syntax, a missing key...: Twisted's way
        level = event.get("log_level")
        system = f"{event.get('log_namespace', '-')}#{level.name if level else '-'}"
        return f"{self._time(event.get('log_time'))} [{system}] " + text.replace("\n", "\n\t") + "\n"

    def _time(self, when) -> str:
        if when is None:
            return "-"
        second = int(when)
        if second != self._second:
            self._second, self._stamp = second, formatTime(second)
        return self._stamp
