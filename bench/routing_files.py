"""
Routing files for the benchmarks: the sample grown to thousands of
destinations, saved again with a change (as staff saving an edit would),
and timed while read, validated and swapped.
"""

from __future__ import annotations

import os
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = os.path.join(ROOT, "config", "switchboard.yaml")


class Resaver:
    """
    Calling it saves the routing file again with one byte-level change (a
    trailing comment), as staff saving an edit would, then calls
    C{reload()}: the store skips a file whose bytes are unchanged, and each
    reload here must read, validate and swap the whole file.
    """

    def __init__(self, path, reload):
        self.path = path
        self.reload = reload
        with open(path, "rb") as f:
            self.original = f.read()
        self.saves = 0

    def save(self):
        """Write the file anew (to a temporary name, then renamed over it)."""
        self.saves += 1
        temporary = f"{self.path}.saving"
        with open(temporary, "wb") as f:
            f.write(self.original + b"# saved again: %d\n" % self.saves)
        os.replace(temporary, self.path)

    def __call__(self):
        self.save()
        return self.reload()


def scaled_routing(destinations, directory, sample=None):
    """
    Write the sample routing grown to C{destinations} destinations into
    C{directory}: the sample as it is, then departments (ring-all or hunt,
    with hours), outside services, mailboxes and announcements, each with
    its own direct-dial code, in the forms staff write numbers.

    @return: the path of the file written.
    """
    import yaml

    sample = sample or os.path.join(ROOT, "config", "routing.yaml")
    with open(sample, encoding="utf-8") as f:
        text = f.read()
    have = len(yaml.safe_load(text)["destinations"])
    lines = [text.rstrip("\n"), "", "  # Generated for the benchmark."]
    for i in range(max(0, destinations - have)):
        name, code, kind = f"unit_{i:04d}", f"7{i:04d}", i % 10
        lines += [f"  {name}:", f"    label: 第{i}号服务点", f'    code: "{code}"']
        if kind < 7:
            first, second = 87660000 + 2 * i, 87660001 + 2 * i
            lines += [
                "    type: department",
                f"    phones: [0591-{first}, \"+86 591 {str(second)[:4]} {str(second)[4:]}\"]",
                f"    strategy: {'hunt' if kind % 2 else 'ring-all'}",
                "    ring_timeout: 20",
                "    hours:",
                '      mon-fri: ["08:30-12:00", "14:30-17:30"]',
                '      sat: ["09:00-12:00"]',
                "    closed: voicemail",
                "    overflow: [duty, voicemail]",
            ]
        elif kind == 7:
            lines += ["    type: service", f"    number: 1380591{i:04d}", "    trunk: default",
                      "    hours:", '      daily: ["10:00-21:00"]', "    closed: restaurant_closed"]
        elif kind == 8:
            lines += ["    type: voicemail", f'    mailbox: "{3000 + i}"']
        else:
            lines += ["    type: announcement", "    sound: vm-nobodyavail"]
    path = os.path.join(directory, f"routing-{destinations}.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def swap_times(routing_path, times):
    """
    Seconds taken, C{times} times over, to read, validate and swap
    C{routing_path} into a L{RoutingStore} (after one untimed load); the
    file is saved again with a change before each (not timed).
    """
    from switchboard import settings as service_settings
    from switchboard.routing.store import RoutingStore

    settings = service_settings.load(SETTINGS)
    store = RoutingStore(routing_path, settings.numbers, trunks=settings.trunks.keys())
    store.load()
    resaver = Resaver(routing_path, store.load)
    seconds = []
    for _ in range(times):
        resaver.save()
        started = time.perf_counter()
        store.load()
        seconds.append(time.perf_counter() - started)
    return seconds
