"""
Where a hotline call goes, decided as a pure function of the routing, the
time, the keys pressed and the caller.

The same decisions drive live calls (L{switchboard.hotline.handler}) and
C{switchboard route}, so staff see exactly what a call would do:

  - L{MenuWalk} follows the menus key by key (options, C{0} for the
    operator, direct-dial codes, retries, the fallback);
  - L{plan} turns the chosen destination into the ordered L{Step}s the call
    will try at a given time: hours, holidays and working days decide
    whether a destination is open; a closed one sends the call to its
    C{closed} destination; one that is busy or does not answer hands on to
    its overflow chain; each destination is tried at most once;
  - L{route} does both for a whole call, with the trail of reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from switchboard.routing.model import ANNOUNCEMENT, MENU, VOICEMAIL, Destination, Routing

# A caller sent from menu to menu more often than this is put through to
# the operator (validation prevents loops; this is the last guard).
MAX_MENUS = 12

RING = "ring"


@dataclass(frozen=True)
class Step:
    """
    One thing a call will try: C{ring} the destination's phones, leave a
    C{voicemail}, hear an C{announcement}, or enter a C{menu}.
    """

    action: str
    destination: Destination
    why: str

    def describe(self) -> str:
        d = self.destination
        if self.action == RING:
            targets = ", ".join(d.targets)
            how = f"{d.strategy}, " if len(d.targets) > 1 else ""
            trunk = f" via trunk {d.trunk}" if d.trunk != "default" else ""
            return f"ring {d}: {targets} ({how}{d.ring_timeout} s{trunk})"
        if self.action == VOICEMAIL:
            greeting = f", after {d.greeting}" if d.greeting is not None else ""
            return f"voicemail {d}: mailbox {d.mailbox}{greeting}"
        if self.action == ANNOUNCEMENT:
            return f"announcement {d}: play {d.sound}, then hang up"
        return f"menu {d}"


@dataclass(frozen=True)
class Choice:
    """What a menu entry led to: a destination, or the menu again."""

    destination: Optional[Destination] = None
    prompt: Optional[object] = None  # a HotlinePrompt to play before offering the menu again

    @property
    def retry(self) -> bool:
        return self.destination is None


class MenuWalk:
    """
    A caller's way through the menus. Feed it each complete entry (C{""}
    for a timeout); it answers with a L{Choice} and notes the reasons in
    C{trail}.
    """

    def __init__(self, routing: Routing, trail: Optional[list] = None):
        self.routing = routing
        self.trail = trail if trail is not None else []
        self.visited: list[str] = []
        self.menu = None
        self.failures = 0
        self.enter(routing.hotline.menu)

    def enter(self, name: str) -> None:
        self.menu = self.routing.menus[name]
        self.failures = 0
        self.visited.append(name)
        self.trail.append(f"menu {name} ({self.menu.label}): prompt {self.menu.prompt}")

    @property
    def worn_out(self) -> bool:
        """True once the caller has been through too many menus."""
        return len(self.visited) >= MAX_MENUS

    def entry_state(self, entry: str) -> str:
        """C{complete}, C{more} (the start of a code) or C{invalid}."""
        return self.menu.entry_state(entry, self.routing.codes)

    def choose(self, entry: str) -> Choice:
        menu, dests = self.menu, self.routing.destinations
        name, rule = menu.lookup(entry, self.routing.codes) if entry else (None, "")
        if name is not None:
            dest = dests[name]
            self.trail.append(f"pressed {entry}: {rule} -> {dest}")
            return Choice(dest)
        self.failures += 1
        if entry:
            self.trail.append(f"pressed {entry}: not an option of menu {menu.name}")
            prompt = menu.invalid_prompt
        else:
            self.trail.append(f"no key pressed within {menu.timeout:g} s")
            prompt = menu.timeout_prompt
        if self.failures > menu.retries:
            dest = dests[menu.fallback]
            self.trail.append(f"{self.failures} failed entries: fallback -> {dest}")
            return Choice(dest)
        if prompt is not None:
            self.trail.append(f"plays {prompt}, then menu {menu.name} again")
        return Choice(None, prompt)


def local_time(routing: Routing, at: datetime, tz=None) -> datetime:
    """
    C{at} on the community's wall clock: the routing file's time zone, else
    C{tz}. A naive C{at} is taken to be such a wall-clock time already.
    """
    zone = routing.tz or tz or timezone.utc
    if at.tzinfo is None:
        return at.replace(tzinfo=zone)
    return at.astimezone(zone)


def plan(routing: Routing, destination: Destination, local: datetime,
         trail: Optional[list] = None) -> tuple:
    """
    The steps a call for C{destination} tries at C{local} (see L{local_time}),
    in order. It ends with a step that takes the call (voicemail,
    announcement, menu) unless every step rings: then the last ring failing
    means nobody could take the call.
    """
    steps: list[Step] = []
    _expand(routing, destination, local, set(), steps,
            trail if trail is not None else [], "chosen")
    return tuple(steps)


def _expand(routing, dest, local, tried, steps, trail, why) -> bool:
    """Add the steps for C{dest}; return True once a step surely takes the call."""
    if dest.name in tried:
        trail.append(f"{dest}: already tried, skipped")
        return False
    tried.add(dest.name)
    if dest.kind in (VOICEMAIL, ANNOUNCEMENT, MENU):
        steps.append(Step(dest.kind, dest, why))
        return True
    status = dest.hours.status(local, routing.calendar) if dest.hours else None
    if status is not None and not status.open:
        trail.append(f"{dest}: {status.why}")
        if dest.closed is not None:
            closed = routing.destinations[dest.closed]
            trail.append(f"{dest} is closed -> its closed destination {closed}")
            if _expand(routing, closed, local, tried, steps, trail, f"{dest} is closed"):
                return True
    else:
        trail.append(f"{dest}: {status.why if status else 'open (no hours set)'}")
        steps.append(Step(RING, dest, why))
    source = "defaults.overflow" if dest.overflow_from == "defaults" else "overflow"
    for name in dest.overflow:
        if _expand(routing, routing.destinations[name], local, tried, steps, trail,
                   f"{source} of {dest}"):
            return True
    return False


@dataclass(frozen=True)
class Decision:
    """Where a call goes, and why."""

    at: datetime
    caller: Optional[str]
    menus: tuple
    destination: Optional[Destination]
    steps: tuple
    trail: tuple
    unused: str = ""
    greeting: object = None  # the hotline's greeting and sorry prompts
    sorry: object = None

    def explain(self) -> str:
        """The decision for people: the trail, then the numbered plan."""
        zone = getattr(self.at.tzinfo, "key", None) or str(self.at.tzinfo)
        lines = [f"call at {self.at:%Y-%m-%d %H:%M} ({self.at:%A}, {zone})"
                 + (f" from {self.caller}" if self.caller else "")]
        notes = [line for line in self.trail if line.startswith("note:")]
        lines += [f"  {line}" for line in notes]
        if self.greeting is not None:
            lines.append(f"  greeting: {self.greeting}")
        lines += [f"  {line}" for line in self.trail if line not in notes]
        if self.unused:
            lines.append(f"  keys left over: {self.unused}")
        lines.append("plan:")
        for i, step in enumerate(self.steps, 1):
            condition = "" if i == 1 else "if nobody answered: "
            lines.append(f"  {i}. {condition}{step.describe()}   [{step.why}]")
        if not self.steps or self.steps[-1].action == RING:
            sorry = f" ({self.sorry})" if self.sorry is not None else ""
            lines.append(f"  {len(self.steps) + 1}. if nobody answered: "
                         f"play the sorry prompt{sorry} and hang up")
        return "\n".join(lines)


def route(routing: Routing, at: datetime, digits: str = "", caller: Optional[str] = None,
          *, tz=None, numbers=None) -> Decision:
    """
    Follow a call that arrives at C{at} and whose caller presses C{digits}
    (all keys, across menus; running out of keys counts as pressing
    nothing).

    @param tz: the service's time zone, used when the routing names none.
    @param numbers: a L{NumberPlan} to show the caller in E.164.
    """
    local = local_time(routing, at, tz)
    trail: list[str] = []
    if not routing.calendar.listed(local.year):
        trail.append(f"note: no holidays are listed for {local.year}: "
                     f"{local:%Y-%m-%d} is taken as an ordinary day")
    if caller and numbers is not None:
        caller = numbers.try_normalise(caller) or caller
    walk = MenuWalk(routing, trail)
    keys = list(digits)
    while True:
        entry = keys.pop(0) if keys else ""
        while entry and keys and walk.entry_state(entry) == "more":
            entry += keys.pop(0)
        choice = walk.choose(entry)
        if choice.retry:
            continue
        steps = plan(routing, choice.destination, local, trail)
        if steps and steps[0].action == MENU:
            if walk.worn_out:
                trail.append("too many menus: put through to the operator")
                steps = plan(routing, routing.destinations[routing.hotline.operator], local, trail)
            else:
                walk.enter(steps[0].destination.menu)
                continue
        return Decision(at=local, caller=caller, menus=tuple(walk.visited),
                        destination=choice.destination, steps=steps, trail=tuple(trail),
                        unused="".join(keys), greeting=routing.hotline.greeting,
                        sorry=routing.hotline.sorry)
