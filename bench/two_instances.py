"""
C{python -m bench.two_instances [--burst 200] [--quick] [--keep]}: a burst of
#9 alarms spread over the two lab Asterisks, served by one switchboard
instance and then by two on the same PostgreSQL, in one run (issue 18).

Pieces: a throwaway PostgreSQL cluster (L{tests.postgres.Cluster}, unix
socket only) holding one database; the two lab Asterisks, C{a} on 127.0.0.1
and C{b} on 127.0.0.2 (L{alarm_lab.SECOND_ENV}); households 8766NNNN, each
with ten neighbours of its own, 8768HHHK (household HHH, neighbour K), so
that every leg names its alarm. Each Asterisk reaches the neighbours
through its own exchange trunk (C{asterisks: trunks:}) to a SIPp process
standing in for every neighbour's phone (a's on UDP 21200, b's on 21201):
it rings (180) until cancelled, and its -trace_msg file says which number
each INVITE was for and when it came.

(1) One instance (FastAGI 4581) serves both Asterisks (both dialplans' AGI
    list only it): B alarms at once, half the callers on each Asterisk
    (two SIPp callers, B/2 each, together 200 calls a second).
(2) A second instance (4582) joins on the same database; a's dialplan lists
    4581 then 4582, b's 4582 then 4581, so each serves one Asterisk's
    alarms; the same burst from B other households.

For each: every leg rung (each of the 10 x B neighbour numbers' INVITEs
counted at the SIPp of the caller's Asterisk: none missing, none twice,
none at the other's), every alarm recorded exactly once (none missing, no
caller with two, no two sharing a room, each on its caller's Asterisk, none
adopted or recovered: no lease misfiring under load), and each alarm's
latency, the caller's INVITE sent -> the tenth neighbour's INVITE received
(SIPp timestamps, one host clock): p50, p99, max, and the ratio two / one.
The callers cancel with C{*} after 8 s; legs ring 20 s; alarms left open are
closed by the bench.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time

from bench import alarm_lab
from bench.alarm_fanout import ALARM, Bench, households_csv, landline, percentile, stored
from bench.alarm_lab import SECOND, SECOND_ENV, Server, wait_for

PORTS = (4581, 4582)          # the instances' FastAGI
HTTP = (8591, 8592)           # their /metrics
SIDES = ("a", "b")
REMOTE = {"a": alarm_lab.ASTERISK, "b": f"{SECOND}:5060"}
LOGS = {"a": alarm_lab.LAB_LOG, "b": alarm_lab.SECOND_LOG}
ENV = {"a": None, "b": SECOND_ENV}
NEIGHBOURS_PORT = {"a": 21200, "b": 21201}
NEIGHBOURS_MEDIA = {"a": 44100, "b": 44200}
LEGS = 10
HOLD_MS = 8000
RATE = 200                    # calls a second, both callers together

# Alarms that changed hands: there should be none while both instances live.
HAND_OVERS = ("adopted", "recovered")


def neighbour(i: int, k: int) -> str:
    return f"8768{i:03d}{k}"


def neighbours(i: int) -> list:
    return [neighbour(i, k) for k in range(LEGS)]


def asterisks_yaml() -> str:
    """Both Asterisks, each reaching the neighbours through its own exchange trunk."""
    def trunk(side):
        return f"PJSIP/lab-exchange/sip:{{number}}@127.0.0.1:{NEIGHBOURS_PORT[side]}"
    return ("asterisks:\n"
            f'  - {{name: a, host: 127.0.0.1, trunks: {{default: "{trunk("a")}"}}}}\n'
            f'  - {{name: b, host: {SECOND}, trunks: {{default: "{trunk("b")}"}}}}\n')


def instance(workdir, n, url) -> Server:
    """Instance C{n} (0 or 1) on database C{url}, its own FastAGI, HTTP port and journal."""
    folder = os.path.join(workdir, f"instance{n + 1}")
    os.makedirs(folder)
    return Server(folder, ALARM, database=url, port=PORTS[n],
                  extra=f"journal: {folder}/journal\nhttp: {{port: {HTTP[n]}}}\n"
                        + asterisks_yaml())


def route_agi(orders: dict) -> None:
    """Each Asterisk's SWITCHBOARD_AGI: its instances' FastAGI ports in C{orders[side]}."""
    for side, ports in orders.items():
        alarm_lab.lab("cli", "dialplan set global SWITCHBOARD_AGI "
                      + "&".join(f"agi://127.0.0.1:{p}" for p in ports), env=ENV[side])


def split(households) -> dict:
    """The first half of C{households} call on a, the rest on b."""
    half = (len(households) + 1) // 2
    return {"a": households[:half], "b": households[half:]}


def household_of(number: str):
    """(household, neighbour) of a neighbour's number 8768HHHK, else None."""
    number = number[-8:]
    if len(number) == 8 and number.startswith("8768") and number[4:].isdigit():
        return int(number[4:7]), int(number[7])
    return None


