"""
Routing decisions: menus key by key, direct dial, retries and fallbacks,
hours, holidays and working days, closed destinations and overflow, with
the trail of reasons that C{switchboard route} prints.
"""

from __future__ import annotations

from datetime import datetime, timezone

from switchboard.routing.router import MenuWalk, plan, route
from tests.test_hotline_support import PLAN, SHANGHAI, local, routing

R = routing()
THURSDAY = "2026-10-08 10:00"  # an ordinary working morning


def decide(digits="", when=THURSDAY, caller=None, r=R):
    return route(r, local(when), digits, caller, numbers=PLAN)


def actions(decision):
    return [(s.action, s.destination.name) for s in decision.steps]


class TestMenus:
    def test_option(self):
        d = decide("1")
        assert d.destination.name == "health"
        assert actions(d) == [("ring", "health"), ("ring", "duty"), ("voicemail", "voicemail")]
        assert d.trail[:2] == ("menu main (主菜单): prompt main-menu",
                               "pressed 1: option 1 -> 社区卫生服务中心 [health]")

    def test_zero_is_the_operator(self):
        d = decide("0")
        assert d.trail[1] == "pressed 0: 0 for the operator -> 总机 [operator]"
        assert actions(d) == [("ring", "operator")]

    def test_direct_dial_code(self):
        d = decide("802")
        assert d.trail[1] == "pressed 802: direct-dial code 802 -> 社区卫生服务中心 [health]"
        assert d.destination.name == "health"

    def test_incomplete_code_is_a_wrong_entry(self):
        d = decide("80")
        assert d.trail[1] == "pressed 80: not an option of menu main"

    def test_submenu(self):
        d = decide("31")
        assert d.menus == ("main", "sub")
        assert actions(d) == [("announcement", "notices")]
        assert "menu sub (便民服务): prompt sub-menu" in d.trail

    def test_back_to_main_menu(self):
        d = decide("3*2")
        assert d.menus == ("main", "sub", "main")
        assert d.destination.name == "committee"

    def test_wrong_keys_then_fallback(self):
        d = decide("979")
        assert d.trail[1:7] == ("pressed 9: not an option of menu main",
                                "plays pm-invalid-option, then menu main again",
                                "pressed 7: not an option of menu main",
                                "plays pm-invalid-option, then menu main again",
                                "pressed 9: not an option of menu main",
                                "3 failed entries: fallback -> 总机 [operator]")
        assert actions(d) == [("ring", "operator")]

    def test_wrong_key_then_right_key(self):
        d = decide("91")
        assert d.destination.name == "health"

    def test_silence_then_fallback(self):
        d = decide("")
        assert d.trail[1:5] == ("no key pressed within 5 s",) * 3 + (
            "3 failed entries: fallback -> 总机 [operator]",)

    def test_leftover_keys(self):
        d = decide("1234")
        assert d.unused == "234"
        assert "keys left over: 234" in d.explain()

    def test_caller_in_e164(self):
        assert decide("1", caller="87650001").caller == "+8659187650001"
        assert decide("1", caller="private").caller == "private"

    def test_walk_entry_states(self):
        walk = MenuWalk(R)
        assert walk.entry_state("1") == "complete"
        assert walk.entry_state("8") == "more"
        assert walk.entry_state("80") == "more"
        assert walk.entry_state("801") == "complete"
        assert walk.entry_state("9") == "invalid"
        assert walk.entry_state("0") == "complete"


class TestHours:
    def test_closed_goes_to_closed_destination(self):
        d = decide("1", "2026-10-08 21:30")
        assert actions(d) == [("announcement", "health_closed")]
        assert d.trail[2:] == (
            "社区卫生服务中心 [health]: closed at 21:30: Thursday 2026-10-08, "
            "open 08:00-12:00, 14:30-17:30",
            "社区卫生服务中心 [health] is closed -> its closed destination 下班通知 [health_closed]",
        )

    def test_holiday(self):
        d = decide("1", "2026-10-01 10:00")
        assert actions(d) == [("announcement", "health_closed")]
        assert "社区卫生服务中心 [health]: closed: Thursday 2026-10-01 is a holiday (国庆节), " \
               "no hours that day" in d.trail

    def test_working_day_exception(self):
        d = decide("1", "2026-10-10 10:00")  # a Saturday worked
        assert actions(d)[0] == ("ring", "health")
        assert d.trail[2] == ("社区卫生服务中心 [health]: open: Saturday 2026-10-10 is a working "
                              "day (国庆节调休), Monday hours, 08:00-12:00")

    def test_ordinary_saturday(self):
        assert actions(decide("1", "2026-10-17 10:00")) == [("announcement", "health_closed")]

    def test_utc_time_is_converted(self):
        # 13:30 UTC is 21:30 in Shanghai: closed.
        d = route(R, datetime(2026, 10, 8, 13, 30, tzinfo=timezone.utc), "1")
        assert d.at.hour == 21
        assert actions(d) == [("announcement", "health_closed")]


