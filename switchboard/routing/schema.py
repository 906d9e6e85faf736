"""
Validation of a routing file into a L{Routing}.

L{validate} walks the whole document and reports every problem at once,
each as C{file:line:column: key.path: message (hint)}; only a file without
problems becomes a L{Routing}. The file format is described in the header
of C{config/routing.yaml}.
"""

from __future__ import annotations

import difflib
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from switchboard import yamlconf
from switchboard.numbers import InvalidNumber, NumberPlan
from switchboard.routing import checks
from switchboard.routing.fields import Reader, as_list, key_where, where
from switchboard.routing.model import (
    ANNOUNCEMENT,
    DEPARTMENT,
    KINDS,
    MENU,
    OPERATOR,
    OPTION_KEYS,
    RING_ALL,
    RINGING,
    SERVICE,
    STRATEGIES,
    VOICEMAIL,
    Destination,
    Hotline,
    Menu,
    Routing,
    frozen_mapping,
)
from switchboard.routing.schedule import WEEKDAYS, Calendar, Holiday, WorkingDay, parse_days
from switchboard.yamlconf import Checker, ConfigError, LocatedDict, _suggest

TOP_KEYS = ("hotline", "timezone", "holidays", "working_days", "defaults", "menus", "destinations")
HOTLINE_KEYS = ("numbers", "greeting", "menu", "operator", "sorry")
DEFAULT_KEYS = ("ring_timeout", "strategy", "overflow", "menu_timeout", "digit_timeout",
                "retries", "invalid_prompt", "timeout_prompt", "voicemail_context")
MENU_KEYS = ("prompt", "label", "options", "operator", "direct_dial", "timeout",
             "digit_timeout", "retries", "invalid_prompt", "timeout_prompt", "fallback")
_COMMON = ("type", "label", "code")
_RINGS = ("ring_timeout", "trunk", "hours", "closed", "overflow")
KIND_KEYS = {
    DEPARTMENT: _COMMON + _RINGS + ("phones", "strategy"),
    OPERATOR: _COMMON + _RINGS + ("phones", "strategy"),
    SERVICE: _COMMON + _RINGS + ("number",),
    VOICEMAIL: _COMMON + ("mailbox", "options"),
    ANNOUNCEMENT: _COMMON + ("sound",),
    MENU: _COMMON + ("menu",),
}
_ALL_DESTINATION_KEYS = sorted({k for keys in KIND_KEYS.values() for k in keys})


class Ref:
    """A name written somewhere in the file, to be resolved once all are read."""

    def __init__(self, name, location, path, *, menus_only=False, no_menu=False):
        self.name, self.location, self.path = name, location, path
        self.menus_only, self.no_menu = menus_only, no_menu


def load(path: str, numbers: NumberPlan, *, trunks=None) -> Routing:
    """Read, parse and validate the routing file at C{path}."""
    try:
        data = yamlconf.load(path)
    except ValueError:
        with open(path, encoding="utf-8") as f:
            raise ConfigError(_bad_scalars(f.read(), path))
    return validate(data, path, numbers, trunks=trunks)


def loads(text: str, path: str, numbers: NumberPlan, *, trunks=None) -> Routing:
    """Parse and validate routing YAML given as text (tests, C{check} of stdin)."""
    try:
        data = yamlconf.loads(text, path)
    except ValueError:
        raise ConfigError(_bad_scalars(text, path))
    return validate(data, path, numbers, trunks=trunks)