def burst(bench, label, callers_by_side, instances, hold_ms=HOLD_MS, quiet=10) -> dict:
    """
    Every household of C{callers_by_side} ({side: [household]}) dials #9 on
    its side's Asterisk at once; what rang, what was recorded, how fast.
    """
    processes = dict(zip(SIDES, bench.phones))
    before = {side: set(p.calls()) for side, p in processes.items()}
    log_at = {side: alarm_lab.log_size(LOGS[side]) for side in SIDES}
    server_log_at = [len(s.log()) for s in instances]
    count = sum(len(h) for h in callers_by_side.values())
    expected = count * LEGS
    callers = {}
    for side, households in callers_by_side.items():
        if not households:
            continue
        path = os.path.join(bench.workdir, f"{label}-{side}.csv")
        with open(path, "w") as f:
            f.write("SEQUENTIAL\n" + "".join(f"{landline(i)};\n" for i in households))
        rate = max(1, round(RATE * len(households) / count))
        callers[side] = bench.caller(
            f"{label}-{side}", "alarm", "[field0]", hold_ms, calls=len(households),
            timeout_s=hold_ms // 1000 + 60, remote=REMOTE[side],
            extra=["-inf", path, "-r", str(rate), "-rp", "1000", "-l", str(len(households))])

    def new_legs():
        return sum(1 for side, p in processes.items() for c in p.calls() if c not in before[side])

    seen, changed = 0, time.monotonic()
    while (any(c.running() for c in callers.values()) and time.monotonic() - changed < quiet
           and seen < expected):
        now = new_legs()
        if now != seen:
            seen, changed = now, time.monotonic()
        time.sleep(0.1)
    for c in callers.values():
        c.wait(hold_ms / 1000 + 90)
        c.stop()
    wait_for(lambda: bench.ringing() == 0, 40, 0.5)

    out = {"count": count, "expected": expected}
    out.update(legs_rung(callers_by_side, callers, processes, before))
    out["problems"] = {side: alarm_lab.log_problems(log_at[side], LOGS[side]) for side in SIDES}
    out["server_problems"] = [server_problems(s.log()[at:])
                              for s, at in zip(instances, server_log_at)]
    time.sleep(2)  # the timeline is written behind the calls
    out.update(recorded(instances[0], callers_by_side, out["sent"], out["rang"]))
    return out