class TestOverflow:
    def test_defaults_chain(self):
        d = decide("1")
        assert [s.why for s in d.steps] == [
            "chosen", "defaults.overflow of 社区卫生服务中心 [health]",
            "defaults.overflow of 值班电话 [duty]"]

    def test_own_chain_to_operator(self):
        d = decide("2")
        assert actions(d) == [("ring", "committee"), ("ring", "operator")]
        assert d.steps[1].why == "overflow of 居委会 [committee]"

    def test_closed_without_closed_destination_overflows(self):
        r = routing(R_TEXT_NIGHT)
        d = route(r, local("2026-10-08 03:00"), "1", tz=SHANGHAI)
        assert actions(d) == [("ring", "duty"), ("voicemail", "voicemail")]
        assert d.trail[2].startswith("夜班 [night]: closed at 03:00")

    def test_each_destination_tried_once(self):
        r = routing(R_TEXT_REPEAT)
        steps = plan(r, r.destinations["a"], local(THURSDAY))
        assert [(s.action, s.destination.name) for s in steps] == [
            ("ring", "a"), ("ring", "b"), ("ring", "op"), ("voicemail", "vm")]

    def test_plan_trail(self):
        trail = []
        r = routing(R_TEXT_REPEAT)
        plan(r, r.destinations["a"], local(THURSDAY), trail)
        assert "总机 [op]: already tried, skipped" in trail

    def test_explain(self):
        text = decide("2", caller="87650001").explain()
        assert text.splitlines() == [
            "call at 2026-10-08 10:00 (Thursday, Asia/Shanghai) from +8659187650001",
            "  greeting: hello",
            "  menu main (主菜单): prompt main-menu",
            "  pressed 2: option 2 -> 居委会 [committee]",
            "  居委会 [committee]: open (no hours set)",
            "  总机 [operator]: open (no hours set)",
            "plan:",
            "  1. ring 居委会 [committee]: +8659187650001, +8659187650002 (ring-all, 20 s)"
            "   [chosen]",
            "  2. if nobody answered: ring 总机 [operator]: +8659187650100 (20 s)"
            "   [overflow of 居委会 [committee]]",
            "  3. if nobody answered: play the sorry prompt (please-try-call-later) and hang up",
        ]

    def test_explain_service_and_hunt(self):
        text = decide("5").explain()
        assert "ring 鱼丸店 [shop]: +8659187650041 (20 s via trunk outside)" in text
        text = decide("4").explain()
        assert "ring 警务室 [police]: +8659187650031, +8659187650032 (hunt, 15 s)" in text
        assert "voicemail 留言箱 [voicemail]: mailbox 100@switchboard" in text


R_TEXT_NIGHT = """\
hotline: {menu: main, operator: op}
defaults: {overflow: [duty, voicemail]}
menus: {main: {prompt: m, options: {1: night}}}
destinations:
  op: {type: operator, phones: [87650100]}
  night: {type: department, label: 夜班, phones: [87650029], hours: {daily: ["20:00-02:00"]}}
  duty: {type: department, label: 值班, phones: [87650190]}
  voicemail: {type: voicemail, mailbox: "100"}
"""

R_TEXT_REPEAT = """\
hotline: {menu: main, operator: op}
menus: {main: {prompt: m, options: {1: a}}}
destinations:
  op: {type: operator, label: 总机, phones: [87650100], overflow: []}
  a: {type: department, phones: [87650001], overflow: [b, op, vm]}
  b: {type: department, phones: [87650002], overflow: [op]}
  vm: {type: voicemail, mailbox: "100"}
"""


def test_same_inputs_same_decision():
    assert decide("41", caller="13812345678") == decide("41", caller="13812345678")
