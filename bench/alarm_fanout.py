"""
C{python -m bench.alarm_fanout [--alarms 100] [--burst 200] [--quick]}: the #9
fan-out through the real lab Asterisk, beside Asterisk's own ring-all.

A real C{switchboard run} (its own configuration, database and households)
serves the lab Asterisk; ten long-lived SIPp phones (87650002..87650011)
ring for every call until it is cancelled. Every household's ten neighbours
are those ten phones; its landline is 8766NNNN, a number no lab endpoint
has, so its calls arrive as the local exchange (endpoint lab-exchange).

(a) Latency. For each of N households in turn, a SIPp caller dials C{#9}
    (the switchboard: FastAGI, the alarm on record, ten AMI originates) and,
    interleaved with it, C{*99} (C{Dial} of the same ten phones, the
    baseline); the figure is the time from the caller's INVITE leaving to
    the last of the ten phones' INVITEs arriving, from SIPp's -trace_msg
    timestamps (one host clock). The alarm caller then cancels with C{*},
    the native caller hangs up while it rings, and the next call waits until
    every leg has been cancelled. The switchboard's time is then split at
    the times its timeline recorded.
(b) Burst. B alarms from B other households placed at once (SIPp -r 200):
    INVITEs counted at the phones, alarms and legs read from the database,
    the time until every leg rang; then the same burst of C{*99} calls as
    the baseline. Callers cancel with C{*}; alarms still open are closed as
    staff would.

C{--floor} adds a third kind of call to both: C{*98}, the same #9 dialplan
served by L{bench.alarm_floor}, a bare FastAGI server that writes ten
prepared Originates the moment Asterisk connects (no lookup, no record):
what any server that fans out by AMI would take at the least, so that
switchboard / floor is the server's share and floor / native Asterisk's.

The alarm.yaml: legs ring 20 s (the burst's callers cancel after 8 s),
no retries, escalation far away, and a beep for the caller's prompts (they
are played after the fan-out; short ones only make the rounds quicker).

Every SIP channel of the lab Asterisk takes an RTP port pair from
lab/asterisk/rtp.conf: a burst of B alarms needs B * 11 of them.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

from bench import alarm_lab
from bench.alarm_lab import Server, wait_for

PHONES = [f"8765{n:04d}" for n in range(2, 12)]
# The duty phone: a lab endpoint no SIPp answers. Escalation is 600 s away,
# so it is rung only for an alarm none of whose legs could be placed.
DUTY = "87650198"

ALARM = f"""\
neighbours: {{max: 10, ring_timeout: 20, confirm_within: 20, retry_unanswered: 0}}
escalation:
  repeat_every: 0
  stages:
    - {{name: duty officer, after: 600, phones: ["{DUTY}"]}}
responder: {{attempts: 1, digit_timeout: 2}}
prompts: {{caller_hold: [beep], caller_cancelled: [beep]}}
"""

LABELS = {"alarm": "switchboard (#9)", "native": "native Dial (*99)",
          "floor": "floor (*98)"}


def landline(i: int) -> str:
    return f"8766{i + 1:04d}"


def households_csv(path: str, count: int, neighbours=lambda i: PHONES) -> None:
    """C{count} households, household C{i}'s neighbours C{neighbours(i)} (the ten lab phones)."""
    with open(path, "w") as f:
        f.write("id,numbers,community,building,unit,room,residents,notes,neighbours\n")
        for i in range(count):
            ring = ";".join(f"{p}=Neighbour {p[-2:]}" for p in neighbours(i))
            f.write(f",{landline(i)},Bench Garden,{i // 100 + 1},{i // 10 % 10 + 1},"
                    f"{i % 10 + 101},Resident {i + 1},,{ring}\n")