def legs_rung(callers_by_side, callers, processes, before) -> dict:
    """The callers' INVITEs sent and the neighbours' INVITEs received, household by household."""
    sent, ended = {}, 0
    for caller in callers.values():
        calls = caller.calls()
        # The server hung up after the caller's *: the alarm was cancelled.
        ended += sum(1 for m in calls.values() if "> BYE" in m)
        for call_id, (who, _) in caller.parties().items():
            if "< INVITE" in calls.get(call_id, {}):
                sent[int(who[-4:]) - 1] = calls[call_id]["< INVITE"]
    invites = collections.defaultdict(list)   # (household, k) -> [(time, side)]
    strangers = []
    for side, process in processes.items():
        calls = process.calls()
        for call_id, (_, whom) in process.parties().items():
            if call_id in before[side] or "> INVITE" not in calls.get(call_id, {}):
                continue
            leg = household_of(whom)
            if leg is None:
                strangers.append(whom)
            else:
                invites[leg].append((calls[call_id]["> INVITE"], side))
    side_of = {i: side for side, households in callers_by_side.items() for i in households}
    rang, missing, twice, elsewhere = {}, 0, 0, 0
    for i, side in side_of.items():
        firsts = []
        for k in range(LEGS):
            got = invites.pop((i, k), [])
            if not got:
                missing += 1
                continue
            twice += len(got) > 1
            elsewhere += sum(1 for _, s in got if s != side)
            firsts.append(min(t for t, _ in got))
        if len(firsts) == LEGS:
            rang[i] = max(firsts)
    outsiders = sum(len(v) for v in invites.values()) + len(strangers)
    latency = [rang[i] - sent[i] for i in rang if i in sent]
    return {"sent": sent, "rang": rang, "latency": latency,
            "missing": missing, "twice": twice,
            "elsewhere": elsewhere, "outsiders": outsiders,
            "callers_sent": len(sent), "ended": ended, "whole": len(rang)}


def server_problems(text: str) -> list:
    """A switchboard log's lines that say something went wrong or changed hands."""
    words = ("CRITICAL", "ERROR", "Traceback", "Unhandled", "taking up", "cannot renew",
             "no longer leads", "taken over", "lets it go", "held elsewhere")
    return [line for line in text.splitlines() if any(w in line for w in words)]


def recorded(server, callers_by_side, sent, rang) -> dict:
    """What the database holds of the burst's alarms; those left open are closed."""
    q = server.query
    side_of = {landline(i): side for side, hs in callers_by_side.items() for i in hs}
    rows = [r for r in q("SELECT id, caller_raw, room, asterisk, owner, status, opened_at "
                         "FROM alarm") if r[1][-8:] in side_of]
    per_caller = collections.Counter(r[1][-8:] for r in rows)
    ids = [r[0] for r in rows]
    rooms = collections.Counter(r[0] for r in q("SELECT room FROM alarm"))
    events = collections.Counter()
    last_originated = {}
    if ids:
        marks = ",".join("?" * len(ids))
        events = collections.Counter(dict(q(
            f"SELECT kind, count(*) FROM alarm_event WHERE alarm_id IN ({marks}) GROUP BY kind",
            *ids)))
        # The tenth 'ringing' (leg originated) of each alarm: not a retry's
        # or the duty stage's, which come later.
        originated = collections.defaultdict(list)
        for alarm_id, at in q(f"SELECT alarm_id, at FROM alarm_event WHERE alarm_id IN "
                              f"({marks}) AND kind = 'ringing' ORDER BY at", *ids):
            originated[alarm_id].append(at)
        last_originated = {a: ats[LEGS - 1] for a, ats in originated.items() if len(ats) >= LEGS}
    # Each alarm's time split at its timeline: the caller's INVITE -> on
    # record (dialplan, FastAGI, lookup) -> tenth leg originated -> tenth
    # neighbour's INVITE received (AMI, Asterisk, SIP).
    parts = [[], [], []]
    for alarm_id, caller, *_, opened in rows:
        i = int(caller[-4:]) - 1
        if i in sent and i in rang and alarm_id in last_originated:
            opened, last = stored(opened), stored(last_originated[alarm_id])
            for n, d in enumerate((opened - sent[i], last - opened, rang[i] - last)):
                parts[n].append(d)
    out = {
        "alarms": len(rows),
        "missing_alarms": sum(1 for c in side_of if per_caller[c] == 0),
        "duplicate_alarms": sum(n - 1 for n in per_caller.values() if n > 1),
        "shared_rooms": sum(n - 1 for n in rooms.values() if n > 1),
        "wrong_asterisk": sum(1 for r in rows if r[3] != side_of[r[1][-8:]]),
        "owners": collections.Counter(r[4] or "(none)" for r in rows),
        "statuses": collections.Counter(r[5] for r in rows),
        "hand_overs": {k: events[k] for k in HAND_OVERS if events[k]},
        "leg_events": {k: v for k, v in events.items() if k not in ("opened",)},
        "parts": parts,
    }
    still_open = [r[0] for r in rows if r[5] == "open"]
    for alarm_id in still_open:
        server.cli("alarms", "close", str(alarm_id), "--note", "bench clean-up")
    out["closed_by_bench"] = len(still_open)
    return out


