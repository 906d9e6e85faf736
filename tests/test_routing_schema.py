"""
Validation of routing files: every class of mistake is reported, all at
once, each at its exact file:line:column with the key path and a hint.
"""

from __future__ import annotations

import os
import textwrap
import time
from datetime import date

import pytest

from switchboard.routing import schema
from switchboard.routing.model import MENU
from switchboard.yamlconf import ConfigError
from tests.test_hotline_support import PLAN, ROUTING, routing

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def problems(doc, trunks=None):
    """The problem lines for a routing document (dedented)."""
    with pytest.raises(ConfigError) as caught:
        schema.loads(textwrap.dedent(doc), "r.yaml", PLAN, trunks=trunks)
    return [str(p) for p in caught.value.problems]


# Appended to documents written inside test methods, whose last line holds
# the indentation of the closing quotes.
OK_TAIL = "destinations:\n              op: {type: operator, phones: [87650100]}\n"


class TestSample:
    def test_sample_file_is_valid(self):
        r = schema.load(os.path.join(PROJECT, "config", "routing.yaml"), PLAN,
                        trunks=["default"])
        assert r.hotline.numbers == ("12345", "+8659187650000")
        assert r.destinations["health"].label == "社区卫生服务中心"
        assert r.destinations["committee"].targets == ("+8659187650001", "+8659187650002")
        assert r.codes["805"] == "restaurant"
        assert r.tz.key == "Asia/Shanghai"

    def test_sample_calendar_is_2026(self):
        r = schema.load(os.path.join(PROJECT, "config", "routing.yaml"), PLAN)
        special = r.calendar.special
        assert special(date(2026, 10, 1)).name == "国庆节"
        assert special(date(2026, 10, 7)).name == "国庆节"
        assert special(date(2026, 9, 27)).name == "中秋节"  # a holiday, not a working day
        assert special(date(2026, 9, 20)).name == "国庆节调休"
        assert special(date(2026, 10, 10)).name == "国庆节调休"
        assert special(date(2026, 10, 8)) is None

    def test_model_is_immutable(self):
        r = routing()
        with pytest.raises(TypeError):
            r.destinations["x"] = None
        with pytest.raises(AttributeError):
            r.destinations["health"].targets = ()

    def test_defaults_applied(self):
        r = routing()
        assert r.destinations["duty"].overflow == ("voicemail",)  # rest of defaults.overflow
        assert r.destinations["health"].overflow == ("duty", "voicemail")
        assert r.destinations["health"].overflow_from == "defaults"
        assert r.destinations["police"].overflow == ("voicemail",)
        assert r.destinations["operator"].overflow == ()
        assert r.menus["main"].operator == "operator" and r.menus["main"].fallback == "operator"
        assert r.menus["main"].invalid_prompt.sound == "pm-invalid-option"
        assert r.destinations["sub"].kind == MENU  # a menu named in options

    def test_many_problems_reported_together(self):
        lines = problems("""\
            hotline: {menu: main, operator: op}
            menus: {main: {prompt: m, options: {1: nobody}}}
            destinations:
              op: {type: operator, phones: [87650100], ring_timeout: 1}
              a: {type: department, phones: ["0591-876543"], overflow: [op]}
            """)
        assert lines == [
            "r.yaml:2:40: menus.main.options.1: unknown destination 'nobody' "
            "(define it under destinations)",
            "r.yaml:4:58: destinations.op.ring_timeout: 1 is out of range (between 5 and 300)",
            "r.yaml:5:34: destinations.a.phones[0]: '0591-876543' is not a valid CN phone number "
            "(write it like 0591-87654321, 87654321, +86 591 8765 4321, a mobile 13812345678, "
            "or a channel like PJSIP/front-desk)",
        ]

    def test_error_text_is_one_line_per_problem(self):
        with pytest.raises(ConfigError) as caught:
            schema.loads("hotline: {}\nmenus: {}\ndestinations: {}\n", "r.yaml", PLAN)
        assert str(caught.value).splitlines() == [
            "r.yaml:1:10: hotline: missing required key 'menu'",
            "r.yaml:1:10: hotline: missing required key 'operator'",
        ]


