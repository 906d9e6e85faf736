"""
Validation of a routing file into a L{Routing}.

L{validate} walks the whole document and reports every problem at once,
each as C{file:line:column: key.path: message (hint)}; only a file without
problems becomes a L{Routing}. The file format is described in the header
of C{config/routing.yaml}.
"""

from __future__ import annotations

import difflib
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from switchboard import yamlconf
from switchboard.numbers import InvalidNumber, NumberPlan
from switchboard.routing import checks, dates
from switchboard.routing.dates import CalendarSection
from switchboard.routing.destinations import DestinationSection
from switchboard.routing.fields import Reader, as_list, key_where, where
from switchboard.routing.model import (
    DEFAULT_LANGUAGE,
    MENU,
    OPTION_KEYS,
    RING_ALL,
    RINGING,
    STRATEGIES,
    Destination,
    Hotline,
    Menu,
    Routing,
    frozen_mapping,
)
from switchboard.routing.schedule import WEEKDAYS
from switchboard.yamlconf import Checker, ConfigError, LocatedDict

TOP_KEYS = ("hotline", "timezone", "holidays", "working_days", "defaults", "menus", "destinations")
HOTLINE_KEYS = ("numbers", "greeting", "menu", "operator", "sorry", "language")
NUMBER_KEYS = ("number", "language")
DEFAULT_KEYS = ("ring_timeout", "strategy", "overflow", "menu_timeout", "digit_timeout",
                "retries", "invalid_prompt", "timeout_prompt", "voicemail_context")
#: The stock sounds a text prompt falls back to until it is rendered, unless
#: it names its own C{fallback}: the hotline's sorry and invalid-entry
#: prompts keep theirs; a menu beeps, so that the caller knows to press.
SORRY = "please-try-call-later"
MENU_FALLBACK = "beep"
MENU_KEYS = ("prompt", "label", "options", "operator", "direct_dial", "timeout",
             "digit_timeout", "retries", "invalid_prompt", "timeout_prompt", "fallback")


class Ref:
    """A name written somewhere in the file, to be resolved once all are read."""

    def __init__(self, name, location, path, *, menus_only=False, no_menu=False):
        self.name, self.location, self.path = name, location, path
        self.menus_only, self.no_menu = menus_only, no_menu


def load_bytes(raw: bytes, path: str, numbers: NumberPlan, trunks=None, speech=None) -> Routing:
    """
    Check the routing file C{path}, whose content is C{raw}.

    @raise ConfigError: the file is not UTF-8 or not a valid routing.
    """
    return loads(yamlconf.decode(raw, path), path, numbers, trunks=trunks, speech=speech)


def load(path: str, numbers: NumberPlan, *, trunks=None, speech=None) -> Routing:
    """Read, parse and validate the routing file at C{path}."""
    try:
        data = yamlconf.load(path)
    except ValueError:
        with open(path, encoding="utf-8") as f:
            raise ConfigError(dates.bad_scalars(f.read(), path))
    return validate(data, path, numbers, trunks=trunks, speech=speech)


def loads(text: str, path: str, numbers: NumberPlan, *, trunks=None, speech=None) -> Routing:
    """Parse and validate routing YAML given as text (tests, C{check} of stdin)."""
    try:
        data = yamlconf.loads(text, path)
    except ValueError:
        raise ConfigError(dates.bad_scalars(text, path))
    return validate(data, path, numbers, trunks=trunks, speech=speech)


def validate(data, path: str, numbers: NumberPlan, *, trunks=None, speech=None) -> Routing:
    """
    Check a parsed routing document and build the L{Routing}.

    @param data: what L{switchboard.yamlconf.load} returned for C{path}.
    @param numbers: the community's L{NumberPlan} (area code for short numbers).
    @param trunks: names of the configured trunks, if known (checked when given).
    @param speech: a L{switchboard.speech.Speech}: text prompts it cannot
        render are problems (C{switchboard check}). The server leaves it out:
        such a prompt plays its fallback, and the store logs why.
    @raise ConfigError: naming every problem found.
    """
    return _Validator(path, numbers, trunks, speech).run(data)


