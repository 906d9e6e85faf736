"""
C{python -m bench.alarm_lookup [--households 200000] [--lookups 200000] [--quick]}:
which household is calling, with a large registry.

A SQLite registry of N households (one Fuzhou landline each, ten neighbours
each: other households' landlines) is written with SQLAlchemy Core inserts.
Then, each in a fresh process of its own so that memory figures are its
alone:

  - C{index}: L{alarm.index.CallerIndex} as the server loads it
    (C{load()} on the database's thread pool), then C{lookup(caller)};
  - C{dict}: the baseline a naive implementation would write, a plain dict
    {E.164: tuple of the household's fields} read from the same tables, and
    C{NumberPlan.try_normalise(caller)} before each lookup.

Both answer the same caller IDs (a fixed random mix of the forms an exchange
presents: local 8 digits, 0591..., +86..., 86..., 0086..., and callers who
are not registered), every answer is checked, and each lookup is timed on
its own (time.perf_counter_ns). Memory is the process's resident set
(/proc/self/status) before and after the load, and its peak.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections import defaultdict

from bench import alarm_lab

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRST = 22000000    # household i calls from +86 591 (22000000 + i)
UNREGISTERED = 29000000
NEIGHBOURS = 10

# Forms of the caller IDs asked, with their share of the lookups.
MIX = (("local 8 digits", 30), ("0591 + 8 digits", 20), ("+86 591 ...", 20),
       ("86 591 ...", 5), ("0086 591 ...", 5), ("miss: unregistered landline", 10),
       ("miss: unregistered mobile", 5), ("miss: anonymous / junk", 5))


def landline(i: int) -> str:
    return f"+86591{FIRST + i}"


def build(url: str, households: int) -> float:
    """Write the registry with Core inserts; the seconds it took."""
    from datetime import datetime

    from switchboard.community.models import Household, HouseholdNumber, Neighbour, RegistryVersion
    from switchboard.storage import Database

    started = time.perf_counter()
    database = Database(url)
    database.migrate()
    now = datetime(2026, 1, 1)
    offsets = [d for k in range(1, NEIGHBOURS // 2 + 1) for d in (k, -k)]
    with database.engine.begin() as conn:
        for start in range(0, households, 20000):
            ids = range(start, min(households, start + 20000))
            conn.execute(Household.__table__.insert(), [
                {"id": i + 1, "community": f"Garden {i // 5000 + 1}",
                 "building": str(i // 100 % 50 + 1), "unit": str(i // 20 % 5 + 1),
                 "room": str(i % 20 + 101), "residents": f"Resident {i + 1}",
                 "notes": "elderly, lives alone" if i % 7 == 0 else "", "revision": 1,
                 "updated_at": now} for i in ids])
            conn.execute(HouseholdNumber.__table__.insert(), [
                {"household_id": i + 1, "number": landline(i), "position": 1} for i in ids])
            conn.execute(Neighbour.__table__.insert(), [
                {"household_id": i + 1, "number": landline((i + d) % households),
                 "name": "", "position": p} for i in ids for p, d in enumerate(offsets, 1)])
        conn.execute(RegistryVersion.__table__.insert(), [{"id": 1, "version": 1}])
    database.close()
    return time.perf_counter() - started


def queries(households: int, count: int, seed: int = 9) -> list:
    """(kind, caller ID as presented, household id expected or 0) of each lookup."""
    rng = random.Random(seed)
    kinds = [k for k, _ in MIX]
    out = []
    for kind in rng.choices(kinds, weights=[w for _, w in MIX], k=count):
        i = rng.randrange(households)
        local, hid = str(FIRST + i), i + 1
        text = {"local 8 digits": local, "0591 + 8 digits": "0591" + local,
                "+86 591 ...": "+86591" + local, "86 591 ...": "86591" + local,
                "0086 591 ...": "0086591" + local}.get(kind)
        if text is None:
            hid = 0
            text = (str(UNREGISTERED + i) if kind.endswith("landline")
                    else f"139{rng.randrange(10 ** 8):08d}" if kind.endswith("mobile")
                    else rng.choice(["anonymous", "", "Unknown", "12", "+", "0591"]))
        out.append((kind, text, hid))
    return out


def rss() -> dict:
    """Resident set now and at its peak, in MiB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


