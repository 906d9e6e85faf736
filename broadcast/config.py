"""
The broadcast's section of switchboard.yaml (all keys optional)::

  broadcast:
    lines: 10                 # broadcast calls at once, at most
    trunk_lines: 30           # the trunk's lines, #9 alarms' calls included: when an
                              # alarm needs more than are free, broadcast calls yield
    retries: 2                # calls again after busy, no answer, no 1 pressed, failure
    retry_after: 300          # seconds between two calls of one household
    ring_timeout: 30          # seconds a call rings
    plays: 3                  # times the notice is played at most in one call
    quiet_hours: "21:00-08:00"   # no normal notice is called then (the community's
                              # timezone); urgent ones are. null: no quiet hours
    caller_number: "12345"    # the caller ID residents see (default: hotline_number)
    trunk: default            # which of trunks: the notices' calls are dialled through
                              # (e.g. a line group for mass calls); #9 legs keep theirs
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time

from switchboard import yamlconf

KEYS = {"lines", "trunk_lines", "retries", "retry_after", "ring_timeout", "plays",
        "quiet_hours", "caller_number", "trunk"}
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class QuietHours:
    """A nightly window of local time, C{start} to C{end} (across midnight when end < start)."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_hours(text: str) -> QuietHours:
    """C{"21:00-08:00"} -> L{QuietHours}; ValueError saying what is wrong."""
    m = _HOURS.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"{text!r}: hours are 0-23, minutes 0-59")
    if (h1, m1) == (h2, m2):
        raise ValueError(f"{text!r}: an empty window (use null for no quiet hours)")
    return QuietHours(time(h1, m1), time(h2, m2))


@dataclass(frozen=True)
class BroadcastSettings:
    lines: int = 10
    trunk_lines: int | None = None
    retries: int = 2
    retry_after: float = 300.0
    ring_timeout: float = 30.0
    plays: int = 3
    quiet_hours: QuietHours | None = QuietHours(time(21, 0), time(8, 0))
    caller_number: str = ""
    trunk: str = "default"


def read(data, check) -> BroadcastSettings:
    """The C{broadcast:} section of C{data}, problems reported to C{check}."""
    section = check.mapping(data.get("broadcast", yamlconf.LocatedDict()), "broadcast",
                            data.where("broadcast"), allowed=KEYS)
    default = BroadcastSettings()
    values = {}

    def number(name, kind, low, high=None):
        value = check.typed(section, name, kind, f"broadcast.{name}", getattr(default, name))
        if value is None:
            return value
        if value < low or (high is not None and value > high):
            check.add(section.where(name), f"broadcast.{name}",
                      f"{value} is out of range ({low} to {high or 'any'})")
            return getattr(default, name)
        return value

    values["lines"] = number("lines", int, 1, 1000)
    values["trunk_lines"] = number("trunk_lines", (int, type(None)), 1, 10000)
    values["retries"] = number("retries", int, 0, 20)
    values["retry_after"] = float(number("retry_after", (int, float), 1))
    values["ring_timeout"] = float(number("ring_timeout", (int, float), 5, 300))
    values["plays"] = number("plays", int, 1, 10)
    if values["trunk_lines"] is not None and values["lines"] > values["trunk_lines"]:
        check.add(section.where("lines"), "broadcast.lines",
                  f"{values['lines']} lines, more than the trunk's {values['trunk_lines']}",
                  "a campaign takes a share of the trunk, not more")
    hours = default.quiet_hours
    if "quiet_hours" in section:
        raw = section["quiet_hours"]
        if raw is None or raw is False:
            hours = None
        else:
            try:
                hours = parse_hours(raw)
            except ValueError as e:
                check.add(section.where("quiet_hours"), "broadcast.quiet_hours", str(e),
                          'e.g. "21:00-08:00", or null')
    values["quiet_hours"] = hours
    caller = check.typed(section, "caller_number", (str, int), "broadcast.caller_number", "")
    values["caller_number"] = str(caller)
    trunk = check.typed(section, "trunk", str, "broadcast.trunk", default.trunk)
    trunks = data.get("trunks") if isinstance(data.get("trunks"), dict) else {}
    if trunk != default.trunk and trunk not in trunks:
        check.add(section.where("trunk"), "broadcast.trunk", f"no trunk {trunk!r}",
                  "one of trunks: " + ", ".join(sorted(trunks) or ["default"]))
        trunk = default.trunk
    values["trunk"] = trunk
    return BroadcastSettings(**values)