def percentile(values, p):
    """Nearest rank: the smallest value with at least C{p} per cent at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def stored(value) -> float:
    """A naive UTC datetime as the database keeps it (text on SQLite), as POSIX time."""
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc).timestamp()


class Bench:
    """The running pieces: the server, the ten phones, ports for the callers."""

    def __init__(self, workdir, server, phones):
        self.workdir = workdir
        self.server = server
        self.phones = phones
        self._calls = 0
        #: Alarm caller -> (INVITE sent, first and last neighbour's INVITE received).
        self.rang: dict = {}

    def ports(self):
        self._calls += 1
        return 5150 + self._calls % 100, 43000 + 4 * (self._calls % 1000)

    def invites(self) -> dict:
        """Phone -> {Call-ID: time its INVITE arrived}."""
        return {p.name: {c: m["> INVITE"] for c, m in p.calls().items() if "> INVITE" in m}
                for p in self.phones}

    def new_invites(self, before) -> dict:
        return {name: {c: t for c, t in calls.items() if c not in before[name]}
                for name, calls in self.invites().items()}

    def ringing(self) -> int:
        """Legs whose INVITE arrived and that were not cancelled yet."""
        return sum(1 for p in self.phones for m in p.calls().values()
                   if "> INVITE" in m and "> CANCEL" not in m)

    def caller(self, name, mode, number, hold_ms, **kw):
        scenario = (alarm_lab.alarm_scenario(number, hold_ms) if mode == "alarm"
                    else alarm_lab.alarm_scenario(number, hold_ms, exten="*98")
                    if mode == "floor" else alarm_lab.native_scenario(number, hold_ms))
        port, media = self.ports()
        return alarm_lab.caller(name, self.workdir, scenario, port, media, **kw)


def one_call(bench, mode, number, hold_ms):
    """
    One #9 (C{alarm}) or *99 (C{native}) call: (time its INVITE was sent or
    None, [time of the first INVITE at each phone that rang], SIPp's exit code).
    """
    before = bench.invites()
    call = bench.caller(f"{mode}-{number}", mode, number, hold_ms, timeout_s=30)
    code = call.wait(40)
    call.stop()
    wait_for(lambda: bench.ringing() == 0, 25)  # every leg cancelled before the next call
    rung = [min(calls.values()) for calls in bench.new_invites(before).values() if calls]
    sent = [m["< INVITE"] for m in call.calls().values() if "< INVITE" in m]
    return (min(sent) if sent and code == 0 else None), rung, code


def latency(bench, count, modes=("alarm", "native")):
    """
    C{count} rounds of one call of each of C{modes}, their order turning
    round by round (so that neither kind always follows the other).
    """
    took = {mode: {} for mode in modes}
    spread = {mode: [] for mode in modes}
    failed = {mode: 0 for mode in modes}
    first_alarm = bench.server.last_alarm() + 1
    for i in range(count):
        turn = i % len(modes)
        for mode in modes[turn:] + modes[:turn]:
            sent, rung, code = one_call(bench, mode, landline(i),
                                        500 if mode == "native" else 1200)
            if sent is None or len(rung) < len(PHONES):
                failed[mode] += 1
                print(f"  {mode} call {i + 1} failed: SIPp exit {code}, {len(rung)} of 10 "
                      f"phones rang", flush=True)
            else:
                took[mode][landline(i)] = (sent, max(rung))
                if mode == "alarm":
                    bench.rang[landline(i)] = (sent, min(rung), max(rung))
                spread[mode].append(max(rung) - min(rung))
        if (i + 1) % 10 == 0:
            print(f"  ... {i + 1} of {count}", flush=True)

    print("\n(a) #9 fan-out latency: the caller's INVITE sent -> the last of the ten "
          "neighbours' INVITEs received")
    print(f"    {count} households, the two kinds of call interleaved; ms")
    print(f"    {'':<20}{'calls':>6}{'p50':>8}{'p99':>8}{'max':>8}{'spread p50':>12}"
          f"{'failed':>8}")
    figures = {}
    for mode in modes:
        v = [last - sent for sent, last in took[mode].values()]
        if not v:
            print(f"    {LABELS[mode]:<20}{0:>6}  (every call failed: {failed[mode]})")
            continue
        figures[mode] = (percentile(v, 50), percentile(v, 99))
        print(f"    {LABELS[mode]:<20}{len(v):>6}{figures[mode][0] * 1e3:>8.1f}"
              f"{figures[mode][1] * 1e3:>8.1f}{max(v) * 1e3:>8.1f}"
              f"{percentile(spread[mode], 50) * 1e3:>12.1f}{failed[mode]:>8}")
    for a, b in (("alarm", "native"), ("floor", "native"), ("alarm", "floor")):
        if a in figures and b in figures:
            print(f"    ratio {LABELS[a]} / {LABELS[b]}: p99 "
                  f"{figures[a][1] / figures[b][1]:.2f}, p50 {figures[a][0] / figures[b][0]:.2f}")
    statuses = dict(bench.server.query(
        "SELECT status, count(*) FROM alarm WHERE id >= ? GROUP BY status", first_alarm))
    print(f"    alarms recorded: {sum(statuses.values())} of {count}, by status: "
          + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    phases(bench.server, first_alarm, took["alarm"])


def phases(server, first_alarm, took):
    """Split each alarm's latency at the times the server put on its timeline."""
    rows = server.query(
        "SELECT a.caller_raw, a.opened_at, min(e.at), max(e.at) FROM alarm a "
        "JOIN alarm_event e ON e.alarm_id = a.id AND e.kind = 'ringing' "
        "WHERE a.id >= ? GROUP BY a.id", first_alarm)
    parts = [[], [], [], []]
    for caller, opened, first, last in rows:
        if caller not in took:
            continue
        sent, rang = took[caller]
        opened, first, last = stored(opened), stored(first), stored(last)
        for i, d in enumerate((opened - sent, first - opened, last - first, rang - last)):
            parts[i].append(d)
    if not parts[0]:
        return
    print(f"    where the switchboard's time goes ({len(parts[0])} alarms; ms):   p50     p99")
    for name, v in zip(("INVITE sent -> alarm raised (dialplan, FastAGI, lookup)",
                        "-> first leg originated (alarm written to the database)",
                        "-> tenth leg originated (ten Originate actions issued)",
                        "-> last INVITE received (AMI, Asterisk, SIP)"), parts):
        print(f"      {name:<58}{percentile(v, 50) * 1e3:>6.1f}{percentile(v, 99) * 1e3:>8.1f}")