def measure(kind: str, url: str, households: int, count: int) -> dict:
    """In this process: load C{kind} (index or dict), then time every lookup."""
    from sqlalchemy import text as sql

    from switchboard.numbers import NumberPlan
    from switchboard.storage import Database

    asked = queries(households, count)
    numbers = NumberPlan(region="CN", area_code="591")
    database = Database(url)
    with database.engine.connect() as conn:
        conn.execute(sql("SELECT count(*) FROM alarm_household")).scalar()
    numbers.try_normalise("22000000")  # phonenumbers' metadata loaded before, not during
    gc.collect()
    before = rss()
    started = time.perf_counter()
    lookup, answer = (load_index if kind == "index" else load_dict)(database, numbers)
    loaded = time.perf_counter() - started
    gc.collect()
    after = rss()

    durations, hits, wrong = array("q"), array("q"), 0
    by_kind = defaultdict(list)
    clock = time.perf_counter_ns
    for k, caller, hid in asked:
        t = clock()
        found = lookup(caller)
        d = clock() - t
        durations.append(d)
        by_kind[k].append(d)
        if hid:
            hits.append(d)
        if answer(found) != hid:
            wrong += 1
    return {"kind": kind, "load_s": loaded, "rss_before": before["VmRSS"],
            "rss_after": after["VmRSS"], "peak": after["VmHWM"], "wrong": wrong,
            "total_s": sum(durations) / 1e9,
            "all": summary(durations), "hits": summary(hits), "by_kind": {k: summary(v) for k, v in by_kind.items()}}


def load_index(database, numbers):
    from twisted.internet import reactor

    from alarm.index import CallerIndex

    index = CallerIndex(database, numbers, max_neighbours=NEIGHBOURS)
    failures = []
    d = index.load()
    d.addErrback(failures.append).addBoth(lambda _: reactor.stop())
    reactor.run()
    if failures:
        failures[0].raiseException()
    database.close()
    return index.lookup, lambda h: h.id if h is not None else 0


def load_dict(database, numbers):
    """The naive way: every household's fields in a tuple, under each of its E.164 numbers."""
    from sqlalchemy import select

    from switchboard.community.models import Household, HouseholdNumber, Neighbour

    with database.engine.connect() as conn:
        own, ring = defaultdict(list), defaultdict(list)
        for hid, number in conn.execute(select(HouseholdNumber.household_id, HouseholdNumber.number)
                                        .order_by(HouseholdNumber.position)):
            own[hid].append(number)
        for hid, number in conn.execute(select(Neighbour.household_id, Neighbour.number)
                                        .order_by(Neighbour.household_id, Neighbour.position)):
            ring[hid].append(number)
        table = {}
        for row in conn.execute(select(Household.id, Household.community, Household.building,
                                       Household.unit, Household.room, Household.notes)):
            value = (*row, tuple(own[row[0]]), tuple(ring[row[0]]))
            for number in own[row[0]]:
                table[number] = value
    del own, ring
    database.close()
    normalise, get = numbers.try_normalise, table.get

    def lookup(caller):
        e164 = normalise(caller) if caller else None
        return get(e164) if e164 else None

    return lookup, lambda h: h[0] if h is not None else 0


def summary(durations) -> dict:
    ordered = sorted(durations)

    def rank(p):
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] / 1000  # microseconds

    return {"n": len(ordered), "p50": rank(50), "p99": rank(99), "max": rank(100)}


