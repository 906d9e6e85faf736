"""
Opening hours: weekly ranges, holidays (single days and ranges), working-day
exceptions, ranges past midnight, and the community's time zone.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from switchboard.routing.router import local_time
from switchboard.routing.schedule import (
    Calendar,
    Holiday,
    Hours,
    TimeRange,
    WorkingDay,
    parse_days,
)
from tests.test_hotline_support import SHANGHAI, local, routing


def week(**days):
    """Hours from weekday keys: week(mon=["08:30-12:00"], ...)."""
    weekly = [()] * 7
    for key, ranges in days.items():
        for day in parse_days(key.replace("_", "-")):
            weekly[day] = tuple(TimeRange.parse(r) for r in ranges)
    return tuple(weekly)


OFFICE = Hours(week(mon_fri=["08:30-12:00", "14:00-17:30"], sat=["09:00-12:00"]))
NATIONAL_DAY = Calendar(
    holidays=(Holiday(date(2026, 10, 1), date(2026, 10, 7), "国庆节"),
              Holiday(date(2026, 9, 25), date(2026, 9, 27), "中秋节")),
    working_days=(WorkingDay(date(2026, 9, 20), "国庆节调休", 0),
                  WorkingDay(date(2026, 10, 10), "国庆节调休", 4)))


def at(text):
    return datetime.strptime(text, "%Y-%m-%d %H:%M")


class TestTimeRange:
    def test_parse(self):
        r = TimeRange.parse("08:30-12:00")
        assert (r.start, r.end, r.spans_midnight, str(r)) == (510, 720, False, "08:30-12:00")

    def test_past_midnight(self):
        r = TimeRange.parse("22:00-06:00")
        assert r.spans_midnight and r.same_day() == (1320, 1440)

    def test_to_midnight(self):
        assert TimeRange.parse("20:00-24:00").end == 1440
        assert TimeRange.parse("20:00-00:00") == TimeRange(1200, 1440)
        assert not TimeRange.parse("00:00-24:00").spans_midnight

    def test_single_digit_hour(self):
        assert TimeRange.parse("8:30-9:00") == TimeRange(510, 540)

    @pytest.mark.parametrize("text, message", [
        ("08:30", "not a time range"),
        ("8-12", "'8' is not a time"),
        ("08:30-12:60", "'12:60' is not a time of day"),
        ("25:00-26:00", "'25:00' is not a time of day"),
        ("24:00-06:00", "'24:00' is not a time of day"),
        ("09:00-09:00", "opens and closes at the same time"),
        ("08:30-12:00-13:00", "not a time range"),
    ])
    def test_refused(self, text, message):
        with pytest.raises(ValueError, match=message):
            TimeRange.parse(text)


class TestDays:
    @pytest.mark.parametrize("text, days", [
        ("mon", (0,)), ("mon-fri", (0, 1, 2, 3, 4)), ("sat,sun", (5, 6)),
        ("fri-mon", (4, 5, 6, 0)), ("daily", tuple(range(7))), ("weekdays", (0, 1, 2, 3, 4)),
        ("weekends", (5, 6)), ("Mon, Wed", (0, 2)),
    ])
    def test_names(self, text, days):
        assert parse_days(text) == days

    @pytest.mark.parametrize("text", ["monday", "mon-xyz", "mon,mon", "mon-fri,wed", ""])
    def test_refused(self, text):
        with pytest.raises(ValueError):
            parse_days(text)


class TestWeekly:
    @pytest.mark.parametrize("when, is_open", [
        ("2026-10-12 08:29", False),  # Monday
        ("2026-10-12 08:30", True),
        ("2026-10-12 11:59", True),
        ("2026-10-12 12:00", False),  # the end is not included
        ("2026-10-12 13:00", False),
        ("2026-10-12 14:00", True),
        ("2026-10-17 10:00", True),   # Saturday
        ("2026-10-17 14:00", False),
        ("2026-10-18 10:00", False),  # Sunday: no hours
    ])
    def test_open(self, when, is_open):
        assert OFFICE.status(at(when), Calendar()).open is is_open

    def test_why_open(self):
        status = OFFICE.status(at("2026-10-12 15:00"), Calendar())
        assert status.why == "open: Monday 2026-10-12, 14:00-17:30"

    def test_why_closed(self):
        assert OFFICE.status(at("2026-10-12 12:30"), Calendar()).why == (
            "closed at 12:30: Monday 2026-10-12, open 08:30-12:00, 14:00-17:30")
        assert OFFICE.status(at("2026-10-18 10:00"), Calendar()).why == (
            "closed: Sunday 2026-10-18, no hours that day")


class TestHolidays:
    def test_range_closes_every_day(self):
        for day in range(1, 8):
            status = OFFICE.status(at(f"2026-10-0{day} 10:00"), NATIONAL_DAY)
            assert not status.open
            assert "is a holiday (国庆节)" in status.why
        assert OFFICE.status(at("2026-10-08 10:00"), NATIONAL_DAY).open

    def test_single_day(self):
        calendar = Calendar(holidays=(Holiday(date(2026, 1, 1), date(2026, 1, 1), "元旦"),))
        assert not OFFICE.status(at("2026-01-01 10:00"), calendar).open
        assert OFFICE.status(at("2026-01-02 10:00"), calendar).open

    def test_holiday_hours(self):
        hours = Hours(OFFICE.weekly, holidays="hours",
                      holiday_hours=(TimeRange.parse("09:00-11:00"),))
        assert hours.status(at("2026-10-03 10:00"), NATIONAL_DAY).why == (
            "open: Saturday 2026-10-03 is a holiday (国庆节) with holiday hours, 09:00-11:00")
        assert not hours.status(at("2026-10-03 11:30"), NATIONAL_DAY).open

    def test_weekly_ignores_holidays(self):
        hours = Hours(OFFICE.weekly, holidays="weekly")
        assert hours.status(at("2026-10-05 10:00"), NATIONAL_DAY).open  # a Monday


class TestWorkingDays:
    def test_sunday_worked_with_monday_hours(self):
        status = OFFICE.status(at("2026-09-20 10:00"), NATIONAL_DAY)
        assert status.open
        assert status.why == ("open: Sunday 2026-09-20 is a working day (国庆节调休), "
                              "Monday hours, 08:30-12:00")
        assert OFFICE.status(at("2026-09-20 15:00"), NATIONAL_DAY).open  # afternoon too

    def test_ordinary_sunday_closed(self):
        assert not OFFICE.status(at("2026-09-13 10:00"), NATIONAL_DAY).open

    def test_saturday_worked_keeps_named_weekday(self):
        # 10-10 keeps Friday hours: open in the afternoon, unlike a Saturday.
        assert OFFICE.status(at("2026-10-10 15:00"), NATIONAL_DAY).open
        assert not OFFICE.status(at("2026-10-17 15:00"), NATIONAL_DAY).open

    def test_weekly_ignores_working_days(self):
        hours = Hours(OFFICE.weekly, working_days="weekly")
        assert not hours.status(at("2026-09-20 10:00"), NATIONAL_DAY).open


class TestMidnight:
    NIGHT = Hours(week(daily=["20:00-08:00"]))
    FRIDAY_NIGHT = Hours(week(fri=["22:00-02:00"]))

    @pytest.mark.parametrize("when, is_open", [
        ("2026-10-16 21:59", False),  # Friday
        ("2026-10-16 22:00", True),
        ("2026-10-16 23:59", True),
        ("2026-10-17 00:00", True),   # Saturday, still Friday's range
        ("2026-10-17 01:59", True),
        ("2026-10-17 02:00", False),
        ("2026-10-17 22:30", False),  # no Saturday night range
    ])
    def test_friday_night(self, when, is_open):
        assert self.FRIDAY_NIGHT.status(at(when), Calendar()).open is is_open

    def test_why_names_the_day_it_started(self):
        assert self.FRIDAY_NIGHT.status(at("2026-10-17 01:00"), Calendar()).why == (
            "open: Friday 2026-10-16, 22:00-02:00 runs past midnight")

    def test_every_night(self):
        assert self.NIGHT.status(at("2026-10-12 03:00"), Calendar()).open
        assert self.NIGHT.status(at("2026-10-12 21:00"), Calendar()).open
        assert not self.NIGHT.status(at("2026-10-12 12:00"), Calendar()).open

    def test_holiday_eve_keeps_its_night(self):
        # The night that starts on 09-30 runs into the first holiday morning;
        # the holiday itself has no night range.
        assert self.NIGHT.status(at("2026-10-01 03:00"), NATIONAL_DAY).open
        assert not self.NIGHT.status(at("2026-10-01 21:00"), NATIONAL_DAY).open
        assert not self.NIGHT.status(at("2026-10-02 03:00"), NATIONAL_DAY).open
        # The last holiday's night does not continue into 10-08.
        assert not self.NIGHT.status(at("2026-10-08 03:00"), NATIONAL_DAY).open


class TestTimeZone:
    def test_utc_instant_is_read_in_shanghai(self):
        r = routing()
        # 02:00 UTC is 10:00 in Shanghai (UTC+8 all year, no daylight saving).
        moment = local_time(r, datetime(2026, 10, 8, 2, 0, tzinfo=timezone.utc))
        assert (moment.hour, moment.utcoffset().total_seconds()) == (10, 8 * 3600)
        winter = local_time(r, datetime(2026, 1, 15, 2, 0, tzinfo=timezone.utc))
        assert winter.utcoffset() == moment.utcoffset()

    def test_naive_time_is_wall_clock(self):
        moment = local_time(routing(), datetime(2026, 10, 8, 10, 0))
        assert moment == local("2026-10-08 10:00") and moment.tzinfo is SHANGHAI

    def test_service_zone_when_file_names_none(self):
        from zoneinfo import ZoneInfo
        r = routing().__class__(**{**routing().__dict__, "tz": None})
        urumqi = ZoneInfo("Asia/Urumqi")
        moment = local_time(r, datetime(2026, 10, 8, 2, 0, tzinfo=timezone.utc), urumqi)
        assert moment.hour == 8


class TestHolidaysDue:
    """Which years' holidays staff still have to add."""

    def test_this_year_is_due_all_year(self):
        assert NATIONAL_DAY.missing_years(date(2026, 3, 1)) == ()
        assert NATIONAL_DAY.missing_years(date(2027, 3, 1)) == (2027,)

    def test_next_year_is_due_from_november(self):
        assert NATIONAL_DAY.missing_years(date(2026, 10, 31)) == ()
        assert NATIONAL_DAY.missing_years(date(2026, 11, 1)) == (2027,)
        assert NATIONAL_DAY.missing_years(date(2027, 12, 31)) == (2027, 2028)

    def test_a_holiday_across_new_year_lists_both_years(self):
        calendar = Calendar(holidays=(Holiday(date(2026, 12, 31), date(2027, 1, 2), "元旦"),))
        assert calendar.listed(2026) and calendar.listed(2027)
        assert calendar.missing_years(date(2026, 12, 1)) == ()

    def test_a_calendar_with_no_holidays_asks_for_none(self):
        assert Calendar().listed(2027)
        assert Calendar().missing_years(date(2027, 12, 1)) == ()


@pytest.mark.parametrize("text", ["08:30-12:00\n", "٠٨:٣٠-12:00"])
def test_time_range_is_ascii_and_whole(text):
    from switchboard.routing.schedule import TimeRange
    if text.endswith("\n"):
        assert str(TimeRange.parse(text)) == "08:30-12:00"  # whitespace around is allowed
    else:
        with pytest.raises(ValueError):
            TimeRange.parse(text)