class TestKeysAndTypes:
    def test_unknown_top_level_key(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            menus: {main: {prompt: m, options: {1: op}}}
            destinatons:
              op: {type: operator, phones: [87650100]}
            """) == [
            "r.yaml:1:1: missing required key 'destinations'",
            "r.yaml:3:1: destinatons: unknown key (did you mean 'destinations'?)",
        ]

    def test_unknown_destination_keys(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            menus: {main: {prompt: m, options: {1: a}}}
            destinations:
              op: {type: operator, phones: [87650100]}
              a:
                type: department
                phone: [87650001]
                mailbox: "100"
              b: {type: departement, phones: [87650002]}
            """) == [
            "r.yaml:6:5: destinations.a.phones: a destination that rings needs at least one "
            "phone (phones: [0591-87650001])",
            "r.yaml:7:5: destinations.a.phone: unknown key (did you mean 'phones'?)",
            "r.yaml:8:5: destinations.a.mailbox: unknown key (a department destination has: type, "
            "label, code, ring_timeout, trunk, hours, closed, overflow, phones, strategy)",
            "r.yaml:9:13: destinations.b.type: unknown destination type 'departement' "
            "(did you mean 'department'?)",
        ]

    def test_wrong_types_and_ranges(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            defaults: {ring_timeout: "20s"}
            menus:
              main: {prompt: m, options: {1: op}, direct_dial: "yes", retries: 99, timeout: fast}
            destinations:
              op: {type: operator, phones: 87650100, strategy: all}
            """) == [
            "r.yaml:2:26: defaults.ring_timeout: must be a whole number, not str '20s'",
            "r.yaml:4:52: menus.main.direct_dial: must be true or false, not str 'yes'",
            "r.yaml:4:68: menus.main.retries: 99 is out of range (between 0 and 10)",
            "r.yaml:4:81: menus.main.timeout: must be a number of seconds, not str 'fast'",
            "r.yaml:6:52: destinations.op.strategy: 'all' is not allowed (allowed: hunt, ring-all)",
        ]

    def test_missing_required_per_kind(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            menus: {main: {prompt: m, options: {1: op}}}
            destinations:
              op: {type: operator, phones: [87650100]}
              s: {type: service, overflow: [op]}
              v: {type: voicemail, mailbox: "1 2"}
              n: {type: announcement}
              m: {type: menu}
            """) == [
            "r.yaml:5:6: destinations.s: missing required key 'number' "
            "(the outside number to dial, e.g. 0591-87650041)",
            "r.yaml:6:33: destinations.v.mailbox: '1 2' is not a mailbox "
            "(box or box@context, e.g. 100@switchboard)",
            "r.yaml:7:6: destinations.n: missing required key 'sound'",
            "r.yaml:8:6: destinations.m: missing required key 'menu'",
        ]

    def test_sounds(self):
        assert problems("""\
            hotline: {menu: main, operator: op, greeting: welcome.wav}
            menus: {main: {prompt: "main menu", options: {1: op}}}
            """ + OK_TAIL) == [
            "r.yaml:1:47: hotline.greeting: sound 'welcome.wav' has a file extension "
            "(write 'welcome': Asterisk picks the format)",
            "r.yaml:2:24: menus.main.prompt: 'main menu' is not a sound file name "
            "(letters, digits, _ - . and / only, e.g. hotline/welcome)",
        ]

    def test_option_keys(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            menus:
              main:
                prompt: m
                operator: op
                options: {12: op, 0: op, "#": op}
            """ + OK_TAIL) == [
            "r.yaml:6:15: menus.main.options.12: '12' is not one key (options are single keys "
            "0-9, * or # (quote * and #); longer numbers are destinations' direct-dial codes)",
            "r.yaml:6:23: menus.main.options.0: 0 is already the operator key of this menu "
            "(remove 'operator' or this option)",
        ]

    def test_unknown_trunk(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            menus: {main: {prompt: m, options: {1: s}}}
            destinations:
              op: {type: operator, phones: [87650100]}
              s: {type: service, number: 87650041, trunk: outsde, overflow: [op]}
            """, trunks=["default", "outside"]) == [
            "r.yaml:5:47: destinations.s.trunk: no trunk named 'outsde' (did you mean 'outside'?)",
        ]

    def test_closed_without_hours(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            menus: {main: {prompt: m, options: {1: a}}}
            destinations:
              op: {type: operator, phones: [87650100]}
              a: {type: department, phones: [87650001], closed: op, overflow: [op]}
            """) == [
            "r.yaml:5:53: destinations.a.closed: never used: no hours are given "
            "(add hours, or remove closed)",
        ]

    def test_yaml_syntax_error(self):
        [problem] = problems("hotline: {menu: main\nmenus: [\n")
        # libyaml and the pure-Python parser word it differently; both locate it.
        assert problem.startswith("r.yaml:2:6: YAML syntax: ")
        assert "',' or '}'" in problem

    def test_duplicate_key(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            hotline: {menu: main, operator: op}
            """) == ["r.yaml:2:1: hotline: duplicate key (first at line 1) (remove one of them)"]


