"""
C{python -m bench.alarm_startup [--households 200000] [--database URL] [--baseline TREE]}:
how soon the server takes calls after it starts, with a large registry.

The registry of L{bench.alarm_lookup} (N households, ten neighbours each) is
served by the whole server as C{switchboard run} builds it (hotline and
alarm, the sample routing and alarm files; AMI pointed at a closed port),
in a fresh process of its own. From the process's start it measures:

  - when the FastAGI port opened, and when the caller index had loaded;
  - the reactor's lag until the load ended: a call scheduled every
    millisecond, how late it ran (what a #9 arriving then would wait for
    the reactor), and the same for 3 s once loaded, the server idle (what
    the machine itself adds);
  - #9 lookups while the port is open and the index still loading, one
    every 10 ms (the handler's way: C{find} before the load has ended):
    each answer checked against the household expected, and timed.

C{--baseline TREE} runs the same measurement a second time with the
server's code taken from another checkout (e.g. C{/work/main}), so that
both figures come from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

IDLE = 3.0  # seconds the loaded server is watched, idle, for the reactor's lag
PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def process_started() -> float:
    """When this process started, on the C{time.time()} clock (10 ms resolution)."""
    with open("/proc/self/stat") as f:
        ticks = int(f.read().rpartition(")")[2].split()[19])
    with open("/proc/stat") as f:
        boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def measure(config: str, households: int) -> dict:
    """In this process: start the server on C{config}, watch until the index has loaded."""
    started = process_started()
    from twisted.internet import reactor

    from switchboard import settings as settings_module
    from switchboard.service import build, settle_memory

    imported = time.time() - started
    server = build(settings_module.load(config), reactor, settle=settle_memory)
    built = time.time() - started
    [feature] = [f for f in server.features if type(f).__name__ == "AlarmFeature"]
    index = feature.index
    rng = random.Random(15)
    out = {"imported": imported, "built": built, "port": None, "loaded": None, "lags": [], "lags_before": [],
           "lags_after": [], "late": [],
           "finds": [], "wrong": 0,
           "unanswered": 0, "find_errors": 0}
    pending = set()

    def since_start():
        return time.time() - started

    def loaded():
        return getattr(index, "loaded", len(index) > 0)

    def tick(expected, phase="lags_before"):
        # A lag counts in the phase in which the call was due.
        now = time.perf_counter()
        out[phase].append(now - expected)
        if now - expected > 0.02:
            out["late"].append((round(since_start(), 3), round((now - expected) * 1000, 1)))
        if out["port"] is None and server.port is not None:
            out["port"] = since_start()
        if out["loaded"] is None and loaded():
            out["loaded"] = since_start()
        if out["loaded"] is not None and since_start() > out["loaded"] + IDLE:
            reactor.stop()
            return
        phase = ("lags_before" if out["port"] is None else "lags" if out["loaded"] is None
                 else "lags_after")
        reactor.callLater(0.001, tick, time.perf_counter() + 0.001, phase)

    def ask():
        if out["loaded"] is not None:
            return
        if server.port is not None and not loaded() and hasattr(index, "find"):
            i = rng.randrange(households)
            registered = rng.random() < 0.9
            caller = (rng.choice(("", "0591", "+86591")) + str(22000000 + i) if registered
                      else str(29000000 + i))
            expected = i + 1 if registered else None
            t = time.perf_counter()
            d = index.find(caller)
            pending.add(d)

            def answered(household):
                pending.discard(d)
                out["finds"].append(time.perf_counter() - t)
                if (household.id if household is not None else None) != expected:
                    out["wrong"] += 1

            def failed(failure):
                pending.discard(d)
                out["find_errors"] += 1

            d.addCallbacks(answered, failed)
        reactor.callLater(0.01, ask)

    def start():
        out["starting"] = since_start()
        server.startService()
        tick(time.perf_counter())
        ask()

    reactor.callWhenRunning(start)
    reactor.run()
    out["unanswered"] = len(pending)
    with open("/proc/self/status") as f:
        out["rss"] = next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))
    out["households"] = len(index)
    out["code"] = os.path.dirname(os.path.dirname(sys.modules[type(index).__module__].__file__))
    return out


def summary(values) -> dict:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50": 0, "p99": 0, "max": 0}

    def rank(p):
        return ordered[max(0, -(-len(ordered) * p // 100) - 1)] * 1000  # ms

    return {"n": len(ordered), "p50": rank(50), "p99": rank(99), "max": rank(100)}


def child(tree: str, config: str, households: int) -> dict:
    env = dict(os.environ, PYTHONPATH=tree, SWITCHBOARD_AMI_SECRET="bench")
    result = subprocess.run([sys.executable, os.path.abspath(__file__), "--measure", config,
                             "--households", str(households)],
                            cwd=tree, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode:
        raise SystemExit(f"the server process ({tree}) failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def report(households, runs) -> None:
    print(f"server start-up, {households:,} households x 10 neighbours "
          f"(seconds from the process's start; lags and lookups in ms)")
    print(f"  {'':<28}{'imported':>9}{'built':>7}{'running':>9}{'port open':>11}"
          f"{'index loaded':>14}{'RSS MiB':>9}")
    for label, r in runs:
        print(f"  {label:<28}{r['imported']:>8.2f}s{r['built']:>6.2f}s{r['starting']:>8.2f}s"
              f"{r['port']:>10.2f}s{r['loaded']:>13.2f}s{r['rss']:>9.0f}")
    print("  reactor lag from the port's opening until the index had loaded (a call due every "
          "1 ms; before the port opened in brackets)")
    print(f"  {'':<28}{'n':>8}{'p50':>8}{'p99':>8}{'max':>8}")
    for label, r in runs:
        s, b = summary(r["lags"]), summary(r["lags_before"])
        print(f"  {label:<28}{s['n']:>8}{s['p50']:>8.2f}{s['p99']:>8.2f}{s['max']:>8.1f}"
              f"   ({b['n']}: p99 {b['p99']:.1f}, max {b['max']:.1f})")
        a = summary(r["lags_after"])
        print(f"  {'  the same, loaded and idle':<28}{a['n']:>8}{a['p50']:>8.2f}{a['p99']:>8.2f}"
              f"{a['max']:>8.1f}")
    for label, r in runs:
        if r["late"]:
            print(f"  {label}: over 20 ms late at (s from start, ms): "
                  + ", ".join(f"{t:.2f} {ms:.0f}" for t, ms in r["late"][:8]))
    for label, r in runs:
        s = summary(r["finds"])
        if not s["n"]:
            print(f"  {label}: no #9 lookup possible before the index had loaded "
                  f"(the port was closed)")
            continue
        print(f"  {label}: {s['n']} #9 lookups while loading (90% registered, 10% not): "
              f"{r['wrong']} wrong, {r['find_errors']} failed, {r['unanswered']} unanswered; "
              f"p50 {s['p50']:.1f} p99 {s['p99']:.1f} max {s['max']:.1f} ms")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alarm_startup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, default=200000)
    parser.add_argument("--database", help="use this registry (sqlite:///...) as it is")
    parser.add_argument("--baseline", help="also measure the server of this checkout")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.households)))
        return 0
    sys.path.insert(0, PROJECT)
    from bench import alarm_lab, alarm_lookup
    cpu = alarm_lab.CpuWatch()
    workdir = tempfile.mkdtemp(prefix="switchboard-startup-")
    try:
        url = args.database
        if url is None:
            url = "sqlite:///" + os.path.join(workdir, "registry.db")
            alarm_lookup.build(url, args.households)
        config = os.path.join(workdir, "switchboard.yaml")
        settings = {  # JSON is YAML too
            "agi": {"listen": "127.0.0.1", "port": free_port(), "key": "bench-key"},
            "ami": {"host": "127.0.0.1", "port": free_port(), "username": "bench"},
            "database": url, "numbers": {"region": "CN", "area_code": "591"},
            "timezone": "Asia/Shanghai", "trunks": {"default": "PJSIP/{number}"},
            "hotline_number": "12345", "journal": os.path.join(workdir, "journal"),
            "routing": os.path.join(PROJECT, "config", "routing.yaml"),
            "alarm": os.path.join(PROJECT, "config", "alarm.yaml")}
        with open(config, "w") as f:
            json.dump(settings, f, indent=1)
        runs = [("this tree", child(PROJECT, config, args.households))]
        if args.baseline:
            runs.append((f"baseline {args.baseline}",
                         child(os.path.abspath(args.baseline), config, args.households)))
        for (label, run), tree in zip(runs, (PROJECT, args.baseline)):
            if os.path.realpath(run["code"]) != os.path.realpath(tree):
                raise SystemExit(f"{label}: the server's code came from {run['code']}")
        report(args.households, runs)
        print(cpu.others())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