def _bad_scalars(text: str, path: str) -> list:
    """
    Locate the values YAML recognises but cannot build (the date
    2026-02-30): the YAML loader reports them without a place.
    """
    import yaml
    problems = []
    constructor = yaml.constructor.SafeConstructor()

    def walk(node, key):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                walk(v, f"{key}.{k.value}" if key else str(k.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{key}[{i}]")
        elif node.tag == "tag:yaml.org,2002:timestamp":
            try:
                constructor.construct_yaml_timestamp(node)
            except ValueError as e:
                mark = node.start_mark
                problems.append(yamlconf.Problem(
                    yamlconf.Location(path, mark.line + 1, mark.column + 1), key,
                    f"'{node.value}' is not a date ({e})", "write YYYY-MM-DD, e.g. 2026-10-01"))

    walk(yaml.compose(text, Loader=yaml.SafeLoader), "")
    return problems or [yamlconf.Problem(yamlconf.Location(path, 1, 1), "",
                                         "a value cannot be read", "check the dates")]


def validate(data, path: str, numbers: NumberPlan, *, trunks=None) -> Routing:
    """
    Check a parsed routing document and build the L{Routing}.

    @param data: what L{switchboard.yamlconf.load} returned for C{path}.
    @param numbers: the community's L{NumberPlan} (area code for short numbers).
    @param trunks: names of the configured trunks, if known (checked when given).
    @raise ConfigError: naming every problem found.
    """
    return _Validator(path, numbers, trunks).run(data)


class _Validator:
    def __init__(self, path, numbers, trunks):
        self.path = path
        self.check = Checker()
        self.read = Reader(self.check, numbers)
        self.trunks = set(trunks) if trunks is not None else None
        self.refs: list[Ref] = []
        self.destinations: dict = {}
        self.menus: dict = {}
        self.locations: dict = {}  # destination/menu name -> (location, path)
        self.codes: list = []  # (code, destination, location, path)
        self.own_overflow: dict = {}  # destination -> ([(name, location, path)], location)
        self.declared: set = set()  # every destination name, even a broken one
        self.closed_at: dict = {}  # destination -> (location, path) of its closed key
        self.fallback_at: dict = {}  # menu -> (location, path) of its fallback key

    def ref(self, name, location, path, **kw):
        if name is not None:
            self.refs.append(Ref(name, location, path, **kw))
        return name

    def run(self, data) -> Routing:
        if data is None:
            data = LocatedDict()
            data.location = yamlconf.Location(self.path, 1, 1)
        data = self.check.mapping(data, "", yamlconf.Location(self.path, 1, 1), allowed=TOP_KEYS,
                                  required=("hotline", "menus", "destinations"))
        tz = self.timezone(data)
        calendar = self.calendar(data)
        self.defaults(data.get("defaults", LocatedDict()), data.where("defaults"))
        for name, value in self.check.mapping(data.get("destinations", LocatedDict()),
                                              "destinations", data.where("destinations")).items():
            self.destination(str(name), value, data["destinations"], name)
        for name, value in self.check.mapping(data.get("menus", LocatedDict()), "menus",
                                              data.where("menus")).items():
            self.menu(str(name), value, data["menus"], name)
        hotline = self.hotline(data.get("hotline", LocatedDict()), data.where("hotline"))
        resolved = self.resolve()
        self.apply_defaults(hotline)
        # The checks of the whole need every name to lead somewhere; other
        # mistakes do not stop them.
        if resolved and self.declared <= set(self.destinations) and hotline.menu \
                and hotline.operator:
            checks.run(self)
        if self.check.problems:
            self.check.problems.sort(key=_position)
            raise ConfigError(self.check.problems)
        return Routing(path=self.path, hotline=hotline, calendar=calendar,
                       menus=frozen_mapping(self.menus),
                       destinations=frozen_mapping(self.destinations),
                       codes=frozen_mapping((code, dest) for code, dest, _, _ in self.codes),
                       tz=tz)

    # Top-level sections

    def timezone(self, data):
        name = self.read.text(data, "timezone", "timezone")
        if name is None:
            return None
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.check.add(data.where("timezone"), "timezone", f"unknown time zone '{name}'",
                           "e.g. Asia/Shanghai")
            return None

    def calendar(self, data) -> Calendar:
        holidays, days = [], {}
        for i, item in enumerate(self._list(data, "holidays")):
            path, location = f"holidays[{i}]", data["holidays"].where(i)
            if isinstance(item, dict):
                item = self.check.mapping(item, path, location, allowed=("date", "to", "name"),
                                          required=("date",))
                first = self.read.date(item["date"], item.where("date"), f"{path}.date") \
                    if "date" in item else None
                last = self.read.date(item["to"], item.where("to"), f"{path}.to") \
                    if "to" in item else first
                name = self.read.text(item, "name", f"{path}.name", "holiday")
            else:
                first = last = self.read.date(item, location, path)
                name = "holiday"
            if first is None or last is None:
                continue
            if last < first:
                self.check.add(where(item, "to"), f"{path}.to", f"{last} is before {first}",
                               "'to' is the last day of the holiday")
                continue
            if (last - first).days > 366:
                self.check.add(where(item, "to"), f"{path}.to", "a holiday longer than a year",
                               "check the year of 'to'")
                continue
            day = first
            while day <= last:
                if day in days:
                    other, line = days[day]
                    self.check.add(location, path, f"{day} is already in holiday {other} "
                                   f"(line {line})", "list each day once")
                    break
                days[day] = (name, location.line if location else "?")
                day += timedelta(days=1)
            holidays.append(Holiday(first, last, name))
        working, seen = [], {}
        for i, item in enumerate(self._list(data, "working_days")):
            path, location = f"working_days[{i}]", data["working_days"].where(i)
            weekday = 0
            if isinstance(item, dict):
                item = self.check.mapping(item, path, location, allowed=("date", "name", "as"),
                                          required=("date",))
                day = self.read.date(item["date"], item.where("date"), f"{path}.date") \
                    if "date" in item else None
                name = self.read.text(item, "name", f"{path}.name", "working day")
                as_day = self.read.text(item, "as", f"{path}.as")
                if as_day is not None:
                    try:
                        (weekday,) = parse_days(as_day)
                    except ValueError:
                        self.check.add(item.where("as"), f"{path}.as",
                                       f"'{as_day}' is not one weekday", "mon, tue, ... fri")
            else:
                day, name = self.read.date(item, location, path), "working day"
            if day is None:
                continue
            if day.weekday() < 5:
                self.check.add(location, path, f"{day} is a {day.strftime('%A')}, a working day "
                               "anyway", "working_days lists weekend days that are working days")
            elif day in days:
                self.check.add(location, path, f"{day} is also a holiday ({days[day][0]}, line "
                               f"{days[day][1]})", "a day is either a holiday or a working day")
            elif day in seen:
                self.check.add(location, path, f"{day} is listed twice (line {seen[day]})")
            else:
                seen[day] = location.line if location else "?"
                working.append(WorkingDay(day, name, weekday))
        return Calendar(tuple(holidays), tuple(working))

    def _list(self, data, key):
        if key not in data:
            return []
        if not isinstance(data[key], list):
            self.check.add(data.where(key), key, "must be a list",
                           "one '- ' item per line")
            return []
        return data[key]

    def defaults(self, value, location):
        m = self.check.mapping(value, "defaults", location, allowed=DEFAULT_KEYS)
        r = self.read
        self.ring_timeout = r.whole(m, "ring_timeout", "defaults.ring_timeout", 20, 5, 300)
        self.strategy = r.choice(m, "strategy", "defaults.strategy", RING_ALL, STRATEGIES)
        self.menu_timeout = r.seconds(m, "menu_timeout", "defaults.menu_timeout", 5.0, 1, 60)
        self.digit_timeout = r.seconds(m, "digit_timeout", "defaults.digit_timeout", 3.0, 1, 30)
        self.retries = r.whole(m, "retries", "defaults.retries", 2, 0, 10)
        self.invalid_prompt = r.sound(m, "invalid_prompt", "defaults.invalid_prompt",
                                      "pm-invalid-option")
        self.timeout_prompt = r.sound(m, "timeout_prompt", "defaults.timeout_prompt")
        self.voicemail_context = r.text(m, "voicemail_context", "defaults.voicemail_context",
                                        "default")
        names = r.names(m, "overflow", "defaults.overflow") or []
        self.default_overflow = tuple(self.ref(n, loc, p, no_menu=True) for n, loc, p in names)
        self.default_overflow_location = m.where("overflow") if "overflow" in m else location

    def destination(self, name, value, parent, key):
        path = f"destinations.{name}"
        self.locations[name] = (parent.where(key), path)
        self.declared.add(name)
        m = self.check.mapping(value, path, parent.where(key), required=("type",))
        kind = self.read.text(m, "type", f"{path}.type")
        if kind is not None and kind not in KINDS:
            self.check.add(m.where("type"), f"{path}.type", f"unknown destination type '{kind}'",
                           _suggest(kind, KINDS))
            kind = None
        allowed = KIND_KEYS.get(kind, _ALL_DESTINATION_KEYS)
        for k in m:
            if k not in allowed:
                hint = (f"a {kind} destination has: {', '.join(allowed)}"
                        if k in _ALL_DESTINATION_KEYS else _suggest(str(k), allowed))
                self.check.add(key_where(m, k), f"{path}.{k}", "unknown key", hint)
        if kind is None:
            return
        r = self.read
        fields = dict(name=name, kind=kind, label=r.text(m, "label", f"{path}.label", name))
        if "code" in m:
            code = m["code"]
            code = str(code) if isinstance(code, int) and not isinstance(code, bool) else code
            if not isinstance(code, str) or not code.isdigit() or not 1 <= len(code) <= 8:
                self.check.add(m.where("code"), f"{path}.code", f"{code!r} is not a dialling code",
                               "digits only, e.g. \"801\"")
            else:
                fields["code"] = code
                self.codes.append((code, name, m.where("code"), f"{path}.code"))
        if kind in RINGING:
            fields.update(self.ringing(m, path, kind))
        elif kind == VOICEMAIL:
            mailbox = m.get("mailbox")
            mailbox = str(mailbox) if isinstance(mailbox, int) else mailbox
            if "mailbox" not in m:
                self.check.add(m.location, path, "missing required key 'mailbox'",
                               "e.g. mailbox: 100@switchboard")
            elif not isinstance(mailbox, str) or not _mailbox_ok(mailbox):
                self.check.add(m.where("mailbox"), f"{path}.mailbox",
                               f"{mailbox!r} is not a mailbox", "box or box@context, e.g. 100@switchboard")
            else:
                fields["mailbox"] = mailbox if "@" in mailbox else f"{mailbox}@{self.voicemail_context}"
            options = r.text(m, "options", f"{path}.options", "u")
            if not options.isalpha():
                self.check.add(m.where("options"), f"{path}.options", f"'{options}' are not "
                               "VoiceMail options", "letters such as u (unavailable) or b (busy)")
            fields["voicemail_options"] = options
        elif kind == ANNOUNCEMENT:
            fields["sound"] = r.sound(m, "sound", f"{path}.sound")
            if "sound" not in m:
                self.check.add(m.location, path, "missing required key 'sound'")
        elif kind == MENU:
            fields["menu"] = self.ref(r.name(m, "menu", f"{path}.menu"), m.where("menu"),
                                      f"{path}.menu", menus_only=True)
            if "menu" not in m:
                self.check.add(m.location, path, "missing required key 'menu'")
        self.destinations[name] = fields

    def ringing(self, m, path, kind) -> dict:
        r = self.read
        if kind == SERVICE:
            if "number" not in m:
                self.check.add(m.location, path, "missing required key 'number'",
                               "the outside number to dial, e.g. 0591-87650041")
                raw = []
            else:
                raw = [(m["number"], m.where("number"), f"{path}.number")]
        else:
            phones = m.get("phones")
            if "phones" not in m or phones in (None, []):
                self.check.add(m.where("phones") if "phones" in m else m.location, f"{path}.phones",
                               "a destination that rings needs at least one phone",
                               "phones: [0591-87650001]")
                phones = []
            items = as_list(phones)
            raw = [(v, where(items, i) if isinstance(phones, list) else m.where("phones"),
                    f"{path}.phones[{i}]" if isinstance(phones, list) else f"{path}.phones")
                   for i, v in enumerate(items)]
        targets, seen = [], {}
        for value, location, item_path in raw:
            target = r.phone(value, location, item_path)
            if target is None:
                continue
            if target in seen:
                self.check.add(location, item_path, f"{target} is listed twice (as {seen[target]})")
                continue
            seen[target] = item_path.rsplit(".", 1)[-1]
            targets.append(target)
        trunk = r.text(m, "trunk", f"{path}.trunk", "default")
        if self.trunks is not None and "trunk" in m and trunk not in self.trunks:
            self.check.add(m.where("trunk"), f"{path}.trunk", f"no trunk named '{trunk}'",
                           _suggest(trunk, sorted(self.trunks)))
        hours = r.hours(m["hours"], m.where("hours"), f"{path}.hours") if "hours" in m else None
        closed = self.ref(r.name(m, "closed", f"{path}.closed"), m.where("closed"), f"{path}.closed")
        if closed is not None:
            self.closed_at[m_name(path)] = (m.where("closed"), f"{path}.closed")
        if closed is not None and "hours" not in m:
            self.check.add(m.where("closed"), f"{path}.closed", "never used: no hours are given",
                           "add hours, or remove closed")
        own = r.names(m, "overflow", f"{path}.overflow")
        if own is not None:
            for n, loc, p in own:
                self.ref(n, loc, p)
            self.own_overflow[m_name(path)] = (own, m.where("overflow"))
        return dict(targets=tuple(targets),
                    strategy=r.choice(m, "strategy", f"{path}.strategy", self.strategy, STRATEGIES),
                    ring_timeout=r.whole(m, "ring_timeout", f"{path}.ring_timeout",
                                         self.ring_timeout, 5, 300),
                    trunk=trunk, hours=hours, closed=closed)

    def menu(self, name, value, parent, key):
        path = f"menus.{name}"
        self.locations.setdefault(name, (parent.where(key), path))
        m = self.check.mapping(value, path, parent.where(key), allowed=MENU_KEYS,
                               required=("prompt",))
        r = self.read
        options = {}
        raw = m.get("options", LocatedDict())
        raw = self.check.mapping(raw, f"{path}.options", m.where("options"))
        for k, v in raw.items():
            option = str(k)
            item_path = f"{path}.options.{option}"
            if len(option) != 1 or option not in OPTION_KEYS:
                self.check.add(key_where(raw, k), item_path, f"'{option}' is not one key",
                               "options are single keys 0-9, * or # (quote * and #); longer "
                               "numbers are destinations' direct-dial codes")
                continue
            options[option] = self.ref(r.name_value(v, raw.where(k), item_path), raw.where(k),
                                       item_path)
        operator = "<hotline>"
        if "operator" in m:
            if m["operator"] in (False, "none"):
                operator = None
            else:
                operator = self.ref(r.name(m, "operator", f"{path}.operator"), m.where("operator"),
                                    f"{path}.operator", no_menu=True)
                if "0" in options:
                    self.check.add(key_where(raw, 0) or key_where(raw, "0"), f"{path}.options.0",
                                   "0 is already the operator key of this menu",
                                   "remove 'operator' or this option")
        fallback = "<hotline>"
        self.fallback_at[name] = (m.where("fallback"), f"{path}.fallback")
        if "fallback" in m:
            fallback = self.ref(r.name(m, "fallback", f"{path}.fallback"), m.where("fallback"),
                                f"{path}.fallback")
        self.menus[name] = dict(
            name=name, label=r.text(m, "label", f"{path}.label", name),
            prompt=r.sound(m, "prompt", f"{path}.prompt"),
            options=frozen_mapping({k: v for k, v in options.items() if v is not None}),
            operator=operator, fallback=fallback,
            direct_dial=r.flag(m, "direct_dial", f"{path}.direct_dial", True),
            timeout=r.seconds(m, "timeout", f"{path}.timeout", self.menu_timeout, 1, 60),
            digit_timeout=r.seconds(m, "digit_timeout", f"{path}.digit_timeout",
                                    self.digit_timeout, 1, 30),
            retries=r.whole(m, "retries", f"{path}.retries", self.retries, 0, 10),
            invalid_prompt=r.sound(m, "invalid_prompt", f"{path}.invalid_prompt",
                                   self.invalid_prompt),
            timeout_prompt=r.sound(m, "timeout_prompt", f"{path}.timeout_prompt",
                                   self.timeout_prompt))

    def hotline(self, value, location) -> Hotline:
        m = self.check.mapping(value, "hotline", location, allowed=HOTLINE_KEYS,
                               required=("menu", "operator"))
        r = self.read
        numbers = []
        raw = m.get("numbers", [])
        items = as_list(raw)
        for i, v in enumerate(items):
            item_path = f"hotline.numbers[{i}]" if isinstance(raw, list) else "hotline.numbers"
            loc = where(items, i) if isinstance(raw, list) else m.where("numbers")
            text = str(v).strip() if isinstance(v, (str, int)) and not isinstance(v, bool) else ""
            try:
                numbers.append(r.numbers.normalise(text))
            except InvalidNumber as e:
                if text.isdigit() and len(text) <= 8:
                    numbers.append(text)  # a short service number such as 12345
                else:
                    self.check.add(loc, item_path, str(e), "the number residents dial")
        self.hotline_menu = self.ref(r.name(m, "menu", "hotline.menu"), m.where("menu"),
                                     "hotline.menu", menus_only=True)
        self.hotline_operator = self.ref(r.name(m, "operator", "hotline.operator"),
                                         m.where("operator"), "hotline.operator", no_menu=True)
        return Hotline(numbers=tuple(numbers), menu=self.hotline_menu or "",
                       operator=self.hotline_operator or "",
                       greeting=r.sound(m, "greeting", "hotline.greeting"),
                       sorry=r.sound(m, "sorry", "hotline.sorry", "please-try-call-later"))

    # Cross references

    def resolve(self) -> bool:
        """Check every name written in the file; True if all lead somewhere."""
        resolved = True
        clash = self.declared & set(self.menus)
        for name in sorted(clash):
            self.check.add(self.locations[name][0], f"menus.{name}",
                           f"'{name}' names both a menu and a destination",
                           "rename one of them: options refer to either by name")
        menus, everything = set(self.menus), set(self.menus) | self.declared
        for ref in self.refs:
            known = menus if ref.menus_only else everything
            if ref.name in known:
                if ref.no_menu and ref.name in self.menus or (
                        ref.no_menu and self.destinations.get(ref.name, {}).get("kind") == MENU):
                    self.check.add(ref.location, ref.path, f"'{ref.name}' is a menu",
                                   "this must be a destination that rings or takes the call")
                continue
            resolved = False
            what = "menu" if ref.menus_only else "destination"
            if not ref.menus_only and not self.declared:
                continue  # no destinations section: said once already
            close = difflib.get_close_matches(ref.name, known, n=1)
            self.check.add(ref.location, ref.path, f"unknown {what} '{ref.name}'",
                           f"did you mean '{close[0]}'?" if close else f"define it under {what}s")
        return resolved and not clash

    def apply_defaults(self, hotline):
        """Fill in hotline-wide defaults and build the model objects."""
        for name, fields in list(self.menus.items()):
            if fields["operator"] == "<hotline>":
                fields["operator"] = hotline.operator or None
            if fields["fallback"] == "<hotline>":
                fields["fallback"] = hotline.operator
            self.menus[name] = Menu(**fields)
            if name not in self.destinations:
                self.destinations[name] = dict(name=name, kind=MENU, label=fields["label"],
                                               menu=name)
        defaults = self.default_overflow
        for name, fields in list(self.destinations.items()):
            if fields["kind"] in RINGING:
                own = self.own_overflow.get(name)
                if own is not None:
                    fields["overflow"] = tuple(n for n, _, _ in own[0])
                    fields["overflow_from"] = "own"
                elif name in defaults:
                    fields["overflow"] = defaults[defaults.index(name) + 1:]
                    fields["overflow_from"] = "defaults"
                else:
                    fields["overflow"] = defaults
                    fields["overflow_from"] = "defaults" if defaults else "none"
            self.destinations[name] = Destination(**fields)


def _position(problem):
    where = problem.location
    return (0, where.line, where.column) if where else (1, 0, 0)


def m_name(path: str) -> str:
    return path.split(".", 1)[1]


def _mailbox_ok(text: str) -> bool:
    box, _, context = text.partition("@")
    ok = all(c.isalnum() or c in "_-." for c in box) and box
    return bool(ok) and all(c.isalnum() or c in "_-." for c in context)


__all__ = ["load", "loads", "validate", "ConfigError", "WEEKDAYS"]