class TestReferences:
    def test_undefined_references(self):
        assert problems("""\
            hotline: {menu: mian, operator: sub}
            menus:
              main: {prompt: m, options: {1: helth, 2: sub}}
              sub: {prompt: s, options: {1: health}}
            destinations:
              op: {type: operator, phones: [87650100]}
              health: {type: department, phones: [87650011], overflow: [op, voicemial]}
              m: {type: menu, menu: nosuch}
            """) == [
            "r.yaml:1:17: hotline.menu: unknown menu 'mian' (did you mean 'main'?)",
            "r.yaml:1:33: hotline.operator: 'sub' is a menu "
            "(this must be a destination that rings or takes the call)",
            "r.yaml:3:34: menus.main.options.1: unknown destination 'helth' "
            "(did you mean 'health'?)",
            "r.yaml:7:65: destinations.health.overflow[1]: unknown destination 'voicemial' "
            "(define it under destinations)",
            "r.yaml:8:25: destinations.m.menu: unknown menu 'nosuch' (define it under menus)",
        ]

    def test_menu_and_destination_share_a_name(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            menus: {main: {prompt: m, options: {1: op}}}
            destinations:
              op: {type: operator, phones: [87650100]}
              main: {type: voicemail, mailbox: "100"}
            """) == [
            "r.yaml:5:9: menus.main: 'main' names both a menu and a destination "
            "(rename one of them: options refer to either by name)",
        ]

    def test_menu_loop_without_exit(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            menus:
              main: {prompt: m, options: {1: sub}, operator: false, fallback: sub,
                     direct_dial: false}
              sub: {prompt: s, options: {1: main}, operator: false, fallback: main}
            """ + OK_TAIL) == [
            "r.yaml:3:9: menus.main: menu loop with no way out: every choice leads to another "
            "menu (give an option, the operator or the fallback a destination that is not a menu)",
            "r.yaml:5:8: menus.sub: menu loop with no way out: every choice leads to another "
            "menu (give an option, the operator or the fallback a destination that is not a menu)",
            "r.yaml:5:67: menus.sub.fallback: a caller who presses nothing goes round "
            "main -> sub -> main forever (make one fallback a destination that takes the call)",
        ]

    def test_fallback_loop(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            menus:
              main: {prompt: m, options: {1: sub}, fallback: sub}
              sub: {prompt: s, options: {1: op}, fallback: main}
            """ + OK_TAIL) == [
            "r.yaml:4:48: menus.sub.fallback: a caller who presses nothing goes round "
            "main -> sub -> main forever (make one fallback a destination that takes the call)",
        ]

    def test_defaults_overflow_cannot_be_a_menu(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            defaults: {overflow: [main]}
            menus: {main: {prompt: m, options: {1: op}}}
            """ + OK_TAIL) == [
            "r.yaml:2:23: defaults.overflow[0]: 'main' is a menu "
            "(this must be a destination that rings or takes the call)",
        ]