def burst(bench, mode, first, count, hold_ms, rang_all=None, server_pid=None):
    """
    C{count} calls at once from households C{first}..; what rang, how fast.
    C{rang_all()} is called once every leg rang (or the phones fell silent).
    C{server_pid}: the process serving the calls' FastAGI, if not the switchboard.
    """
    before = bench.invites()
    first_alarm = bench.server.last_alarm() + 1
    log_at = alarm_lab.log_size()
    callers = os.path.join(bench.workdir, f"burst-{mode}.csv")
    with open(callers, "w") as f:
        f.write("SEQUENTIAL\n" + "".join(f"{landline(first + i)};\n" for i in range(count)))
    call = bench.caller(f"burst-{mode}", mode, "[field0]", hold_ms, calls=count,
                        timeout_s=hold_ms // 1000 + 60,
                        extra=["-inf", callers, "-r", "200", "-rp", "1000", "-l", str(count)])
    expected, seen, changed = count * len(PHONES), 0, time.monotonic()
    spent = alarm_lab.CpuSpent(server_pid or bench.server.process.pid)
    while call.running() and time.monotonic() - changed < 10 and seen < expected:
        now = sum(len(c) for c in bench.new_invites(before).values())
        if now != seen:
            seen, changed = now, time.monotonic()
            if seen >= expected:
                spent.stop()
        time.sleep(0.1)
    if not spent.spent:
        spent.stop()
    if rang_all is not None:
        rang_all()
    call.wait(hold_ms / 1000 + 90)
    call.stop()
    wait_for(lambda: bench.ringing() == 0, 40, 0.5)
    rang = bench.new_invites(before)
    times = sorted(t for calls in rang.values() for t in calls.values())
    sent = sorted(m["< INVITE"] for m in call.calls().values() if "< INVITE" in m)
    # Calls that went the whole way: an alarm the server hung up after the
    # cancel, a native call that rang until the caller hung up.
    ended = "> 487" if mode == "native" else "> BYE"
    out = {"mode": mode, "count": count, "legs": len(times), "expected": expected, "sent": len(sent),
           "ended": sum(1 for m in call.calls().values() if ended in m),
           "per_phone": sorted(len(c) for c in rang.values()),
           "problems": alarm_lab.log_problems(log_at), "cpu": spent.spent}
    if sent:
        out["window"] = (sent[0], (times[-1] if times else sent[-1]) + 0.5)
    if times and sent:
        out["rang"] = [sent[-1] - sent[0], percentile(times, 50) - sent[0],
                       percentile(times, 99) - sent[0], times[-1] - sent[0]]
    if mode == "alarm":
        time.sleep(2)  # the timeline is written behind the calls
        q = bench.server.query
        out["statuses"] = dict(q("SELECT status, count(*) FROM alarm WHERE id >= ? "
                                 "GROUP BY status", first_alarm))
        out["leg_events"] = dict(q("SELECT kind, count(*) FROM alarm_event WHERE alarm_id >= ? "
                                   "AND leg IS NOT NULL GROUP BY kind", first_alarm))
        out["whole"] = q("SELECT count(*) FROM alarm a WHERE id >= ? AND NOT EXISTS (SELECT 1 "
                         "FROM alarm_event e WHERE e.alarm_id = a.id AND e.kind = 'failed')",
                         first_alarm)[0][0]
        t0 = sent[0] if sent else 0.0
        spans = [(stored(opened) - t0, stored(first) - stored(opened), stored(last) - stored(first))
                 for opened, first, last in q(
                     "SELECT a.opened_at, min(e.at), max(e.at) FROM alarm a JOIN alarm_event e "
                     "ON e.alarm_id = a.id AND e.kind = 'ringing' WHERE a.id >= ? GROUP BY a.id",
                     first_alarm)]
        out["phases"] = [[percentile([x[i] for x in spans], p) for p in (50, 99)]
                         for i in range(3)] if spans and sent else None
        still_open = [r[0] for r in q("SELECT id FROM alarm WHERE id >= ? AND closed_at IS NULL",
                                      first_alarm)]
        for alarm_id in still_open:
            bench.server.cli("alarms", "close", str(alarm_id), "--note", "bench clean-up")
        out["closed_by_bench"] = len(still_open)
    return out


