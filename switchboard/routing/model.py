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
    sound: Optional[str] = None
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
    prompt: str
    options: Mapping = field(default_factory=lambda: frozen_mapping({}))
    operator: Optional[str] = None
    direct_dial: bool = True
    timeout: float = 5.0
    digit_timeout: float = 3.0
    retries: int = 2
    invalid_prompt: Optional[str] = None
    timeout_prompt: Optional[str] = None
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
    """The hotline itself: its numbers, greeting, first menu and operator."""

    numbers: tuple
    menu: str
    operator: str
    greeting: Optional[str] = None
    sorry: str = "please-try-call-later"


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

    def summary(self) -> str:
        """A one-line account for logs and C{switchboard check}."""
        declared = sum(1 for d in self.destinations.values() if d.name not in self.menus)
        days = sum((h.last - h.first).days + 1 for h in self.calendar.holidays)
        return (f"{len(self.hotline.numbers)} hotline number(s), {len(self.menus)} menu(s), "
                f"{declared} destination(s), {len(self.codes)} direct-dial code(s), "
                f"{len(self.calendar.holidays)} holiday(s) ({days} day(s)), "
                f"{len(self.calendar.working_days)} working-day exception(s)")
