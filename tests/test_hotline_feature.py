"""
The hotline as a part of the server: its reminder, in the log, of holidays
the routing does not list yet.
"""

from __future__ import annotations

from types import SimpleNamespace

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent

from switchboard.hotline.feature import CALENDAR_CHECK_EVERY, HotlineFeature
from tests.test_hotline_support import DIALER, PLAN, ROUTING, SHANGHAI, routing, seconds

NEXT_YEAR = ROUTING.replace(
    "  - {date: 2026-10-01, to: 2026-10-07, name: 国庆节}\n",
    "  - {date: 2026-10-01, to: 2026-10-07, name: 国庆节}\n"
    "  - {date: 2027-01-01, name: 元旦}\n")


def started(tmp_path, when):
    """A started hotline feature whose clock reads C{when} (Shanghai time)."""
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING, encoding="utf-8")
    settings = SimpleNamespace(routing=str(path), numbers=PLAN, dialer=DIALER, tz=SHANGHAI,
                               trunks={"default": "PJSIP/{number}",
                                       "outside": "PJSIP/{number}@trunk"})
    reactor = MemoryReactorClock()
    reactor.advance(seconds(when))
    feature = HotlineFeature(settings, None, reactor=reactor)
    feature.start()
    return feature, reactor


def warnings(events):
    return [formatEvent(e) for e in events if e["log_level"].name == "warn"]


def test_a_reminder_a_day_once_next_years_holidays_are_due(tmp_path):
    with capturedLogs() as events:
        feature, reactor = started(tmp_path, "2026-10-30 09:00")
        assert warnings(events) == []
        reactor.advance(CALENDAR_CHECK_EVERY)  # 2026-10-31: not due yet
        assert warnings(events) == []
        reactor.advance(CALENDAR_CHECK_EVERY)  # 2026-11-01
        reactor.advance(CALENDAR_CHECK_EVERY)
    path = feature.settings.routing
    assert warnings(events) == 2 * [
        f"routing {path}: holidays: none listed for 2027: until they are added, public "
        "holidays in 2027 are served as ordinary days and working days (调休) as weekends; "
        "add them when the State Council publishes them (usually in November)"]
    feature.stop()
    assert reactor.getDelayedCalls() == []


def test_a_reload_reminds_until_the_file_lists_them(tmp_path):
    feature, reactor = started(tmp_path, "2026-11-23 09:00")
    files = [ROUTING, NEXT_YEAR]

    def reload(path=None):
        feature.store.current = routing(files.pop(0))
        feature.store.generation += 1
        return defer.succeed(feature.store.current)

    feature.store.reload = reload
    with capturedLogs() as events:
        feature.reload()  # an edit elsewhere: 2027 still missing
    assert len(warnings(events)) == 1
    with capturedLogs() as events:
        feature.reload()  # 2027's holidays added
        reactor.advance(CALENDAR_CHECK_EVERY)
    assert warnings(events) == []
    assert feature.check_calendar() == ()