def print_burst(alarm, native, floor=None):
    print(f"\n(b) burst: {alarm['count']} calls placed at once (SIPp -r 200), each ringing "
          f"the ten phones; s from the first caller's INVITE")
    print(f"    first INVITE at {alarm['window'][0]:.3f} (host clock)" if "window" in alarm else "")
    print(f"    {'':<20}{'legs rang':>11}{'callers in':>12}{'50% rang':>10}{'99% rang':>10}"
          f"{'all rang':>10}")
    for mode, r in (("alarm", alarm), ("native", native), ("floor", floor)):
        if r is None:
            continue
        times = "".join(f"{t:>10.2f}" for t in r["rang"]) if "rang" in r else "  (none)"
        print(f"    {LABELS[mode]:<20}{r['legs']:>5}/{r['expected']:<5}{times}")
        print(f"      per phone {r['per_phone'][0]}..{r['per_phone'][-1]}; calls that went "
              f"as planned {r['ended']} of {r['sent']}")
        for n, message in r["problems"][:3]:
            print(f"      Asterisk: {n} x {message}")
    print("    CPU seconds from the burst's start until every leg rang (or the phones fell "
          "silent):")
    for mode, r in (("alarm", alarm), ("native", native), ("floor", floor)):
        if r is None:
            continue
        c = r["cpu"]
        print(f"      {LABELS[mode]:<20} Asterisk {c['asterisk']:6.2f}, server {c['server']:5.2f}, "
              f"whole machine {c['machine']:6.2f} in {c['wall']:5.2f} s")
    for a, b in ((alarm, native), (floor, native), (alarm, floor)):
        if a is not None and b is not None and "rang" in a and "rang" in b:
            print(f"    ratio time until all rang, {LABELS[a['mode']]} / {LABELS[b['mode']]}: "
                  f"{a['rang'][-1] / b['rang'][-1]:.2f}")
    print(f"    alarms recorded: {sum(alarm['statuses'].values())} of {alarm['count']} ("
          + ", ".join(f"{k} {v}" for k, v in sorted(alarm["statuses"].items()))
          + f"); with all ten legs placed: {alarm['whole']}")
    print("    leg events: " + ", ".join(f"{k} {v}" for k, v in
                                          sorted(alarm["leg_events"].items())))
    if alarm["phases"]:
        print("    the alarms in the server (from its timeline; s):" + " " * 27 + "p50     p99")
        for name, (p50, p99) in zip(("first caller's INVITE sent -> this alarm raised",
                                     "raised -> first leg originated (alarm written)",
                                     "first -> tenth leg originated"), alarm["phases"]):
            print(f"      {name:<68}{p50:>6.2f}{p99:>8.2f}")
    print(f"    alarms still open after the callers left, closed by the bench: "
          f"{alarm['closed_by_bench']}")


