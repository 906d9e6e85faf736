"""
Checks of a routing file as a whole, once each part has been read: loops,
calls that could be dropped, menus without a way out, direct-dial codes
that clash. They run on the validator's model objects and add located
problems to its checker. Every walk here is iterative and linear in the
size of the file, so that a file of thousands of destinations checks fast.
"""

from __future__ import annotations

from collections import defaultdict, deque

from switchboard.routing.model import MENU, TAKES_CALL

TAKE_HINT = "end it with voicemail, an announcement or the operator"


def run(v) -> None:
    """Run every check on validator C{v} (see L{switchboard.routing.schema})."""
    overflow_loops(v)
    dropped_calls(v)
    menu_exits(v)
    fallback_loops(v)
    codes(v)


def _edges(v):
    """Overflow and closed edges: name -> [(next, location, path)]."""
    edges = defaultdict(list)
    for name, dest in v.destinations.items():
        if not dest.rings:
            continue
        own = v.own_overflow.get(name)
        if own is not None:
            edges[name] += [(n, loc, p) for n, loc, p in own[0]]
        else:
            edges[name] += [(n, v.default_overflow_location, "defaults.overflow")
                            for n in dest.overflow]
        if dest.closed is not None:
            loc, path = v.closed_at[name]
            edges[name].append((dest.closed, loc, path))
    return edges


def overflow_loops(v) -> None:
    edges = _edges(v)
    state = {}  # name -> 1 on the stack, 2 done
    reported = set()
    for root in v.destinations:
        if root in state:
            continue
        stack = [(root, iter(edges.get(root, ())))]
        on_stack = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            step = next(children, None)
            if step is None:
                stack.pop()
                on_stack.pop()
                state[node] = 2
                continue
            child, location, path = step
            if state.get(child) == 1:
                cycle = on_stack[on_stack.index(child):] + [child]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    v.check.add(location, path, "overflow and closed destinations go round in a "
                                f"loop: {' -> '.join(cycle)}", TAKE_HINT)
            elif child not in state:
                state[child] = 1
                on_stack.append(child)
                stack.append((child, iter(edges.get(child, ()))))


def dropped_calls(v) -> None:
    """Every destination that rings must overflow to something that takes the call."""
    dests = v.destinations
    waiting = defaultdict(list)  # name -> destinations overflowing to it
    for name, dest in dests.items():
        if dest.rings:
            for other in dest.overflow:
                waiting[other].append(name)
    safe = {name for name, dest in dests.items() if dest.kind in TAKES_CALL}
    queue = deque(safe)
    while queue:
        for before in waiting.get(queue.popleft(), ()):
            if before not in safe:
                safe.add(before)
                queue.append(before)
    for name, dest in dests.items():
        if name in safe:
            continue
        chain, seen = [name], {name}
        while dests[chain[-1]].overflow and dests[chain[-1]].overflow[-1] not in seen:
            chain.append(dests[chain[-1]].overflow[-1])
            seen.add(chain[-1])
        if name in v.own_overflow:
            location, path = v.own_overflow[name][1], f"destinations.{name}.overflow"
        else:
            location, path = v.locations[name]
        last = dests[chain[-1]].overflow
        if last:
            what = " -> ".join(chain + [last[-1]]) + ", round in a loop, and nothing takes the call"
        else:
            what = " -> ".join(chain) + " -> nothing takes the call"
        v.check.add(location, path, f"the call can be dropped: if nobody answers, {what}",
                    TAKE_HINT + " (or set defaults.overflow)")


def _menu_exits(v, menu):
    names = list(menu.options.values()) + [menu.operator, menu.fallback]
    if menu.direct_dial:
        names += [dest for _, dest, _, _ in v.codes]
    return [n for n in names if n]


def menu_exits(v) -> None:
    """A caller must be able to leave every menu for something that is not a menu."""
    dests = v.destinations
    leads_to = defaultdict(set)  # menu -> menus that lead into it
    open_menus = set()
    for name, menu in v.menus.items():
        for target in _menu_exits(v, menu):
            if dests[target].kind == MENU:
                leads_to[dests[target].menu].add(name)
            else:
                open_menus.add(name)
    queue = deque(open_menus)
    while queue:
        for before in leads_to.get(queue.popleft(), ()):
            if before not in open_menus:
                open_menus.add(before)
                queue.append(before)
    for name in v.menus:
        if name not in open_menus:
            location, path = v.locations[name]
            v.check.add(location, f"menus.{name}", "menu loop with no way out: every choice "
                        "leads to another menu", "give an option, the operator or the fallback a "
                        "destination that is not a menu")


def fallback_loops(v) -> None:
    """A caller who presses nothing must not be sent from menu to menu forever."""
    dests, reported = v.destinations, set()
    for name in v.menus:
        chain = [name]
        while True:
            target = dests.get(v.menus[chain[-1]].fallback)
            if target is None or target.kind != MENU:
                break
            if target.menu in chain:
                cycle = chain[chain.index(target.menu):] + [target.menu]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    location, path = v.fallback_at[chain[-1]]
                    v.check.add(location, path, "a caller who presses nothing goes round "
                                f"{' -> '.join(cycle)} forever",
                                "make one fallback a destination that takes the call")
                break
            chain.append(target.menu)


def codes(v) -> None:
    """Direct-dial codes must be unique and must not begin like another choice."""
    first = {}
    for code, dest, location, path in v.codes:
        if code in first:
            other, other_location = first[code]
            line = f" (line {other_location.line})" if other_location else ""
            v.check.add(location, path, f"code {code} is already used by '{other}'{line}",
                        "give each destination its own code")
        else:
            first[code] = (dest, location)
    ordered = sorted(first)
    for shorter, longer in zip(ordered, ordered[1:]):
        if longer.startswith(shorter):
            dest, location = first[longer]
            v.check.add(location, f"destinations.{dest}.code",
                        f"code {longer} begins with code {shorter} of '{first[shorter][0]}'",
                        "a caller dialling it would be put through as soon as the shorter "
                        "code is complete")
    for name, menu in v.menus.items():
        if not menu.direct_dial:
            continue
        keys = set(menu.options) | ({"0"} if menu.operator else set())
        for code in ordered:
            if code[0] in keys:
                dest, location = first[code]
                v.check.add(location, f"destinations.{dest}.code",
                            f"code {code} begins with {code[0]}, an option of menu '{name}'",
                            "choose codes that begin with a key no menu option uses (e.g. 8xx), "
                            f"or set direct_dial: false in menu '{name}'")