def ms(values, p) -> str:
    return f"{percentile(values, p) * 1e3:.0f}" if values else "-"


def print_phase(title, r) -> None:
    v = r["latency"]
    print(f"\n{title}: {r['count']} alarms at once ({RATE}/s), half on each Asterisk")
    print(f"    legs: {r['expected'] - r['missing']} of {r['expected']} rang; missing "
          f"{r['missing']}, rung twice {r['twice']}, at the other Asterisk's trunk "
          f"{r['elsewhere']}, not a burst neighbour {r['outsiders']}; alarms with all "
          f"ten rung {r['whole']} of {r['count']} (callers' INVITEs sent {r['callers_sent']}, "
          f"hung up by the server after their * {r['ended']})")
    print(f"    alarms recorded {r['alarms']} of {r['count']}: missing {r['missing_alarms']}, "
          f"duplicates {r['duplicate_alarms']}, rooms shared {r['shared_rooms']}, on the "
          f"wrong Asterisk {r['wrong_asterisk']}, changed hands "
          f"{r['hand_overs'] or 'none'}")
    print("    by owner: " + ", ".join(f"{k} {n}" for k, n in sorted(r["owners"].items()))
          + "; by status: " + ", ".join(f"{k} {n}" for k, n in sorted(r["statuses"].items()))
          + f"; closed by the bench {r['closed_by_bench']}")
    print("    timeline events: " + ", ".join(f"{k} {n}" for k, n in
                                               sorted(r["leg_events"].items())))
    if v:
        print(f"    #9 INVITE sent -> tenth neighbour's INVITE received ({len(v)} alarms): "
              f"p50 {ms(v, 50)} ms, p99 {ms(v, 99)} ms, max {max(v) * 1e3:.0f} ms")
    names = ("INVITE sent -> alarm on record", "-> tenth leg originated",
             "-> tenth neighbour's INVITE received")
    for name, part in zip(names, r["parts"]):
        if part:
            print(f"      {name:<40} p50 {ms(part, 50):>6} ms  p99 {ms(part, 99):>6} ms")
    for side in SIDES:
        for n, message in r["problems"][side][:3]:
            print(f"    Asterisk {side}: {n} x {message}")
    for n, lines in enumerate(r["server_problems"]):
        for line in lines[:5]:
            print(f"    instance {n + 1}: {line[:160]}")
        if len(lines) > 5:
            print(f"    instance {n + 1}: ... {len(lines) - 5} more such lines")


def faults(r) -> list:
    """What went wrong in a phase, in words (empty: every leg rung, every alarm once)."""
    said = [f"{r[k]} {what}" for k, what in (
        ("missing", "legs not rung"), ("twice", "legs rung twice"),
        ("elsewhere", "legs on the other Asterisk"), ("missing_alarms", "alarms missing"),
        ("duplicate_alarms", "duplicate alarms"), ("shared_rooms", "rooms shared"),
        ("wrong_asterisk", "alarms on the wrong Asterisk")) if r[k]]
    if r["hand_overs"]:
        said.append(f"alarms changed hands {r['hand_overs']}")
    return said