class _Validator(CalendarSection, DestinationSection):
    def __init__(self, path, numbers, trunks, speech=None):
        self.path = path
        self.check = Checker()
        self.read = Reader(self.check, numbers, speech)
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
        hotline_data = data.get("hotline")
        if isinstance(hotline_data, dict):  # the voice of every text prompt naming none
            self.read.language = self.read.language_code(hotline_data, "language",
                                                         "hotline.language", DEFAULT_LANGUAGE)
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

    def defaults(self, value, location):
        m = self.check.mapping(value, "defaults", location, allowed=DEFAULT_KEYS)
        r = self.read
        self.ring_timeout = r.whole(m, "ring_timeout", "defaults.ring_timeout", 20, 5, 300)
        self.strategy = r.choice(m, "strategy", "defaults.strategy", RING_ALL, STRATEGIES)
        self.menu_timeout = r.seconds(m, "menu_timeout", "defaults.menu_timeout", 5.0, 1, 60)
        self.digit_timeout = r.seconds(m, "digit_timeout", "defaults.digit_timeout", 3.0, 1, 30)
        self.retries = r.whole(m, "retries", "defaults.retries", 2, 0, 10)
        self.invalid_prompt = r.sound(m, "invalid_prompt", "defaults.invalid_prompt",
                                      "pm-invalid-option", fallback="pm-invalid-option")
        self.timeout_prompt = r.sound(m, "timeout_prompt", "defaults.timeout_prompt")
        self.voicemail_context = r.text(m, "voicemail_context", "defaults.voicemail_context",
                                        "default")
        names = r.names(m, "overflow", "defaults.overflow") or []
        self.default_overflow = tuple(self.ref(n, loc, p, no_menu=True) for n, loc, p in names)
        self.default_overflow_location = m.where("overflow") if "overflow" in m else location

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
            prompt=r.sound(m, "prompt", f"{path}.prompt", fallback=MENU_FALLBACK),
            options=frozen_mapping({k: v for k, v in options.items() if v is not None}),
            operator=operator, fallback=fallback,
            direct_dial=r.flag(m, "direct_dial", f"{path}.direct_dial", True),
            timeout=r.seconds(m, "timeout", f"{path}.timeout", self.menu_timeout, 1, 60),
            digit_timeout=r.seconds(m, "digit_timeout", f"{path}.digit_timeout",
                                    self.digit_timeout, 1, 30),
            retries=r.whole(m, "retries", f"{path}.retries", self.retries, 0, 10),
            invalid_prompt=r.sound(m, "invalid_prompt", f"{path}.invalid_prompt",
                                   fallback="pm-invalid-option") if "invalid_prompt" in m
            else self.invalid_prompt,
            timeout_prompt=r.sound(m, "timeout_prompt", f"{path}.timeout_prompt")
            if "timeout_prompt" in m else self.timeout_prompt)

    def hotline(self, value, location) -> Hotline:
        m = self.check.mapping(value, "hotline", location, allowed=HOTLINE_KEYS,
                               required=("menu", "operator"))
        r = self.read
        numbers, languages = [], {}
        raw = m.get("numbers", [])
        items = as_list(raw)
        for i, v in enumerate(items):
            item_path = f"hotline.numbers[{i}]" if isinstance(raw, list) else "hotline.numbers"
            loc = where(items, i) if isinstance(raw, list) else m.where("numbers")
            language = None
            if isinstance(v, dict):  # {number: ..., language: en}
                v = self.check.mapping(v, item_path, loc, allowed=NUMBER_KEYS,
                                       required=("number",))
                language = r.language_code(v, "language", f"{item_path}.language", None)
                if "number" not in v:
                    continue  # said by the mapping check
                loc, item_path = v.where("number") or loc, f"{item_path}.number"
                v = v.get("number")
            text = str(v).strip() if isinstance(v, (str, int)) and not isinstance(v, bool) else ""
            try:
                numbers.append(r.numbers.normalise(text))
            except InvalidNumber as e:
                if text.isascii() and text.isdigit() and len(text) <= 8:
                    numbers.append(text)  # a short service number such as 12345
                else:
                    self.check.add(loc, item_path, str(e), "the number residents dial")
                    continue
            if language is not None:
                languages[numbers[-1]] = language
        self.hotline_menu = self.ref(r.name(m, "menu", "hotline.menu"), m.where("menu"),
                                     "hotline.menu", menus_only=True)
        self.hotline_operator = self.ref(r.name(m, "operator", "hotline.operator"),
                                         m.where("operator"), "hotline.operator", no_menu=True)
        return Hotline(numbers=tuple(numbers), menu=self.hotline_menu or "",
                       operator=self.hotline_operator or "",
                       greeting=r.sound(m, "greeting", "hotline.greeting"),
                       sorry=r.sound(m, "sorry", "hotline.sorry", SORRY, fallback=SORRY),
                       language=r.language, languages=frozen_mapping(languages))

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


__all__ = ["load", "loads", "validate", "ConfigError", "WEEKDAYS"]