class TestChains:
    def test_overflow_loop(self):
        lines = problems("""\
            hotline: {menu: main, operator: op}
            menus: {main: {prompt: m, options: {1: a}}}
            destinations:
              op: {type: operator, phones: [87650100]}
              a: {type: department, phones: [87650001], overflow: [b]}
              b: {type: department, phones: [87650002], overflow: [a]}
            """)
        assert lines == [
            "r.yaml:5:55: destinations.a.overflow: the call can be dropped: if nobody answers, "
            "a -> b -> a, round in a loop, and nothing takes the call (end it with voicemail, an "
            "announcement or the operator (or set defaults.overflow))",
            "r.yaml:6:55: destinations.b.overflow: the call can be dropped: if nobody answers, "
            "b -> a -> b, round in a loop, and nothing takes the call (end it with voicemail, an "
            "announcement or the operator (or set defaults.overflow))",
            "r.yaml:6:56: destinations.b.overflow[0]: overflow and closed destinations go round "
            "in a loop: a -> b -> a (end it with voicemail, an announcement or the operator)",
        ]

    def test_closed_loop(self):
        lines = problems("""\
            hotline: {menu: main, operator: op}
            menus: {main: {prompt: m, options: {1: a}}}
            destinations:
              op: {type: operator, phones: [87650100]}
              a: {type: department, phones: [87650001], hours: {daily: ["08:00-12:00"]},
                  closed: b, overflow: [op]}
              b: {type: department, phones: [87650002], hours: {daily: ["14:00-18:00"]},
                  closed: a, overflow: [op]}
            """)
        assert lines == ["r.yaml:8:15: destinations.b.closed: overflow and closed destinations "
                         "go round in a loop: a -> b -> a "
                         "(end it with voicemail, an announcement or the operator)"]

    def test_call_that_can_be_dropped(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            menus: {main: {prompt: m, options: {1: a, 2: c}}}
            destinations:
              op: {type: operator, phones: [87650100]}
              a: {type: department, phones: [87650001], overflow: [b]}
              b: {type: department, phones: [87650002]}
              c: {type: service, number: 87650041, overflow: [b, op]}
            """) == [
            "r.yaml:5:55: destinations.a.overflow: the call can be dropped: if nobody answers, "
            "a -> b -> nothing takes the call (end it with voicemail, an announcement or the "
            "operator (or set defaults.overflow))",
            "r.yaml:6:6: destinations.b: the call can be dropped: if nobody answers, b -> nothing "
            "takes the call (end it with voicemail, an announcement or the operator "
            "(or set defaults.overflow))",
        ]

    def test_defaults_make_chains_safe(self):
        r = routing("""\
            hotline: {menu: main, operator: op}
            defaults: {overflow: [duty, vm]}
            menus: {main: {prompt: m, options: {1: a}}}
            destinations:
              op: {type: operator, phones: [87650100]}
              a: {type: department, phones: [87650001]}
              duty: {type: department, phones: [87650190]}
              vm: {type: voicemail, mailbox: "100"}
            """)
        assert r.destinations["a"].overflow == ("duty", "vm")
        assert r.destinations["duty"].overflow == ("vm",)

    def test_duplicate_and_clashing_codes(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            menus: {main: {prompt: m, options: {1: a}}}
            destinations:
              op: {type: operator, phones: [87650100], code: "80"}
              a: {type: department, phones: [87650001], code: "801", overflow: [op]}
              b: {type: department, phones: [87650002], code: "801", overflow: [op]}
              c: {type: department, phones: [87650003], code: "101", overflow: [op]}
              d: {type: department, phones: [87650004], code: 8-1, overflow: [op]}
              e: {type: department, phones: [87650005], code: "٨٠٢", overflow: [op]}
              f: {type: department, phones: [87650006], code: "802\\n", overflow: [op]}
            """) == [
            "r.yaml:5:51: destinations.a.code: code 801 begins with code 80 of 'op' (a caller "
            "dialling it would be put through as soon as the shorter code is complete)",
            "r.yaml:6:51: destinations.b.code: code 801 is already used by 'a' (line 5) "
            "(give each destination its own code)",
            "r.yaml:7:51: destinations.c.code: code 101 begins with 1, an option of menu 'main' "
            "(choose codes that begin with a key no menu option uses (e.g. 8xx), or set "
            "direct_dial: false in menu 'main')",
            "r.yaml:8:51: destinations.d.code: '8-1' is not a dialling code "
            "(digits only, e.g. \"801\")",
            # Digits of other scripts are not keys on a phone; nor is a final newline.
            "r.yaml:9:51: destinations.e.code: '٨٠٢' is not a dialling code "
            "(digits only, e.g. \"801\")",
            "r.yaml:10:51: destinations.f.code: '802\\n' is not a dialling code "
            "(digits only, e.g. \"801\")",
        ]


