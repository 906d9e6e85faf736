"""
C{python -m bench [--quick]}: run the benchmarks and print the figures.

FastAGI sessions per second for (a) switchboard's hotline, (a0) the same
exchange through switchboard's FastAGI layer with no hotline logic, (b) a
raw Twisted responder doing the same exchange, (b+r) that responder also
keeping each call's record as the hotline does (the call log row and the
log line), (c) pyst2's AGI class behind a thread-per-connection server,
(p) panoramisk's FastAGI server on asyncio; then (a) while its routing file
(2,000 destinations) is reloaded every second, and the time to validate
and swap that file.

Each server runs in its own process on its own port, and one load
generator process at a time plays Asterisk against one server at a time
(the others sit idle), so on a two-core machine the server under test has
a core and the generator the other. Rounds are interleaved (a, b, c, a,
b, c, ...) so that drift of the machine hits every server alike; the
figure given is the median of the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from bench import routing_files

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICKS = os.sysconf("SC_CLK_TCK")


class Server:
    """One FastAGI server process (C{python -m bench.agi_load serve ...})."""

    def __init__(self, label, kind, workdir, *extra):
        self.label = label
        self.stats_path = os.path.join(workdir, f"{label}.stats.json")
        self.log_path = os.path.join(workdir, f"{label}.log")
        command = [sys.executable, "-m", "bench.agi_load", "serve", kind,
                   "--log-file", self.log_path, "--stats", self.stats_path, *extra]
        if kind in ("switchboard", "raw-record"):
            database = os.path.join(workdir, f"{label.strip('()')}.calls.db")
            command += ["--database", "sqlite:///" + database]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        ready = self.process.stdout.readline().split(" ", 2)
        if len(ready) < 3 or ready[0] != "READY":
            self.process.kill()
            raise RuntimeError(f"server {label} did not start (see {self.log_path})")
        self.port = int(ready[1])
        self.description = ready[2].strip()
        self.reloads = "--reload-every" in extra

    def under_load(self, loaded: bool):
        """A reloading server reloads only while under load (see C{serve})."""
        if self.reloads:
            os.kill(self.process.pid, signal.SIGUSR1 if loaded else signal.SIGUSR2)

    def cpu(self) -> float:
        """CPU seconds used so far (all threads)."""
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self) -> dict:
        """Stop the server; what it wrote about its reloads."""
        self.process.terminate()
        self.process.wait(10)
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}


def steal() -> float:
    """CPU seconds the hypervisor has taken from this machine so far."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) / TICKS if len(fields) > 8 else 0.0


