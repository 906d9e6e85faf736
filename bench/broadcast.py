"""
C{python -m bench.broadcast [--households 2000] [--lines 60] [--alarms 10] [--quick]}:
a voice broadcast to N households through the real lab Asterisk, and the
C{#9} alarm's latency while it runs, in the same run.

A real C{switchboard run} (its own configuration, database and households)
serves the lab Asterisk. The households' landlines are 8767NNNN; the
notices are dialled through a trunk of their own (C{broadcast.trunk}) to
one SIPp process standing in for every household: it answers after
C{--ring-ms}, presses 1 C{--key-ms} after answering (during the notice,
which is short) and takes the server's BYE after the thanks. The campaign
may hold C{--lines} calls at once, and the trunk has as many lines
(C{trunk_lines}): a C{#9}'s ten legs take lines from it, and as many
notice calls yield (hung up, called again later, not counted).

(a) Completion: the campaign's time from start to done (its own
    timestamps) against the ideal, households x call length / lines, the
    call length being the median of the households' calls, INVITE received
    -> BYE received (ring, the notice until 1, the thanks).
(b) #9 latency: C{--alarms} alarms before the campaign and as many while
    it runs (one at a time, the caller cancelling with C{*}), from ten
    other households whose neighbours are the ten lab phones
    87650002..87650011 (long-lived SIPp phones that ring until cancelled);
    the figure is the caller's INVITE sent -> the tenth neighbour's INVITE
    received (SIPp's -trace_msg, one host clock), and the ratio of the
    two medians (and of the p90s) is the cost of the campaign to an alarm.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time

from bench import alarm_lab
from bench.alarm_fanout import ALARM, PHONES, Bench, landline, one_call, percentile, stored
from bench.alarm_lab import Server, wait_for
from lab.sipp import phone_scenario

#: The SIPp process that is every household: 127.0.0.1:HOUSEHOLDS_PORT.
HOUSEHOLDS_PORT = 21100
NOTICE = "今晚停水。"
COMMUNITY = "Broadcast Garden"


def bench_landline(i: int) -> str:
    return f"8767{i + 1:04d}"


def write_households(path: str, households: int, alarms: int) -> None:
    """The campaign's households (no neighbours), then the alarms' (the ten lab phones)."""
    ring = ";".join(f"{p}=Neighbour {p[-2:]}" for p in PHONES)
    with open(path, "w", encoding="utf-8") as f:
        f.write("numbers,community,building,unit,room,residents,neighbours\n")
        for i in range(households):
            f.write(f"{bench_landline(i)},{COMMUNITY},{i // 100 + 1},{i // 10 % 10 + 1},"
                    f"{i % 10 + 101},Resident {i + 1},\n")
        for i in range(alarms):
            f.write(f"{landline(i)},Alarm Garden,1,1,{i + 101},Caller {i + 1},{ring}\n")


def configure(server: Server, args) -> None:
    """The bench's trunk and broadcast sections, and speech where the lab Asterisk reads."""
    with open(server.config, encoding="utf-8") as f:
        text = f.read()
    trunk = f"PJSIP/lab-exchange/sip:{{number}}@127.0.0.1:{HOUSEHOLDS_PORT}"
    text = text.replace('trunks: {default: "PJSIP/{number}"}',
                        f'trunks: {{default: "PJSIP/{{number}}", households: "{trunk}"}}')
    sounds = os.path.join(alarm_lab.LAB_ROOT, "usr", "share", "asterisk", "sounds")
    text += (f"broadcast: {{lines: {args.lines}, trunk_lines: {args.lines}, retries: 2, "
             "retry_after: 10, ring_timeout: 20, plays: 2, quiet_hours: null, "
             "trunk: households}\n"
             f"speech: {{sounds_dir: {sounds}}}\n")
    with open(server.config, "w", encoding="utf-8") as f:
        f.write(text)


def households_process(workdir: str, args) -> alarm_lab.SippProcess:
    """One SIPp answering every notice call, pressing 1 during the notice."""
    scenario = phone_scenario("answer", ring_ms=args.ring_ms, keys="1", before_ms=args.key_ms)
    return alarm_lab.start("households", workdir, scenario, HOUSEHOLDS_PORT, 44000,
                           calls=10_000_000)


def alarm_latencies(bench, first: int, count: int, still=lambda: True) -> list:
    """Up to C{count} #9 calls in turn while C{still()}: INVITE sent -> tenth neighbour rang."""
    out, failed = [], 0
    for i in range(first, first + count):
        if not still():
            break
        sent, rung, code = one_call(bench, "alarm", landline(i), 1200)
        if sent is None or len(rung) < len(PHONES):
            failed += 1
            print(f"    alarm {i + 1}: failed (SIPp exit {code}, {len(rung)} of 10 rang)",
                  flush=True)
            continue
        out.append(max(rung) - sent)
    return out


