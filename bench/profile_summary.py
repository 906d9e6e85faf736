"""
C{python -m bench.profile_summary FILE [--thread NAME] [--top N]}: py-spy's
collapsed stacks (C{py-spy record --format raw --idle --threads}) in a few
lines: samples per thread, and for the busiest thread (the reactor's,
C{MainThread}) where its time went, by the function on top (self) and by
every function on the stack (inclusive).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter

_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")


def _frame(text: str) -> str:
    """C{function (path/file.py:line)} -> C{package/file.py:function}."""
    m = _FRAME.match(text.strip())
    if m is None:
        return text.strip()
    parts = m.group("file").split("/")
    return f"{'/'.join(parts[-2:])}:{m.group('name')}"


def read(path):
    """{thread: Counter({tuple of frames, root first: samples})}."""
    threads: dict = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = stack.split(";")
            thread = frames[0] if frames[0].startswith(("thread", "process")) else "?"
            if thread.startswith("process"):
                frames = frames[1:]
                thread = frames[0] if frames and frames[0].startswith("thread") else "?"
            if thread != "?":
                frames = frames[1:]
            name = re.sub(r"^thread \((0x[0-9A-Fa-f]+)\)", r"\1", thread)
            threads.setdefault(name, Counter())[tuple(_frame(x) for x in frames)] += int(count)
    return threads


# Frames on top of a thread that waits: epoll (the reactor), a lock or a queue.
IDLE = ("epollreactor.py:EPollReactor.doPoll", "alarm_probe.py:install.<locals>.poll_probed",
        "threading.py:Condition.wait", "queue.py:Queue.get", "threading.py:Event.wait")


def summarise(threads, top=20) -> list:
    lines = []
    totals = {t: sum(c.values()) for t, c in threads.items()}
    if not totals:
        return ["    no samples"]
    lines.append("    samples by thread: " + ", ".join(
        f"{t} {n}" for t, n in sorted(totals.items(), key=lambda x: -x[1])))
    for thread, stacks in threads.items():
        total = totals[thread]
        idle = sum(n for s, n in stacks.items() if s and s[-1].endswith(IDLE[:2]))
        busy = {s: n for s, n in stacks.items() if not (s and s[-1].endswith(IDLE))}
        work = sum(busy.values())
        if work < 0.02 * max(totals.values()):
            continue
        lines.append(f"    thread {thread}: {total} samples, {work} busy ({work / total:.0%})"
                     + (f", {idle} in epoll" if idle else ""))
        own, inclusive = Counter(), Counter()
        for stack, n in busy.items():
            if stack:
                own[stack[-1]] += n
            for frame in set(stack):
                inclusive[frame] += n
        lines.append(f"      self (top {top}), % of busy samples:")
        lines += [f"        {n / work:6.1%}  {f}" for f, n in own.most_common(top)]
        lines.append(f"      inclusive (top {top}, project and Twisted frames):")
        keep = [(f, n) for f, n in inclusive.most_common() if not f.startswith(("<", "?"))
                and "runpy" not in f and not f.endswith((":run", ":mainLoop", ":main",
                                                          ":_run_module_as_main", ":_run_code"))]
        lines += [f"        {n / work:6.1%}  {f}" for f, n in keep[:top]]
    return lines


def print_summary(path, top=20) -> None:
    print(f"\n    py-spy profile of the server during the burst ({path}):")
    print("\n".join(summarise(read(path), top)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_summary",
                                     description=__doc__)
    parser.add_argument("file")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    print_summary(args.file, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
