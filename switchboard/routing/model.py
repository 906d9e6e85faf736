"""
The routing of a community hotline, as immutable objects.

A L{Routing} is built only by L{switchboard.routing.schema.validate}, so
every reference in it resolves: option digits name destinations, overflow
chains end in something that takes the call, menus have a way out. Calls
hold on to the L{Routing} they started with; a reload builds a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Optional
from zoneinfo import ZoneInfo

from switchboard.routing.schedule import Calendar, Hours

# Destination kinds.
DEPARTMENT = "department"
SERVICE = "service"
OPERATOR = "operator"
VOICEMAIL = "voicemail"
ANNOUNCEMENT = "announcement"
MENU = "menu"
KINDS = (DEPARTMENT, SERVICE, OPERATOR, VOICEMAIL, ANNOUNCEMENT, MENU)

# Kinds whose phones are rung (and may be busy, unanswered or closed).
RINGING = frozenset({DEPARTMENT, SERVICE, OPERATOR})
# Kinds a chain may end with: they take the call (the operator by the
# community's promise that someone staffs it).
TAKES_CALL = frozenset({VOICEMAIL, ANNOUNCEMENT, OPERATOR, MENU})

RING_ALL = "ring-all"
HUNT = "hunt"
STRATEGIES = (RING_ALL, HUNT)

# Keys a caller can press as one menu option.
OPTION_KEYS = "0123456789*#"

#: The language of a hotline whose file names none (CHANNEL(language), and
#: the voice of text prompts that name no voice).
DEFAULT_LANGUAGE = "zh"


@dataclass(frozen=True)
class HotlinePrompt:
    """
    A prompt of the routing file: a recording (C{sound}), text to say
    (C{text} in C{voice}), or both, and the stock C{fallback} sound played
    when neither a recording nor a rendering of the text is there (the
    engine missing, the text not rendered yet).

    The first three fields are those of L{switchboard.speech.Prompt}, so
    that C{Speech.play_list} takes it as one; it is not a subclass because
    the speech package brings in Twisted, which the child process that
    parses routing files does without (L{switchboard.routing.child}).

    @ivar where: C{file:line:column} of the prompt and its key path, for
        the log when its text cannot be rendered.
    """

    sound: Optional[str] = None
    text: Optional[str] = None
    voice: Optional[str] = None
    fallback: Optional[str] = None
    where: str = field(default="", compare=False)

    def describe(self) -> str:
        """The prompt for people (C{switchboard route}, call records)."""
        parts = [self.sound] if self.sound else []
        if self.text:
            parts.append(f'say "{self.text}" ({self.voice or DEFAULT_LANGUAGE})')
        if self.fallback:
            parts.append(self.fallback)
        return ", else ".join(parts) or "nothing"

    def __str__(self) -> str:
        return self.describe()


def sound_prompt(name: Optional[str]) -> Optional[HotlinePrompt]:
    """A prompt that is just the recording C{name} (L{None} for none)."""
    return HotlinePrompt(sound=name) if name else None


class FrozenMapping(Mapping):
    """A read-only mapping that pickles (a routing crosses a process boundary)."""

    __slots__ = ("_items",)

    def __init__(self, items=()):
        object.__setattr__(self, "_items", dict(items))

    def __getitem__(self, key):
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)

    def __contains__(self, key):
        return key in self._items

    def get(self, key, default=None):
        return self._items.get(key, default)

    def __repr__(self):
        return f"FrozenMapping({self._items!r})"

    def __setattr__(self, name, value):
        raise AttributeError("a FrozenMapping cannot be changed")

    def __reduce__(self):
        return (FrozenMapping, (self._items,))


def frozen_mapping(items) -> Mapping:
    return FrozenMapping(items)


@dataclass(frozen=True)
class Destination:
    """
    Where a call can go.

    @ivar name: the key in the routing file (used in references).
    @ivar kind: one of L{KINDS}.
    @ivar label: what staff call it (UTF-8), for logs, records and C{route}.
    @ivar code: direct-dial code, or L{None}.
    @ivar targets: E.164 numbers or explicit channels (C{PJSIP/front-desk}).
    @ivar overflow: names tried in order when this destination is busy,
        does not answer, or is closed without a C{closed} destination.
    @ivar overflow_from: C{"own"}, C{"defaults"} or C{"none"}: where the
        overflow list came from (for explanations).
    """

    name: str
    kind: str
    label: str
    code: Optional[str] = None
    targets: tuple = ()
    strategy: str = RING_ALL
    ring_timeout: int = 20
    trunk: str = "default"
    mailbox: Optional[str] = None
    voicemail_options: str = "u"
    greeting: Optional[HotlinePrompt] = None  # played before VoiceMail (which then skips its own)
    sound: Optional[HotlinePrompt] = None
    menu: Optional[str] = None
    hours: Optional[Hours] = None
    closed: Optional[str] = None
    overflow: tuple = ()
    overflow_from: str = "none"

    @property
    def rings(self) -> bool:
        return self.kind in RINGING

    def __str__(self) -> str:
        return self.label if self.label == self.name else f"{self.label} [{self.name}]"


@dataclass(frozen=True)
class Menu:
    """
    A voice menu: the prompt, what each key does, and what happens when the
    caller presses nothing or something wrong.

    @ivar options: key (C{"1"}, C{"*"}) -> destination name.
    @ivar operator: destination for C{0} (unless C{options} has C{"0"}).
    @ivar timeout: seconds to wait for the first key.
    @ivar digit_timeout: seconds to wait for each further key of a code.
    @ivar retries: how many times the menu is offered again after a wrong
        or missing entry, before the C{fallback}.
    """

    name: str
    label: str
    prompt: HotlinePrompt
    options: Mapping = field(default_factory=lambda: frozen_mapping({}))
    operator: Optional[str] = None
    direct_dial: bool = True
    timeout: float = 5.0
    digit_timeout: float = 3.0
    retries: int = 2
    invalid_prompt: Optional[HotlinePrompt] = None
    timeout_prompt: Optional[HotlinePrompt] = None
    fallback: str = ""

    def lookup(self, entry: str, codes: Mapping) -> tuple[Optional[str], str]:
        """The destination name for C{entry} and the rule that chose it."""
        if entry in self.options:
            return self.options[entry], f"option {entry}"
        if entry == "0" and self.operator:
            return self.operator, "0 for the operator"
        if self.direct_dial and entry in codes:
            return codes[entry], f"direct-dial code {entry}"
        return None, ""

    def entry_state(self, entry: str, codes: Mapping) -> str:
        """
        C{"complete"} if C{entry} selects something, C{"more"} if it is the
        beginning of a direct-dial code, else C{"invalid"}.
        """
        if self.lookup(entry, codes)[0] is not None:
            return "complete"
        if self.direct_dial and entry and any(c.startswith(entry) for c in codes):
            return "more"
        return "invalid"


@dataclass(frozen=True)
class Hotline:
    """
    The hotline itself: its numbers, greeting, first menu and operator.

    @ivar language: the language of its calls (Asterisk's
        C{CHANNEL(language)}) and the voice of text prompts naming none.
    @ivar languages: hotline number -> its own language, where it differs.
    """

    numbers: tuple
    menu: str
    operator: str
    greeting: Optional[HotlinePrompt] = None
    sorry: HotlinePrompt = HotlinePrompt(sound="please-try-call-later")
    language: str = DEFAULT_LANGUAGE
    languages: Mapping = field(default_factory=lambda: frozen_mapping({}))

    def language_of(self, *dialled) -> str:
        """The language of a call to the first of C{dialled} that is a hotline number."""
        for number in dialled:
            if number in self.languages:
                return self.languages[number]
        return self.language


@dataclass(frozen=True)
class Routing:
    """
    One validated routing file.

    @ivar tz: the time zone the file names, or L{None} (the service's).
    @ivar destinations: name -> L{Destination}, including one of kind
        C{menu} for each menu that options refer to by menu name.
    @ivar codes: direct-dial code -> destination name.
    """

    path: str
    hotline: Hotline
    calendar: Calendar
    menus: Mapping
    destinations: Mapping
    codes: Mapping
    tz: Optional[ZoneInfo] = None

    def destination(self, name: str) -> Destination:
        return self.destinations[name]

    def prompts(self):
        """Every prompt of the file (for rendering the text ones)."""
        yield from (self.hotline.greeting, self.hotline.sorry)
        for menu in self.menus.values():
            yield from (menu.prompt, menu.invalid_prompt, menu.timeout_prompt)
        for destination in self.destinations.values():
            yield from (destination.sound, destination.greeting)

    def texts(self) -> dict:
        """(text, voice) -> the first prompt saying it, for each text prompt."""
        texts: dict = {}
        for prompt in self.prompts():
            if prompt is not None and prompt.text:
                texts.setdefault((prompt.text, prompt.voice), prompt)
        return texts

    def summary(self) -> str:
        """A one-line account for logs and C{switchboard check}."""
        declared = sum(1 for d in self.destinations.values() if d.name not in self.menus)
        days = sum((h.last - h.first).days + 1 for h in self.calendar.holidays)
        return (f"{len(self.hotline.numbers)} hotline number(s), {len(self.menus)} menu(s), "
                f"{declared} destination(s), {len(self.codes)} direct-dial code(s), "
                f"{len(self.calendar.holidays)} holiday(s) ({days} day(s)), "
                f"{len(self.calendar.working_days)} working-day exception(s)")