def summary(values) -> str:
    if not values:
        return "none"
    return (f"{len(values)} alarms: median {statistics.median(values) * 1e3:.0f} ms, "
            f"p90 {percentile(values, 90) * 1e3:.0f} ms, max {max(values) * 1e3:.0f} ms")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.broadcast", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--households", type=int, default=2000)
    parser.add_argument("--lines", type=int, default=60)
    parser.add_argument("--alarms", type=int, default=10,
                        help="#9 calls before the campaign, and as many during it")
    parser.add_argument("--ring-ms", type=int, default=500, help="a household answers after")
    parser.add_argument("--key-ms", type=int, default=1000,
                        help="and presses 1 this long after answering")
    parser.add_argument("--quick", action="store_true", help="200 households, 3 alarms each way")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.households, args.alarms = min(args.households, 200), min(args.alarms, 3)
    if not 1 <= args.households <= 9000 or not 0 <= args.alarms <= 500:
        parser.error("1 to 9,000 households (8767NNNN), 0 to 500 alarms each way")
    alarm_lab.ready([20000 + int(p[-4:]) for p in PHONES] + [HOUSEHOLDS_PORT])

    cpu = alarm_lab.CpuWatch()
    load = os.getloadavg()
    workdir = tempfile.mkdtemp(prefix="switchboard-broadcast-")
    server, phones, households = Server(workdir, ALARM), [], None
    try:
        configure(server, args)
        path = os.path.join(workdir, "households.csv")
        write_households(path, args.households, 2 * args.alarms + 1)
        print(server.cli("households", "import", path).strip(), flush=True)
        server.start()
        phones = [alarm_lab.phone(p, workdir) for p in PHONES]
        households = households_process(workdir, args)
        time.sleep(0.5)
        bench = Bench(workdir, server, phones)
        warm = 2 * args.alarms  # the last household warms the path up
        sent, rung, code = one_call(bench, "alarm", landline(warm), 1200)
        if sent is None or len(rung) < len(PHONES):
            raise SystemExit(f"the first alarm failed: SIPp exit {code}, {len(rung)} of 10 "
                             "phones rang (--keep keeps the traces)")

        print(f"\n(b) #9 latency without a campaign: {args.alarms} alarms", flush=True)
        before = alarm_latencies(bench, 0, args.alarms)

        out = server.cli("broadcast", "send", "--text", NOTICE, "--to",
                         f"community:{COMMUNITY}")
        campaign = re.match(r"campaign (\d+)", out).group(1)
        print(f"\n(a) {out.strip()}", flush=True)

        def calling():
            return server.query("SELECT count(*) FROM broadcast_delivery WHERE state = "
                                "'calling'")[0][0]

        def running():
            return server.query("SELECT status FROM broadcast_campaign WHERE id = ?",
                                int(campaign))[0][0] in ("scheduled", "running")

        if not wait_for(lambda: calling() >= args.lines or not running(), 60, 0.2):
            print("    the campaign never held all its lines", flush=True)
        print(f"    {calling()} notice calls up; #9 during the campaign: {args.alarms} alarms",
              flush=True)
        during = alarm_latencies(bench, args.alarms, args.alarms, running)
        started = time.monotonic()
        while running():
            time.sleep(2)
            if time.monotonic() - started > 3600:
                raise SystemExit("the campaign did not end within an hour")
            print("    " + server.cli("broadcast", "status", campaign).splitlines()[0],
                  flush=True)
        report(server, campaign, households, args, before, during)
        return 0
    finally:
        for p in phones:
            p.stop()
        if households is not None:
            households.stop()
        server.stop()
        print(f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
              f"(1, 5, 15 min); at the end: "
              + " ".join(f"{x:.2f}" for x in os.getloadavg()))
        alarm_lab.clean_up(cpu, workdir, args.keep)


def report(server, campaign, households, args, before, during) -> None:
    q = server.query
    started, finished, status = q("SELECT started_at, finished_at, status FROM "
                                  "broadcast_campaign WHERE id = ?", int(campaign))[0]
    took = stored(finished) - stored(started)
    states = dict(q("SELECT state, count(*) FROM broadcast_delivery WHERE campaign_id = ? "
                    "GROUP BY state", int(campaign)))
    outcomes = dict(q("SELECT a.outcome, count(*) FROM broadcast_attempt a JOIN "
                      "broadcast_delivery d ON d.id = a.delivery_id WHERE d.campaign_id = ? "
                      "GROUP BY a.outcome", int(campaign)))
    # A call's length as the household saw it: INVITE received -> BYE received
    # (ringing, the notice until 1, the thanks); calls hung up early to yield
    # their line to a #9 are left out (shorter than the ring and the key).
    shortest = (args.ring_ms + args.key_ms) / 1000
    held = [m["> BYE"] - m["> INVITE"] for m in households.calls().values()
            if "> INVITE" in m and "> BYE" in m and m["> BYE"] - m["> INVITE"] > shortest]
    twice = q("SELECT count(*) FROM (SELECT delivery_id FROM broadcast_attempt WHERE outcome "
              "= 'heard' GROUP BY delivery_id HAVING count(*) > 1)")[0][0]
    length = statistics.median(held) if held else float("nan")
    ideal = args.households * length / args.lines
    print(f"\n(a) completion: {args.households} households, {args.lines} lines, campaign "
          f"{status}")
    print(f"    deliveries: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    print(f"    calls: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
          + f"; households that heard it on two calls: {twice}")
    print(f"    call length (INVITE -> BYE at the household, median): {length:.2f} s "
          f"(p90 {percentile(held, 90):.2f} s)" if held else "    no call heard")
    print(f"    took {took:.1f} s; ideal {args.households} x {length:.2f} s / {args.lines} "
          f"= {ideal:.1f} s; ratio {took / ideal:.2f}")
    print(f"\n(b) #9: INVITE sent -> tenth neighbour's INVITE received")
    print(f"    without a campaign: {summary(before)}")
    print(f"    during the campaign: {summary(during)}")
    if before and during:
        print(f"    ratio during / without: median "
              f"{statistics.median(during) / statistics.median(before):.2f}, p90 "
              f"{percentile(during, 90) / percentile(before, 90):.2f}")
    yielded = outcomes.get("yielded", 0)
    print(f"    notice calls that yielded their line to a #9: {yielded}")


if __name__ == "__main__":
    sys.exit(main())
