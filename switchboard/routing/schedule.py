"""
Opening hours in the community's time zone.

A destination's L{Hours} give time ranges per weekday; the routing's
L{Calendar} lists public holidays (single days and ranges) and working-day
exceptions: weekend days that are working days, as the Chinese holiday
calendar has (调休). A range may span midnight (C{22:00-06:00}): it belongs
to the day it starts on and keeps the destination open into the next
morning. Everything here is a pure function of the local wall-clock time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MINUTES_PER_DAY = 24 * 60

_DAY_GROUPS = {
    "daily": tuple(range(7)),
    "everyday": tuple(range(7)),
    "weekdays": tuple(range(5)),
    "weekends": (5, 6),
}
_TIME = re.compile(r"\s*([0-9]{1,2}):([0-9]{2})\s*")  # fullmatch; ASCII digits

#: From this month on, next year's holidays are due in the file: the State
#: Council publishes the coming year's calendar in the autumn, usually in
#: November.
NEXT_YEAR_DUE_MONTH = 11


def _minutes(text: str, *, end: bool) -> int:
    match = _TIME.fullmatch(text)
    if not match:
        raise ValueError(f"'{text.strip()}' is not a time")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not end)):
        raise ValueError(f"'{text.strip()}' is not a time of day")
    return hours * 60 + minutes


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, order=True)
class TimeRange:
    """
    Open from C{start} until (not including) C{end}, in minutes after
    midnight. C{end} < C{start} means the range spans midnight; C{end} is
    1440 for a range that runs to midnight (C{24:00} or C{00:00}).
    """

    start: int
    end: int

    @classmethod
    def parse(cls, text) -> "TimeRange":
        """Parse C{"08:30-12:00"}; raise C{ValueError} saying what is wrong."""
        if not isinstance(text, str) or text.count("-") != 1:
            raise ValueError(f"{text!r} is not a time range")
        first, last = text.split("-")
        start = _minutes(first, end=False)
        end = _minutes(last, end=True)
        if end == 0:
            end = MINUTES_PER_DAY
        if start == end:
            raise ValueError(f"'{text}' opens and closes at the same time")
        return cls(start, end)

    @property
    def spans_midnight(self) -> bool:
        return self.end < self.start

    def same_day(self) -> tuple[int, int]:
        """The part of the range on the day it starts."""
        return self.start, MINUTES_PER_DAY if self.spans_midnight else self.end

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"


def parse_days(text) -> tuple[int, ...]:
    """
    Weekdays named by C{text}: C{mon}, C{mon-fri}, C{sat,sun}, C{fri-mon},
    C{daily}, C{weekdays}, C{weekends}. Raise C{ValueError} if unknown.
    """
    days: list[int] = []
    for part in str(text).lower().replace(" ", "").split(","):
        if part in _DAY_GROUPS:
            days.extend(_DAY_GROUPS[part])
        elif part.count("-") == 1 and all(p in WEEKDAYS for p in part.split("-")):
            first, last = (WEEKDAYS.index(p) for p in part.split("-"))
            days.extend((first + i) % 7 for i in range((last - first) % 7 + 1))
        elif part in WEEKDAYS:
            days.append(WEEKDAYS.index(part))
        else:
            raise ValueError(f"'{text}' does not name weekdays")
    if len(set(days)) != len(days):
        raise ValueError(f"'{text}' names a weekday twice")
    return tuple(days)


def describe(ranges) -> str:
    return ", ".join(str(r) for r in ranges) if ranges else "closed all day"


@dataclass(frozen=True)
class Holiday:
    """Public holiday from C{first} to C{last} (inclusive)."""

    first: date
    last: date
    name: str = "holiday"

    def __contains__(self, day: date) -> bool:
        return self.first <= day <= self.last


@dataclass(frozen=True)
class WorkingDay:
    """A weekend day that is a working day; it keeps the hours of C{weekday}."""

    day: date
    name: str = "working day"
    weekday: int = 0


@dataclass(frozen=True)
class Calendar:
    """The community's holidays and working-day exceptions."""

    holidays: tuple = ()
    working_days: tuple = ()
    _by_day: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        index = {}
        for holiday in self.holidays:
            day = holiday.first
            while day <= holiday.last:
                index.setdefault(day, holiday)
                day += timedelta(days=1)
        for working in self.working_days:
            index[working.day] = working
        object.__setattr__(self, "_by_day", index)

    def special(self, day: date):
        """The L{Holiday} or L{WorkingDay} that C{day} is, else L{None}."""
        return self._by_day.get(day)

    def listed(self, year: int) -> bool:
        """
        Whether the holidays of C{year} are in the calendar: some holiday
        falls in it, or the calendar lists none at all (a community that
        does not use them).
        """
        return not self.holidays or any(
            h.first.year <= year <= h.last.year for h in self.holidays)

    def missing_years(self, today: date) -> tuple:
        """
        The years whose holidays staff still have to add, as of C{today}:
        this year, and from L{NEXT_YEAR_DUE_MONTH} on the next, when the
        calendar lists holidays of other years but none of these.
        """
        due = [today.year] + ([today.year + 1] if today.month >= NEXT_YEAR_DUE_MONTH else [])
        return tuple(year for year in due if not self.listed(year))