class TestHours:
    def test_hour_mistakes(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            menus: {main: {prompt: m, options: {1: a}}}
            destinations:
              op: {type: operator, phones: [87650100]}
              a:
                type: department
                phones: [87650001]
                overflow: [op]
                hours:
                  mon-fri: ["08:00-12:00", "11:00-13:00"]
                  wed: ["18:00-19:00"]
                  sat: ["22:00-02:00"]
                  sun: ["01:00-05:00", "8:30-12"]
                  monday-friday: ["08:00-09:00"]
                  holidays: ["09:00-11:00", "10:00-12:00"]
                  working_days: maybe
            """) == [
            "r.yaml:10:32: destinations.a.hours.mon-fri[1]: 11:00-13:00 overlaps 08:00-12:00 "
            "on Monday (each time of day may be listed once)",
            "r.yaml:11:7: destinations.a.hours.wed: Wednesday is already given by 'mon-fri' "
            "(line 10) (give each weekday once)",
            "r.yaml:13:13: destinations.a.hours.sun[0]: 01:00-05:00 overlaps 22:00-02:00 "
            "(running past midnight) on Sunday (each time of day may be listed once)",
            "r.yaml:13:28: destinations.a.hours.sun[1]: '12' is not a time "
            "(write HH:MM-HH:MM, e.g. 08:30-12:00; 22:00-06:00 runs past midnight)",
            "r.yaml:14:7: destinations.a.hours.monday-friday: 'monday-friday' does not name "
            "weekdays (use mon ... sun, mon-fri, sat,sun, daily, weekdays or weekends; "
            "and holidays / working_days)",
            "r.yaml:15:33: destinations.a.hours.holidays[1]: 10:00-12:00 overlaps 09:00-11:00 "
            "(each time of day may be listed once)",
            "r.yaml:16:21: destinations.a.hours.working_days: 'maybe' is not allowed "
            "(observe (weekend working days keep weekday hours) or weekly)",
        ]

    def test_hours_must_be_a_mapping(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            menus: {main: {prompt: m, options: {1: a}}}
            destinations:
              op: {type: operator, phones: [87650100]}
              a: {type: department, phones: [87650001], overflow: [op], hours: "9-5"}
            """) == [
            "r.yaml:5:68: destinations.a.hours: must be a mapping of weekdays to hours, "
            "not str '9-5' (e.g. mon-fri: [08:30-12:00, 14:00-17:30])",
        ]