def measure(server, sessions, concurrency, clients=1) -> dict:
    """
    Run C{sessions} sessions (C{concurrency} at a time) against C{server}
    from C{clients} generator processes started together.

    @return: C{rate} (sessions per second), C{ok}, C{failures} (reason ->
        count), C{seconds}, and the CPU share of the server and of the
        generators (1.0 = one core busy all the time).
    """
    share, extra = divmod(sessions, clients)
    processes = []
    first = 0
    for i in range(clients):
        count = share + (1 if i < extra else 0)
        command = [sys.executable, "-m", "bench.agi_load", "client", "--port",
                   str(server.port), "--sessions", str(count), "--concurrency",
                   str(max(1, concurrency // clients)), "--first", str(first)]
        first += count
        processes.append(subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, text=True))
    for process in processes:
        process.stdout.readline()  # "ready": imported and waiting
    server.under_load(True)
    cpu_before, steal_before = server.cpu(), steal()
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    results = [json.loads(process.communicate()[0]) for process in processes]
    server_cpu = server.cpu() - cpu_before
    stolen = steal() - steal_before
    server.under_load(False)
    seconds = max(r["end"] for r in results) - min(r["start"] for r in results)
    failures = {}
    for r in results:
        for reason, count in r["failures"].items():
            failures[reason] = failures.get(reason, 0) + count
    ok = sum(r["ok"] for r in results)
    return {
        "rate": ok / seconds if seconds > 0 else 0.0,
        "ok": ok,
        "failures": failures,
        "seconds": seconds,
        "server_cpu": server_cpu / seconds if seconds > 0 else 0.0,
        "cost": server_cpu / ok if ok else 0.0,
        "client_cpu": sum(r["cpu"] for r in results) / seconds if seconds > 0 else 0.0,
        "steal": stolen / seconds if seconds > 0 else 0.0,
    }


def rounds(servers, options, sessions, count, reporter):
    """
    Warm every server up with one round, then measure them in turn,
    C{count} times.
    Returns label -> list of measurements.
    """
    # The warm-up is a whole unmeasured round: the same callers as every
    # round, so caches (caller IDs in E.164) are as in a running server.
    for server in servers:
        measure(server, sessions, options.concurrency, options.clients)
    results = {server.label: [] for server in servers}
    for number in range(count):
        for server in servers:
            result = measure(server, sessions, options.concurrency, options.clients)
            results[server.label].append(result)
            reporter(number, server, result)
    return results


def summary(measurements) -> dict:
    """Median rate and CPU shares, and all failures, over the rounds."""
    failures = {}
    for m in measurements:
        for reason, count in m["failures"].items():
            failures[reason] = failures.get(reason, 0) + count
    return {
        "rate": statistics.median(m["rate"] for m in measurements),
        "low": min(m["rate"] for m in measurements),
        "high": max(m["rate"] for m in measurements),
        "sessions": sum(m["ok"] for m in measurements) + sum(failures.values()),
        "failed": sum(failures.values()),
        "failures": failures,
        "server_cpu": statistics.median(m["server_cpu"] for m in measurements),
        "cost": statistics.median(m["cost"] for m in measurements),
        "client_cpu": statistics.median(m["client_cpu"] for m in measurements),
    }


def print_round(number, server, m):
    failed = sum(m["failures"].values())
    print(f"  round {number + 1} {server.label}: {m['rate']:8.0f} sessions/s "
          f"({m['ok']} ok, {failed} failed, {m['seconds']:.2f} s; CPU server "
          f"{m['server_cpu']:.0%} = {m['cost'] * 1000:.2f} ms/session, generator "
          f"{m['client_cpu']:.0%}, stolen by the host "
          f"{m['steal']:.0%})", flush=True)


def print_table(rows):
    print()
    print(f"  {'server':<36} {'sessions/s':>10} {'(min..max)':>13} {'failed':>7} "
          f"{'server CPU':>10} {'ms CPU/session':>14} {'gen. CPU':>9}")
    for label, name, s in rows:
        span = f"{s['low']:.0f}..{s['high']:.0f}"
        print(f"  {label + ' ' + name:<36} {s['rate']:>10.0f} {span:>13} "
              f"{s['failed']:>7} {s['server_cpu']:>10.0%} {s['cost'] * 1000:>14.2f} "
              f"{s['client_cpu']:>9.0%}")
        for reason, count in sorted(s["failures"].items()):
            print(f"      failure: {reason} x {count}")


def verdict(value, target) -> str:
    return f"{value:.2f} (target >= {target}: {'met' if value >= target else 'NOT met'})"


def print_budget(a, a0, b, br):
    """
    Where (a)'s server CPU per session goes beyond the raw responder's
    (b), the floor: each call's record, the FastAGI layer, the hotline.
    """
    if not (a["cost"] and a0["cost"] and b["cost"] and br["cost"]):
        return
    record = br["cost"] - b["cost"]
    layer = a0["cost"] - b["cost"]
    hotline = a["cost"] - a0["cost"]
    print(f"  the record alone (raw responder + each call's row and log line): (b+r)/b = "
          f"{br['rate'] / b['rate']:.2f}")
    print(f"  server CPU per session beyond (b)'s {b['cost'] * 1e6:.0f} us: the record and "
          f"log line alone take {record * 1e6:.0f} us ((b+r) - (b)); (a) adds "
          f"{(layer + hotline) * 1e6:.0f} us: the FastAGI layer {layer * 1e6:.0f} us "
          f"((a0) - (b)) and the hotline's own work, its record included, "
          f"{hotline * 1e6:.0f} us ((a) - (a0))")


def agi_benchmark(options, workdir):
    """The hotline and the reference servers, then the hotline under routing reloads."""
    sessions = options.sessions
    print(f"FastAGI hotline sessions over loopback: {sessions} sessions x "
          f"{options.rounds} round(s), {options.concurrency} concurrent, "
          f"{options.clients} generator process(es); {os.cpu_count()} CPU(s), "
          "nothing pinned; one server under load at a time.")
    servers = [
        Server("(a)", "switchboard", workdir),
        Server("(a0)", "standin", workdir),
        Server("(b)", "raw", workdir),
        Server("(b+r)", "raw-record", workdir),
        Server("(c)", "pyst2", workdir),
        Server("(p)", "panoramisk", workdir),
    ]
    try:
        for server in servers:
            print(f"  {server.label} port {server.port}: {server.description}")
        results = rounds(servers, options, sessions, options.rounds, print_round)
    finally:
        for server in servers:
            server.stop()
    a, a0, b, br, c, p = (summary(results[s.label]) for s in servers)
    print_table([("(a)", "switchboard hotline", a), ("(a0)", "switchboard FastAGI stand-in", a0),
                 ("(b)", "raw Twisted responder", b), ("(b+r)", "raw, + each call's record", br),
                 ("(c)", "pyst2 AGI, thread/conn", c), ("(p)", "panoramisk FastAGI, asyncio", p)])
    print()
    print(f"  FastAGI layer against panoramisk's: a0/p = {verdict(a0['rate'] / p['rate'], 1.0)}")
    print(f"  a/c = {verdict(a['rate'] / c['rate'], 2)}")
    print(f"  a/p = {a['rate'] / p['rate']:.2f} (the whole hotline, its call log included, "
          "against panoramisk's bare exchange)")
    print(f"  against the raw responder (b), the floor: a/b = {a['rate'] / b['rate']:.2f}, "
          f"a0/b = {a0['rate'] / b['rate']:.2f}")
    if a["cost"] and a0["cost"] and p["cost"]:
        print("  the same from server CPU per session (less sensitive to other load on the "
              f"machine): a0/p {p['cost'] / a0['cost']:.2f}, a/c {c['cost'] / a['cost']:.2f}, "
              f"a/p {p['cost'] / a['cost']:.2f}, a/b {b['cost'] / a['cost']:.2f}, "
              f"a0/b {b['cost'] / a0['cost']:.2f}")
    print_budget(a, a0, b, br)
    print(f"  (a) ran: {servers[0].description}")
    busiest = max(s["client_cpu"] for s in (a, a0, b, br, c, p))
    if busiest > 0.9:
        print(f"  The generator used {busiest:.0%} of a core: it may be the limit; "
              "compare with --clients 2.")
    else:
        print(f"  The generator used at most {busiest:.0%} of a core (while the server under "
              "load used its own): one generator process is not the limit.")
    print()
    reload_benchmark(options, workdir)


def reload_benchmark(options, workdir):
    """(a) with a 2,000-destination routing file, reloaded every second or not."""
    print("Routing reloads: (a) with a routing file of "
          f"{options.destinations} destinations, reloaded every second (saved again with a "
          "change each time, or unchanged), or never.")
    try:
        import switchboard.hotline.handler  # noqa: F401
        import switchboard.routing.store  # noqa: F401
    except ImportError as e:
        print(f"  no hotline or routing store ({e}): skipped.")
        return
    routing = routing_files.scaled_routing(options.destinations, workdir)
    swap = routing_files.swap_times(routing, 5)
    print(f"  validate + swap of the {options.destinations}-destination file: median "
          f"{statistics.median(swap) * 1000:.0f} ms of 5 "
          f"({', '.join(f'{t * 1000:.0f}' for t in swap)} ms)")
    if options.reload_rounds < 1:
        return
    servers = [Server("still", "switchboard", workdir, "--routing", routing)]
    for label, extra in (("changed", ()), ("unchanged", ("--unchanged",))):
        copy = os.path.join(workdir, f"{label}-{os.path.basename(routing)}")
        shutil.copyfile(routing, copy)
        servers.append(Server(label, "switchboard", workdir, "--routing", copy,
                              "--reload-every", "1", *extra))
    try:
        for server in servers:
            print(f"  {server.label} port {server.port}: {server.description}")
        results = rounds(servers, options, options.reload_sessions, options.reload_rounds,
                         print_round)
    finally:
        stats = {server.label: server.stop() for server in servers}
    still, changed, unchanged = (summary(results[s.label]) for s in servers)
    print_table([("(a)", "no reloads", still),
                 ("(a)", "saved + reloaded every 1 s", changed),
                 ("(a)", "reloaded unchanged every 1 s", unchanged)])
    print()
    for label, name, result in (("changed", "saved with a change", changed),
                                ("unchanged", "unchanged (the store skips it)", unchanged)):
        reloads = stats[label]
        seconds = reloads.get("seconds", [])
        by_cost = still["cost"] / result["cost"] if result["cost"] else 0.0
        print(f"  file {name}: with reloads / without = "
              f"{verdict(result['rate'] / still['rate'], 0.9)} ({by_cost:.2f} from CPU per "
              f"session); failed sessions {result['failed']} (target 0)")
        print(f"    reloads done: {reloads.get('done', 0)}, refused or failed: "
              f"{reloads.get('failed', 0)}"
              + (f", median {statistics.median(seconds) * 1000:.0f} ms each under load"
                 if seconds else "")
              + (f"; last error: {reloads['last_error']}" if reloads.get("last_error")
                 else ""))
        if seconds and statistics.median(seconds) > 1.0:
            print("    (a reload takes longer than the 1 s interval, so the next one starts "
                  "as soon as the last is done: the server reloads all the time)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[1])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--sessions", type=int, help="sessions per measurement")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, help="measurements of each server")
    parser.add_argument("--clients", type=int, default=1, help="generator processes")
    parser.add_argument("--destinations", type=int, default=2000)
    parser.add_argument("--reload-sessions", type=int,
                        help="sessions per measurement of the reload benchmark")
    parser.add_argument("--reload-rounds", type=int,
                        help="measurements of each server in the reload benchmark")
    parser.add_argument("--keep", action="store_true", help="keep logs and files")
    options = parser.parse_args(argv)
    if options.sessions is None:
        options.sessions = 2000 if options.quick else 5000
    if options.rounds is None:
        options.rounds = 1 if options.quick else 5
    if options.rounds < 1:
        parser.error("--rounds must be at least 1")
    if options.reload_rounds is None:
        options.reload_rounds = 1 if options.quick else 3
    if options.reload_sessions is None:
        # ~3.5 s a round: several reloads each, so that one more or less
        # in a round does not decide the ratio.
        options.reload_sessions = 1000 if options.quick else 10000
    workdir = tempfile.mkdtemp(prefix="switchboard-bench-")
    started = time.monotonic()
    try:
        agi_benchmark(options, workdir)
        print("\nAMI event parsing, in-process (python -m bench.ami_parse):")
        from bench import ami_parse
        ami_parse.main(["--events", "30000" if options.quick else "100000"])
    finally:
        if options.keep:
            print(f"\nlogs and files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n(benchmark took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