def missing_holidays_notice(years) -> str:
    """What staff are told about years with no holidays in the calendar."""
    listed = ", ".join(str(year) for year in years)
    return (f"holidays: none listed for {listed}: until they are added, public holidays "
            f"in {listed} are served as ordinary days and working days (调休) as "
            "weekends; add them when the State Council publishes them (usually in "
            "November)")


@dataclass(frozen=True)
class Status:
    """Whether a destination is open, and why."""

    open: bool
    why: str


@dataclass(frozen=True)
class Hours:
    """
    Weekly opening hours and how they bend on special days.

    @ivar weekly: seven tuples of L{TimeRange}, Monday first.
    @ivar holidays: C{"closed"} (the default), C{"weekly"} (holidays do not
        matter here) or C{"hours"} (use C{holiday_hours}).
    @ivar working_days: C{"observe"} (working-day exceptions keep a
        weekday's hours) or C{"weekly"} (they do not matter here).
    """

    weekly: tuple
    holidays: str = "closed"
    holiday_hours: tuple = ()
    working_days: str = "observe"

    def day(self, day: date, calendar: Calendar) -> tuple[tuple, str]:
        """The ranges in force on C{day}, and a description of that day."""
        name = f"{DAY_NAMES[day.weekday()]} {day.isoformat()}"
        special = calendar.special(day)
        if isinstance(special, Holiday) and self.holidays != "weekly":
            label = f"{name} is a holiday ({special.name})"
            if self.holidays == "hours":
                return self.holiday_hours, f"{label} with holiday hours"
            return (), label
        if isinstance(special, WorkingDay) and self.working_days == "observe":
            return (self.weekly[special.weekday],
                    f"{name} is a working day ({special.name}), "
                    f"{DAY_NAMES[special.weekday]} hours")
        return self.weekly[day.weekday()], name

    def status(self, local: datetime, calendar: Calendar) -> Status:
        """Open or closed at the local wall-clock time C{local}."""
        today = local.date()
        minute = local.hour * 60 + local.minute
        ranges, what = self.day(today, calendar)
        for r in ranges:
            start, end = r.same_day()
            if start <= minute < end:
                return Status(True, f"open: {what}, {r}")
        before, what_before = self.day(today - timedelta(days=1), calendar)
        for r in before:
            if r.spans_midnight and minute < r.end:
                return Status(True, f"open: {what_before}, {r} runs past midnight")
        if not ranges:
            return Status(False, f"closed: {what}, no hours that day")
        return Status(False, f"closed at {_clock(minute)}: {what}, open {describe(ranges)}")
