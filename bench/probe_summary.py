"""
What L{bench.alarm_probe} noted during the #9 fan-out bench's burst, in
figures: where each alarm's time went before it was raised, and how busy
the server's reactor was.
"""

from __future__ import annotations

import bisect
import json
import math


def _pct(values, p):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else float("nan")


def _row(name, values, scale=1.0, unit="s"):
    if not values:
        return f"      {name:<62}(none)"
    return (f"      {name:<62}{_pct(values, 50) * scale:>8.3f}{_pct(values, 99) * scale:>8.3f}"
            f"{max(values) * scale:>8.3f} {unit}")


def summarise(notes, window) -> list:
    """Lines describing C{notes} between C{window}'s two host times."""
    t0, t1 = window
    inside = [e for e in notes["env"] if t0 - 1 <= e[1] <= t1]
    raised = {c: t for c, t in notes["raise"] if t0 - 1 <= t <= t1}
    opened = {c: (a, b) for c, a, b in notes["opened"] if t0 - 1 <= a <= t1}
    lines = [f"    inside the server during the burst ({len(inside)} FastAGI sessions, "
             f"{len(opened)} alarms on record), from bench.alarm_probe:",
             f"      {'':<62}{'p50':>8}{'p99':>8}{'max':>8}"]
    accepted = [c - t0 for _, c, _ in inside]
    env = [e - c for _, c, e in inside]
    to_raise = [raised[c] - e for c, _, e in inside if c in raised]
    to_record = [opened[c][0] - raised[c] for c in raised if c in opened]
    legs = [b - a for a, b in opened.values()]
    done = [b - t0 for a, b in opened.values()]
    lines += [_row("first INVITE -> FastAGI connection accepted", accepted),
              _row("accepted -> environment read (session starts)", env, 1e3, "ms"),
              _row("environment -> raise asked (lookup, answer sent)", to_raise, 1e3, "ms"),
              _row("raise asked -> on record (journal fsynced)", to_record, 1e3, "ms"),
              _row("on record -> ten Originates written", legs, 1e3, "ms"),
              _row("first INVITE -> ten Originates written", done)]
    ami = [a for a in notes["ami"] if t0 <= a[0] <= t1]
    if ami:
        took = sum(a[2] for a in ami)
        size = sum(a[1] for a in ami)
        lines.append(f"      AMI: {len(ami)} reads, {size / 1024:.0f} KiB, {took:.3f} s of reactor "
                     f"time; largest read {max(a[1] for a in ami) / 1024:.1f} KiB, "
                     f"{sum(1 for a in ami if a[1] >= 60000)} reads >= 60 KB (a backlog)")
    fsync = [d for t, d in notes["fsync"] if t0 <= t <= t1]
    if fsync:
        lines.append(_row(f"journal appends with fsync ({len(fsync)}, {sum(fsync):.3f} s in all)",
                          fsync, 1e3, "ms"))
    lag = [d for t, d in notes["lag"] if t0 <= t <= t1]
    lines.append(_row("reactor lag (a 5 ms timer, how late)", lag, 1e3, "ms"))
    busy = [(t, d) for t, d in notes["busy"] if t0 <= t <= t1]
    if busy:
        span = t1 - t0
        work = sum(d for _, d in busy)
        lines.append(f"      reactor busy {work:.2f} s of the {span:.2f} s from the first INVITE "
                     f"to the last leg rung ({work / span:.0%}); longest stretch "
                     f"{max(d for _, d in busy) * 1e3:.1f} ms")
        # Busy time in the first second after the first INVITE, when the callers arrive.
        first = sum(d for t, d in busy if t <= t0 + 1.0)
        lines.append(f"      in the first second: busy {first:.2f} s")
    return lines


def print_summary(path, window) -> None:
    with open(path) as f:
        notes = json.load(f)
    print("\n".join(summarise(notes, window)))


def _after(times, t):
    """The first of the sorted C{times} at or after C{t}, or None."""
    i = bisect.bisect_left(times, t)
    return times[i] if i < len(times) else None


def summarise_latency(notes, took) -> list:
    """
    Lines splitting each one-at-a-time alarm's latency at the probes' times:
    C{took} maps a caller's number to (its INVITE sent, the first and the
    last neighbour's INVITE received), from SIPp's traces (the host clock).
    """
    connect = {c: (a, e) for c, a, e in notes["env"]}
    raised = dict(notes["raise"])
    opened = {c: (a, b) for c, a, b in notes["opened"]}
    turns = sorted((t + d) for t, d in notes["busy"])  # when each reactor turn ended
    sent = sorted(notes.get("originate_sent", []))
    sent_times = [t for t, _ in sent]
    rows = [[] for _ in range(10)]
    for caller, (invite, first_rang, last_rang) in took.items():
        if caller not in connect or caller not in raised or caller not in opened:
            continue
        accepted, env = connect[caller]
        start, end = opened[caller]
        turn_end = _after(turns, end)
        i = bisect.bisect_left(sent_times, start)
        count, first_sent, last_sent = 0, None, None
        while i < len(sent) and count < 10:
            t, n = sent[i]
            first_sent = t if first_sent is None else first_sent
            last_sent, count = t, count + n
            i += 1
        if turn_end is None or first_sent is None:
            continue
        for row, d in zip(rows, (accepted - invite, env - accepted, raised[caller] - env,
                                 start - raised[caller], end - start, turn_end - end,
                                 first_sent - turn_end, last_sent - first_sent,
                                 first_rang - last_sent, last_rang - first_rang)):
            row.append(d)
    names = ("INVITE sent -> FastAGI connection accepted (Asterisk's dialplan)",
             "accepted -> environment read",
             "environment -> raise asked (lookup, ANSWER)",
             "raise asked -> on record (journal fsynced)",
             "on record -> ten Originates built (_opened)",
             "-> the end of that reactor turn",
             "-> first Originate bytes on the socket",
             "-> last Originate bytes on the socket",
             "-> first neighbour's INVITE received (Asterisk)",
             "-> last neighbour's INVITE received (Asterisk, SIP)")
    lines = [f"    the one-at-a-time alarms split at bench.alarm_probe's times "
             f"({len(rows[0])} alarms; ms):", f"      {'':<62}{'p50':>8}{'p99':>8}{'max':>8}"]
    lines += [_row(name, row, 1e3, "ms") for name, row in zip(names, rows)]
    return lines


def print_latency(path, took) -> None:
    with open(path) as f:
        notes = json.load(f)
    print("\n".join(summarise_latency(notes, took)))
