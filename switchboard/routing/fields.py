"""
Reading single values of a routing file: text, sounds, whole numbers,
dates, phone numbers, opening hours. Each reader records a located
L{Problem} and returns a harmless default rather than stopping, so that
one check reports every mistake in the file.
"""

from __future__ import annotations

import functools
import re
from datetime import date, datetime

from switchboard.dialing import is_channel
from switchboard.numbers import InvalidNumber, NumberPlan
from switchboard.routing.model import DEFAULT_LANGUAGE, HotlinePrompt
from switchboard.routing.schedule import DAY_NAMES, Hours, TimeRange, parse_days
from switchboard.yamlconf import Checker, LocatedDict, LocatedList, _suggest

_SOUND = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")  # fullmatch: "$" allows "\n"
_SOUND_EXTENSIONS = (".wav", ".gsm", ".ulaw", ".alaw", ".sln", ".g722", ".mp3", ".ogg")
NUMBER_HINT = ("write it like 0591-87654321, 87654321, +86 591 8765 4321, a mobile "
               "13812345678, or a channel like PJSIP/front-desk")
RANGE_HINT = "write HH:MM-HH:MM, e.g. 08:30-12:00; 22:00-06:00 runs past midnight"
DATE_HINT = "write YYYY-MM-DD, e.g. 2026-10-01"
PROMPT_KEYS = ("sound", "say", "voice", "fallback")
PROMPT_HINT = ('a sound name such as hotline/welcome, or text: {say: "您好，这里是社区服务热线。"} '
               "(with sound: for a recording that wins, fallback: for the stock sound "
               "played until the text is rendered)")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:_[A-Za-z0-9]{1,8})?")
LANGUAGE_HINT = "a language code such as zh or en"
_CJK_SPACE = re.compile(r"(?<=[^\x00-\x7f]) | (?=[^\x00-\x7f])")


def where(container, key):
    """The location of C{container[key]}, or of the container."""
    if isinstance(container, (LocatedDict, LocatedList)):
        return container.where(key)
    return getattr(container, "location", None)


def key_where(mapping, key):
    if isinstance(mapping, LocatedDict):
        return mapping.key_locations.get(key) or mapping.location
    return None


def as_list(value):
    """A scalar written where a list is allowed counts as a list of one."""
    if isinstance(value, list):
        return value
    single = LocatedList([value])
    single.location = getattr(value, "location", None)
    return single


