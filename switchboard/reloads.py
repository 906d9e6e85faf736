"""
What became of a configuration file's loads: how many were put in force,
refused or found unchanged, when the last of each happened, and the
located errors of the last refusal. Kept by whatever reloads a file (the
routing store, the alarm feature), read by the metrics and the status page.
"""

from __future__ import annotations

import time
from typing import Optional

IN_FORCE = "in_force"
REFUSED = "refused"
UNCHANGED = "unchanged"
RESULTS = (IN_FORCE, REFUSED, UNCHANGED)


def problem_dict(problem) -> dict:
    """A L{switchboard.yamlconf.Problem} as plain values (file, line, column, key, message)."""
    where = getattr(problem, "location", None)
    return {"file": where.path if where else None, "line": where.line if where else None,
            "column": where.column if where else None, "key": getattr(problem, "key", ""),
            "message": getattr(problem, "message", str(problem)),
            "hint": getattr(problem, "hint", ""), "text": str(problem)}


class LoadRecord:
    """
    The loads of one file (C{what}: C{"routing"}, C{"alarm"}).

    @param clock: provides C{seconds()} (the reactor); wall time by default.
    @ivar counts: result -> how many, for every result of L{RESULTS}.
    @ivar last_error: the L{ConfigError} of the last refusal, until a load succeeds.
    """

    #: At most this many problems of a refusal are kept for the status page.
    KEEP_PROBLEMS = 50

    def __init__(self, what: str, clock=None):
        self.what = what
        self.clock = clock
        self.counts = {result: 0 for result in RESULTS}
        self.path: Optional[str] = None
        self.at: dict = {}          # result -> seconds of its last occurrence
        self.last_error = None
        self.refused_path: Optional[str] = None

    def _now(self) -> float:
        seconds = getattr(self.clock, "seconds", None)  # a reactor without a clock: wall time
        return seconds() if seconds is not None else time.time()

    def note(self, result: str, path: str, error=None) -> None:
        """A load of C{path} ended with C{result} (C{error}: the refusal's L{ConfigError})."""
        self.counts[result] += 1
        self.at[result] = self._now()
        if result == REFUSED:
            self.last_error, self.refused_path = error, path
        else:
            self.path, self.last_error = path, None

    def snapshot(self) -> dict:
        """
        C{{"file", "loads": {result: n}, "last_in_force", "last_refused",
        "refused": bool, "refused_file", "errors": [problem_dict...]}}; times
        in Unix seconds (L{None}: never).
        """
        error = self.last_error
        problems = list(getattr(error, "problems", ()) or ())
        return {
            "file": self.path,
            "loads": dict(self.counts),
            "last_in_force": self.at.get(IN_FORCE),
            "last_unchanged": self.at.get(UNCHANGED),
            "last_refused": self.at.get(REFUSED),
            "refused": error is not None,
            "refused_file": self.refused_path,
            "errors": [problem_dict(p) for p in problems[:self.KEEP_PROBLEMS]]
            or ([{"text": str(error)}] if error is not None else []),
            "more_errors": max(0, len(problems) - self.KEEP_PROBLEMS),
        }