def profile(server, path):
    """py-spy sampling the server (every thread, idle too) until sent SIGINT."""
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy):
        raise SystemExit("--profile needs py-spy (pip install py-spy)")
    process = subprocess.Popen([spy, "record", "--pid", str(server.process.pid), "--idle",
                                "--threads", "--rate", "250", "--nonblocking", "--format", "raw",
                                "--output", path], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the first call
    return process


def start_floor(workdir, ring_ms=1500):
    """L{bench.alarm_floor} on FastAGI port 4574, once it says it is ready."""
    process = subprocess.Popen([sys.executable, "-m", "bench.alarm_floor",
                                "--ring-ms", str(ring_ms), *PHONES],
                               stdout=subprocess.PIPE, stderr=open(
                                   os.path.join(workdir, "floor.log"), "w"), text=True,
                               cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise SystemExit(f"bench.alarm_floor did not start: see {workdir}/floor.log")
    return process


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alarm_fanout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alarms", type=int, default=100,
                        help="latency: alarms, and as many native calls (default %(default)s)")
    parser.add_argument("--burst", type=int, default=200,
                        help="burst: alarms placed at once (default %(default)s; 0: none)")
    parser.add_argument("--quick", action="store_true", help="10 alarms, a burst of 20")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--probe", action="store_true",
                        help="run the server under bench.alarm_probe and split each alarm's "
                             "time (one at a time: every step to the last INVITE; burst: the "
                             "time before each alarm is raised)")
    parser.add_argument("--floor", action="store_true",
                        help="one at a time: also the floor (bench.alarm_floor: a bare FastAGI "
                             "server writing ten prepared Originates), in turns with the others")
    parser.add_argument("--profile", metavar="FILE",
                        help="py-spy samples of the server during the burst (collapsed stacks, "
                             "idle included) to FILE, summarised by bench.profile_summary")
    args = parser.parse_args(argv)
    if args.quick:
        args.alarms, args.burst = min(args.alarms, 10), min(args.burst, 20)
    if args.alarms + args.burst > 9000:
        parser.error("the households' landlines are 8766NNNN: at most 9,000 in all")
    alarm_lab.ready([20000 + int(p[-4:]) for p in PHONES],
                    agi_ports=(4573, 4574) if args.floor else (4573,))
    pairs, need = alarm_lab.rtp_pairs(), args.burst * (len(PHONES) + 1)
    print(f"lab Asterisk: {pairs} RTP port pairs (lab/asterisk/rtp.conf); a burst of "
          f"{args.burst} alarms needs {need} (caller + 10 legs each)"
          + ("" if need <= pairs else f": at most {pairs // (len(PHONES) + 1)} alarms fit"))

    cpu = alarm_lab.CpuWatch()
    workdir = tempfile.mkdtemp(prefix="switchboard-fanout-")
    probe = os.path.join(workdir, "probe.json") if args.probe else None
    server, phones = Server(workdir, ALARM, probe), []
    alarm = bench = floor = None
    households = args.alarms + args.burst + 1  # the last one warms up
    try:
        path = os.path.join(workdir, "households.csv")
        households_csv(path, households)
        print(server.cli("households", "import", path).strip())
        server.start()
        phones = [alarm_lab.phone(p, workdir) for p in PHONES]
        time.sleep(0.5)
        bench = Bench(workdir, server, phones)
        if args.floor:
            floor = start_floor(workdir)
        for mode in ("alarm", "native", "floor")[:3 if args.floor else 2]:  # warms up, and checks both paths ring all ten
            sent, rung, code = one_call(bench, mode, landline(households - 1), 1200)
            if sent is None or len(rung) < len(PHONES):
                raise SystemExit(f"the first {mode} call failed: SIPp exit {code}, {len(rung)} "
                                 f"of 10 phones rang (--keep keeps the traces)")
        if args.alarms:
            latency(bench, args.alarms,
                    ("alarm", "native", "floor") if args.floor else ("alarm", "native"))
        if args.burst:
            spy = profile(server, args.profile) if args.profile else None

            def rang_all():
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(60)

            alarm = burst(bench, "alarm", args.alarms, args.burst, 8000, rang_all)
            wait_for(lambda: bench.ringing() == 0, 30, 0.5)
            native = burst(bench, "native", args.alarms, args.burst, 8000)
            if args.floor:
                # Its legs ring as long as the others' do before their callers leave.
                floor.terminate()
                floor.wait(10)
                floor = start_floor(workdir, ring_ms=8000)
                wait_for(lambda: bench.ringing() == 0, 30, 0.5)
                floor_burst = burst(bench, "floor", args.alarms, args.burst, 8000,
                                    server_pid=floor.pid)
            print_burst(alarm, native, floor_burst if args.floor else None)
        return 0
    finally:
        for p in phones:
            p.stop()
        if floor is not None:
            floor.terminate()
            floor.wait(10)
        server.stop()
        if probe and bench is not None and bench.rang and os.path.exists(probe):
            from bench import probe_summary
            probe_summary.print_latency(probe, bench.rang)
        if probe and alarm and "window" in alarm and os.path.exists(probe):
            from bench import probe_summary
            probe_summary.print_summary(probe, alarm["window"])
        if args.profile and os.path.exists(args.profile):
            from bench import profile_summary
            profile_summary.print_summary(args.profile)
        alarm_lab.clean_up(cpu, workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