def child(kind, url, households, count, tree=PROJECT) -> dict:
    """C{measure(kind, ...)} in a fresh process, with the code of checkout C{tree}."""
    env = dict(os.environ, PYTHONPATH=tree)
    result = subprocess.run([sys.executable, "-m", "bench.alarm_lookup", "--measure", kind,
                             "--database", url, "--households", str(households),
                             "--lookups", str(count)],
                            cwd=tree, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"the {kind} process failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(households, count, built, index, naive, baseline=None) -> None:
    print(f"caller -> household lookup, {households:,} households x {NEIGHBOURS} neighbours, "
          f"{count:,} caller IDs (each timed; microseconds)")
    if built is not None:
        print(f"  registry written (Core inserts, SQLite): {built:.1f} s")
    print(f"  {'':<34}{'p50':>8}{'p99':>8}{'max':>9}{'all lookups':>13}{'wrong':>7}")
    for label, r in (("CallerIndex.lookup", index), ("dict + NumberPlan.normalise", naive)):
        a = r["all"]
        print(f"  {label:<34}{a['p50']:>8.2f}{a['p99']:>8.2f}{a['max']:>9.0f}"
              f"{r['total_s']:>12.2f}s{r['wrong']:>7}")
    print(f"  ratio p99 index / dict: {index['all']['p99'] / naive['all']['p99']:.3f}; "
          f"p50: {index['all']['p50'] / naive['all']['p50']:.3f}")
    i, d = index["hits"], naive["hits"]
    print(f"  registered callers only ({i['n']:,}): index p50 {i['p50']:.2f} p99 {i['p99']:.2f}, "
          f"dict p50 {d['p50']:.2f} p99 {d['p99']:.2f}; ratio p99 {i['p99'] / d['p99']:.3f}")
    print(f"  by form{'':<27}{'index p50':>10}{'p99':>8}{'dict p50':>10}{'p99':>8}")
    for kind, _ in MIX:
        i, d = index["by_kind"].get(kind), naive["by_kind"].get(kind)
        if i and d:
            print(f"    {kind:<32}{i['p50']:>10.2f}{i['p99']:>8.2f}{d['p50']:>10.2f}"
                  f"{d['p99']:>8.2f}")
    print(f"  {'':<34}{'load':>8}{'RSS before':>12}{'after':>8}{'growth':>8}{'peak':>8}  (MiB)")
    for label, r in (("CallerIndex.load()", index), ("dict", naive)):
        print(f"  {label:<34}{r['load_s']:>7.1f}s{r['rss_before']:>12.0f}{r['rss_after']:>8.0f}"
              f"{r['rss_after'] - r['rss_before']:>8.0f}{r['peak']:>8.0f}")
    grow = ((index["rss_after"] - index["rss_before"])
            / max(1e-9, naive["rss_after"] - naive["rss_before"]))
    print(f"  ratio memory growth index / dict: {grow:.2f}; "
          f"load time: {index['load_s'] / naive['load_s']:.2f}")
    if baseline is not None:
        label, b = baseline
        i, h = b["all"], b["hits"]
        print(f"  CallerIndex of {label} (same registry, same caller IDs): all p50 {i['p50']:.2f} "
              f"p99 {i['p99']:.2f}; registered p50 {h['p50']:.2f} p99 {h['p99']:.2f}; "
              f"{b['wrong']} wrong; load {b['load_s']:.1f} s; memory growth "
              f"{b['rss_after'] - b['rss_before']:.0f} MiB (peak {b['peak']:.0f})")
        print(f"  this index / that one: registered p99 {index['hits']['p99'] / h['p99']:.3f}, "
              f"memory growth {(index['rss_after'] - index['rss_before']) / (b['rss_after'] - b['rss_before']):.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alarm_lookup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, default=200000)
    parser.add_argument("--lookups", type=int, default=200000)
    parser.add_argument("--quick", action="store_true", help="20,000 households and lookups")
    parser.add_argument("--database", help="use this registry (sqlite:///...) as it is")
    parser.add_argument("--baseline", help="also measure the CallerIndex of this checkout")
    parser.add_argument("--measure", choices=("index", "dict"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.households, args.lookups = min(args.households, 20000), min(args.lookups, 20000)
    if args.measure:
        print(json.dumps(measure(args.measure, args.database, args.households, args.lookups)))
        return 0
    cpu = alarm_lab.CpuWatch()
    workdir, built = None, None
    try:
        url = args.database
        if url is None:
            workdir = tempfile.mkdtemp(prefix="switchboard-lookup-")
            url = "sqlite:///" + os.path.join(workdir, "registry.db")
            built = build(url, args.households)
        index = child("index", url, args.households, args.lookups)
        naive = child("dict", url, args.households, args.lookups)
        baseline = None
        if args.baseline:
            baseline = (args.baseline, child("index", url, args.households, args.lookups,
                                             os.path.abspath(args.baseline)))
        report(args.households, args.lookups, built, index, naive, baseline)
        print(cpu.others())
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