class TestCalendar:
    def test_calendar_mistakes(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            holidays:
              - {date: 2026-10-01, to: 2026-10-07, name: 国庆节}
              - {date: 2026-10-05, name: 重复}
              - {date: 2026-05-05, to: 2026-05-01}
              - "2026/01/01"
            working_days:
              - 2026-09-22
              - 2026-10-03
              - {date: 2026-10-10, as: someday}
              - 2026-10-10
            timezone: Asia/Fuzhou
            menus: {main: {prompt: m, options: {1: op}}}
            """ + OK_TAIL) == [
            "r.yaml:4:5: holidays[1]: 2026-10-05 is already in holiday 国庆节 (line 3) "
            "(list each day once)",
            "r.yaml:5:28: holidays[2].to: 2026-05-01 is before 2026-05-05 "
            "('to' is the last day of the holiday)",
            "r.yaml:6:5: holidays[3]: '2026/01/01' is not a date (write YYYY-MM-DD, e.g. 2026-10-01)",
            "r.yaml:8:5: working_days[0]: 2026-09-22 is a Tuesday, a working day anyway "
            "(working_days lists weekend days that are working days)",
            "r.yaml:9:5: working_days[1]: 2026-10-03 is also a holiday (国庆节, line 3) "
            "(a day is either a holiday or a working day)",
            "r.yaml:10:28: working_days[2].as: 'someday' is not one weekday (mon, tue, ... fri)",
            "r.yaml:11:5: working_days[3]: 2026-10-10 is listed twice (line 10)",
            "r.yaml:12:11: timezone: unknown time zone 'Asia/Fuzhou' (e.g. Asia/Shanghai)",
        ]

    def test_impossible_dates_are_located(self):
        assert problems("""\
            hotline: {menu: main, operator: op}
            holidays:
              - {date: 2026-02-30, name: x}
              - 2026-13-01
            """) == [
            "r.yaml:3:12: holidays[0].date: '2026-02-30' is not a date (day is out of range for "
            "month) (write YYYY-MM-DD, e.g. 2026-10-01)",
            "r.yaml:4:5: holidays[1]: '2026-13-01' is not a date (month must be in 1..12) "
            "(write YYYY-MM-DD, e.g. 2026-10-01)",
        ]

    def test_quoted_dates_and_as(self):
        r = routing("""\
            hotline: {menu: main, operator: op}
            holidays: ["2026-01-01", {date: "2026-02-15", to: "2026-02-23", name: 春节}]
            working_days: [{date: "2026-02-14", name: 春节调休, as: fri}]
            menus: {main: {prompt: m, options: {1: op}}}
            """ + OK_TAIL)
        assert r.calendar.special(date(2026, 1, 1)).name == "holiday"
        assert r.calendar.special(date(2026, 2, 20)).name == "春节"
        assert r.calendar.special(date(2026, 2, 14)).weekday == 4


def big_document(n: int) -> str:
    lines = ["hotline: {numbers: ['12345'], menu: main, operator: operator}",
             "defaults: {overflow: [duty, voicemail]}",
             "holidays: [{date: 2026-10-01, to: 2026-10-07, name: 国庆节}]",
             "working_days: [2026-09-20, 2026-10-10]",
             "menus:", "  main:", "    prompt: main", "    options:"]
    lines += [f"      {i}: d{i}" for i in range(1, 8)]
    lines += ["destinations:",
              "  operator: {type: operator, phones: [87650100]}",
              "  duty: {type: department, phones: [87650190]}",
              "  voicemail: {type: voicemail, mailbox: '100'}"]
    for i in range(n):
        lines += [f"  d{i}:", "    type: department", f"    label: 部门{i}",
                  f"    code: '{80000 + i}'",
                  f"    phones: [0591-8765{i % 10000:04d}, '+86 591 8766 {i % 10000:04d}']",
                  "    strategy: hunt",
                  "    hours: {mon-fri: ['08:30-12:00', '14:00-17:30'], sat: ['09:00-12:00']}",
                  "    closed: voicemail"]
    return "\n".join(lines) + "\n"


def test_two_thousand_destinations_validate_quickly():
    from switchboard import yamlconf
    data = yamlconf.loads(big_document(2000), "big.yaml")
    started = time.perf_counter()
    r = schema.validate(data, "big.yaml", PLAN)
    took = time.perf_counter() - started
    assert len(r.destinations) == 2003 + 1  # with the menu
    # About 0.5 s on a development machine the first time (phone numbers are
    # then cached); the bound leaves room for a busy test machine.
    assert took < 3.0


def test_routing_constant_validates():
    assert routing(ROUTING).hotline.greeting.sound == "hello"