class Reader:
    """Typed access to located YAML values, collecting problems in C{check}."""

    def __init__(self, check: Checker, numbers: NumberPlan, speech=None):
        """
        @param speech: what says whether a text prompt can be rendered (its
            C{problems(text, voice)}); L{None}: text is not checked for that.
        """
        self.check = check
        self.numbers = numbers
        self.speech = speech
        self.language = DEFAULT_LANGUAGE  # the voice of text prompts that name none
        self._hours: dict = {}  # identical hours written again parse once

    def add(self, location, key, message, hint=""):
        self.check.add(location, key, message, hint)

    def text(self, mapping, key, path, default=None, *, required=False):
        if key not in mapping:
            return default
        value = mapping[key]
        if isinstance(value, str) and value.strip():
            return value.strip()
        self.add(where(mapping, key), path, f"must be text, not {_kind(value)}")
        return default

    def name(self, mapping, key, path):
        """A reference to a destination or menu (C{None} if absent or bad)."""
        if key not in mapping:
            return None
        return self.name_value(mapping[key], where(mapping, key), path)

    def name_value(self, value, location, path):
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
        self.add(location, path, f"must be the name of a destination, not {_kind(value)}")
        return None

    def names(self, mapping, key, path):
        """A list of references: [(name, location, path)], or L{None} if absent."""
        if key not in mapping:
            return None
        value = mapping[key]
        if value is None:
            return []
        items = as_list(value)
        out = []
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]" if isinstance(value, list) else path
            location = where(items, i) if isinstance(value, list) else where(mapping, key)
            name = self.name_value(item, location, item_path)
            if name is not None:
                out.append((name, location, item_path))
        return out

    def sound(self, mapping, key, path, default=None, *, fallback=None):
        """
        A prompt (L{HotlinePrompt}): a sound name, or a mapping with text to
        C{say}, a recording (C{sound}), the C{voice} of the text and the stock
        C{fallback} sound. C{default} (a sound name) when the key is absent;
        C{fallback} is the stock sound of a text prompt that names none.
        """
        if key not in mapping:
            return HotlinePrompt(sound=default) if default else None
        value, location = mapping[key], where(mapping, key)
        here = f"{location}: {path}" if location else path
        if isinstance(value, dict):
            return self._spoken(value, location, path, here, fallback)
        if not isinstance(value, str) or not value.strip():
            self.add(location, path, f"must be a sound name or text to say, not {_kind(value)}",
                     PROMPT_HINT)
            return HotlinePrompt(sound=default) if default else None
        return HotlinePrompt(sound=self.sound_name(value.strip(), location, path), where=here)

    def sound_name(self, value: str, location, path) -> str:
        if value.lower().endswith(_SOUND_EXTENSIONS):
            self.add(location, path, f"sound '{value}' has a file extension",
                     f"write '{value.rsplit('.', 1)[0]}': Asterisk picks the format")
        elif not _SOUND.fullmatch(value) or ".." in value:
            self.add(location, path, f"'{value}' is not a sound file name",
                     "letters, digits, _ - . and / only, e.g. hotline/welcome")
        return value

    def _spoken(self, value, location, path, here, fallback):
        m = self.check.mapping(value, path, location, allowed=PROMPT_KEYS)
        sound = self.text(m, "sound", f"{path}.sound")
        if sound is not None:
            sound = self.sound_name(sound, m.where("sound"), f"{path}.sound")
        stock = self.text(m, "fallback", f"{path}.fallback")
        if stock is not None:
            stock = self.sound_name(stock, m.where("fallback"), f"{path}.fallback")
        text = self.text(m, "say", f"{path}.say")
        if text is not None:  # a folded line break is no pause; Chinese has no spaces
            text = _CJK_SPACE.sub("", " ".join(text.split()))
        voice = self.language_code(m, "voice", f"{path}.voice", self.language)
        if sound is None and text is None:
            if "sound" not in m and "say" not in m:
                self.add(location, path, "a prompt needs a sound or text to say", PROMPT_HINT)
            return None
        if text is not None and self.speech is not None:
            for problem in self.speech.problems(text, voice):
                self.add(m.where("say"), f"{path}.say", problem)
        return HotlinePrompt(sound=sound, text=text, voice=voice if text else None,
                             fallback=stock or (fallback if text else None), where=here)

    def language_code(self, mapping, key, path, default):
        """A language (voice) code such as C{zh} or C{en}."""
        value = self.text(mapping, key, path)
        if value is None:
            return default
        if not _LANGUAGE.fullmatch(value):
            self.add(where(mapping, key), path, f"'{value}' is not a language", LANGUAGE_HINT)
            return default
        return value

    def whole(self, mapping, key, path, default, low, high):
        if key not in mapping:
            return default
        value = mapping[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(where(mapping, key), path, f"must be a whole number, not {_kind(value)}")
            return default
        if not low <= value <= high:
            self.add(where(mapping, key), path, f"{value} is out of range",
                     f"between {low} and {high}")
            return default
        return value

    def seconds(self, mapping, key, path, default, low, high):
        if key not in mapping:
            return default
        value = mapping[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(where(mapping, key), path, f"must be a number of seconds, not {_kind(value)}")
            return default
        if not low <= value <= high:
            self.add(where(mapping, key), path, f"{value} seconds is out of range",
                     f"between {low} and {high}")
            return default
        return float(value)

    def flag(self, mapping, key, path, default):
        if key not in mapping:
            return default
        value = mapping[key]
        if not isinstance(value, bool):
            self.add(where(mapping, key), path, f"must be true or false, not {_kind(value)}")
            return default
        return value

    def choice(self, mapping, key, path, default, allowed):
        value = self.text(mapping, key, path)
        if value is None:
            return default
        if value not in allowed:
            self.add(where(mapping, key), path, f"'{value}' is not allowed", _suggest(value, allowed))
            return default
        return value

    def date(self, value, location, path):
        if isinstance(value, datetime):
            self.add(location, path, "must be a date without a time", DATE_HINT)
            return None
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                self.add(location, path, f"'{value}' is not a date", DATE_HINT)
                return None
        self.add(location, path, f"must be a date, not {_kind(value)}", DATE_HINT)
        return None

    def phone(self, value, location, path):
        """An E.164 number or an explicit channel, or L{None} after a problem."""
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.add(location, path, f"must be a phone number, not {_kind(value)}", NUMBER_HINT)
            return None
        text = str(value).strip()
        if is_channel(text):
            return text
        result = _normalise(self.numbers, text)
        if isinstance(result, InvalidNumber):
            self.add(location, path, str(result), NUMBER_HINT)
            return None
        return result

    # Opening hours

    def ranges(self, value, location, path):
        """Time ranges of one day: [(TimeRange, location, path)]."""
        if value is None or value == "closed" or value == []:
            return []
        items = as_list(value)
        out = []
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]" if isinstance(value, list) else path
            item_location = where(items, i) if isinstance(value, list) else location
            try:
                out.append((TimeRange.parse(item), item_location, item_path))
            except ValueError as e:
                self.add(item_location, item_path, str(e), RANGE_HINT)
        return out

    def hours(self, value, location, path):
        """Parse an C{hours:} mapping into L{Hours}, or L{None} after problems."""
        key = _hours_key(value)
        if key is not None and key in self._hours:
            return self._hours[key]
        before = len(self.check.problems)
        hours = self._parse_hours(value, location, path)
        if key is not None and len(self.check.problems) == before:
            self._hours[key] = hours
        return hours

    def _parse_hours(self, value, location, path):
        if not isinstance(value, dict):
            self.add(location, path, f"must be a mapping of weekdays to hours, not {_kind(value)}",
                     "e.g. mon-fri: [08:30-12:00, 14:00-17:30]")
            return None
        week = [[] for _ in range(7)]
        given = {}
        holidays, holiday_ranges, working = "closed", [], "observe"
        for key, item in value.items():
            item_path = f"{path}.{key}"
            if key == "holidays":
                if item in ("closed", "weekly"):
                    holidays = item
                else:
                    holidays = "hours"
                    holiday_ranges = self.ranges(item, where(value, key), item_path)
                    _overlaps(self, {0: holiday_ranges}, spill=False)
                continue
            if key == "working_days":
                if item in ("observe", "weekly"):
                    working = item
                else:
                    self.add(where(value, key), item_path, f"{item!r} is not allowed",
                             "observe (weekend working days keep weekday hours) or weekly")
                continue
            try:
                days = parse_days(key)
            except ValueError as e:
                self.add(key_where(value, key), item_path, str(e),
                         "use mon ... sun, mon-fri, sat,sun, daily, weekdays or weekends; "
                         "and holidays / working_days")
                continue
            ranges = self.ranges(item, where(value, key), item_path)
            for day in days:
                if day in given:
                    first_key, first_location = given[day]
                    line = f" (line {first_location.line})" if first_location else ""
                    self.add(key_where(value, key), item_path,
                             f"{DAY_NAMES[day]} is already given by '{first_key}'{line}",
                             "give each weekday once")
                    continue
                given[day] = (key, key_where(value, key))
                week[day] = ranges
        _overlaps(self, dict(enumerate(week)), spill=True)
        return Hours(weekly=tuple(tuple(r for r, _, _ in day) for day in week),
                     holidays=holidays,
                     holiday_hours=tuple(r for r, _, _ in holiday_ranges),
                     working_days=working)


@functools.lru_cache(maxsize=65536)
def _normalise(plan: NumberPlan, text: str):
    """E.164 for C{text}, or the L{InvalidNumber}; cached across reloads."""
    try:
        return plan.normalise(text)
    except InvalidNumber as e:
        return e


def _hours_key(value):
    """A hashable form of an hours mapping made of plain values, else L{None}."""
    if not isinstance(value, dict):
        return None
    items = []
    for k, v in value.items():
        if isinstance(v, list):
            if not all(isinstance(x, str) for x in v):
                return None
            v = tuple(v)
        elif not isinstance(v, (str, type(None))):
            return None
        items.append((str(k), v))
    return tuple(items)


def _overlaps(reader: Reader, week: dict, *, spill: bool):
    """Report ranges of one day that overlap (including last night's spill-over)."""
    reported = set()
    for day, ranges in week.items():
        spans = [(r.same_day()[0], r.same_day()[1], r, loc, p, False) for r, loc, p in ranges]
        if spill and len(week) == 7:
            spans += [(0, r.end, r, loc, p, True) for r, loc, p in week[(day - 1) % 7]
                      if r.spans_midnight]
        spans.sort(key=lambda s: (s[0], s[1]))
        for i, first in enumerate(spans):
            for second in spans[i + 1:]:
                if second[0] >= first[1]:
                    break
                later, earlier = (second, first) if not second[5] else (first, second)
                pair = (later[4], earlier[4])
                if pair in reported:
                    continue
                reported.add(pair)
                night = " (running past midnight)" if earlier[5] else ""
                on = f" on {DAY_NAMES[day]}" if len(week) == 7 else ""
                reader.add(later[3], later[4],
                           f"{later[2]} overlaps {earlier[2]}{night}{on}",
                           "each time of day may be listed once")


def _kind(value) -> str:
    from switchboard.yamlconf import _kind as kind
    return kind(value)


__all__ = ["Reader", "where", "key_where", "as_list", "NUMBER_HINT"]