def warm_up(bench, households, instances) -> None:
    """One alarm on each Asterisk first: both paths work and every leg rings."""
    r = burst(bench, f"warm-{households[0]}", dict(zip(SIDES, ([h] for h in households))),
              instances, hold_ms=1500, quiet=5)
    if r["whole"] != len(households) or faults(r):
        raise SystemExit(f"the warm-up alarms failed: {r['whole']} of {len(households)} rang "
                         f"all ten; {faults(r)} (--keep keeps the traces)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.two_instances", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=200,
                        help="alarms placed at once in each phase (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a burst of 20")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.burst = min(args.burst, 20)
    if not 2 <= args.burst <= 498:
        parser.error("2 to 498 alarms a burst (neighbours 8768HHHK: 1,000 households in all)")
    from tests.postgres import Cluster, Unavailable
    alarm_lab.ready(list(NEIGHBOURS_PORT.values()), agi_ports=PORTS, second=True)

    cpu = alarm_lab.CpuWatch()
    load = os.getloadavg()
    workdir = tempfile.mkdtemp(prefix="switchboard-two-")
    try:
        cluster = Cluster()
    except Unavailable as e:
        raise SystemExit(f"PostgreSQL: {e}")
    instances, phones = [], []
    try:
        url = cluster.create_database()
        instances = [instance(workdir, n, url) for n in range(2)]
        total = 2 * args.burst + 4   # two bursts, and two warm-ups of one alarm a side
        path = os.path.join(workdir, "households.csv")
        households_csv(path, total, neighbours)
        print(instances[0].cli("households", "import", path).strip(), flush=True)
        phones = [alarm_lab.start(f"neighbours-{side}", workdir, alarm_lab.phone_scenario(),
                                  NEIGHBOURS_PORT[side], NEIGHBOURS_MEDIA[side],
                                  calls=10_000_000) for side in SIDES]
        bench = Bench(workdir, instances[0], phones)

        route_agi({"a": PORTS[:1], "b": PORTS[:1]})
        instances[0].start()
        warm_up(bench, [total - 4, total - 3], instances[:1])
        one = burst(bench, "one", split(list(range(args.burst))), instances[:1])
        print_phase("(1) one instance (FastAGI 4581) serving both Asterisks", one)

        instances[1].start(synced=False)
        route_agi({"a": PORTS, "b": PORTS[::-1]})
        warm_up(bench, [total - 2, total - 1], instances)
        two = burst(bench, "two", split(list(range(args.burst, 2 * args.burst))), instances)
        print_phase("(2) two instances on the same PostgreSQL (a lists 4581 first, "
                    "b 4582 first)", two)

        print(f"\nratio two instances / one, #9 INVITE -> tenth neighbour's INVITE:")
        if one["latency"] and two["latency"]:
            print("    " + ", ".join(
                f"{name} {percentile(two['latency'], p) / percentile(one['latency'], p):.2f}"
                for name, p in (("p50", 50), ("p99", 99)))
                + f", max {max(two['latency']) / max(one['latency']):.2f}")
        for title, r in (("one instance", one), ("two instances", two)):
            said = faults(r)
            print(f"    {title}: " + ("every leg rung once, every alarm recorded once"
                                      if not said else "; ".join(said)))
        return 0 if not faults(one) and not faults(two) else 1
    finally:
        for p in phones:
            p.stop()
        for s in instances:
            s.stop()
        route_agi({"a": (4573,), "b": (4573,)})
        cluster.stop()
        print(f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
              f"(1, 5, 15 min); at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
        left = alarm_lab.hang_up_callers("8766", env=SECOND_ENV)
        if left:
            print(f"hung up {left} bench caller(s) left in the second lab Asterisk")
        alarm_lab.lab("cli", "database deltree swb_ring", env=SECOND_ENV)
        alarm_lab.clean_up(cpu, workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
