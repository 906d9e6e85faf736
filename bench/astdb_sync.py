"""
C{python -m bench.astdb_sync [--households 20000] [--changed 0.01]}: how
long the AstDB read-back and compare takes against the lab Asterisk.

A SQLite registry of N households (L{bench.alarm_lookup.build}: one landline
each, ten neighbours each) is loaded into the caller index as the server
loads it. The lab Asterisk is stopped and its AstDB file given what an older
server and an older registry left: the old flat family C{swb_alarm}, one key
per caller-ID form (six a landline), every key of this registry except that
a share C{--changed} of the households rings other neighbours, as many
again have no key, and as many keys belong to nobody; plus the C{stamp} key
of the old versions. Asterisk is started again.

Before: that family read back in one C{DBGetTree}, as older servers did
after every connect (skipped with C{--no-before}: at 200,000 households it
holds the AstDB lock for minutes). Then L{AstDBSync.resync} runs over the
real AMI link, as after a connect: first it moves the neighbours to
C{swb_ring} (one key a landline) and deletes the old family, then it finds
AstDB in step, reading it back in 100 buckets.

Measured for each: the whole time, the read-back alone and its longest
bucket, the longest the reactor did not run a 10 ms timer, the process's
peak memory, how long a dialplan-side AstDB read (C{asterisk -rx "database
get"}, run over and over meanwhile) took at most: Asterisk holds its AstDB
lock while it streams a tree; and how long an action on the alarm's own AMI
link (a C{Ping}, sent every 50 ms, as an Originate would be) waited at most.
The server keeps AstDB on a session of its own (C{Core.bulk_ami}); the last
run puts the read-back on the alarm's link, for the ratio.

Run it as root in the lab's network namespace, with
C{SWITCHBOARD_LAB_ROOT} set like the lab tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

from bench import alarm_lookup

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(PROJECT, "lab", "asterisk-lab")
ROOT = os.environ.get("SWITCHBOARD_LAB_ROOT", "/var/lib/switchboard/asterisk-root")
ASTDB = os.path.join(ROOT, "var", "lib", "asterisk", "astdb.sqlite3")
OLD_FAMILY = "swb_alarm"


def lab(*args) -> str:
    return subprocess.run([LAB, *args], check=True, capture_output=True, text=True,
                          timeout=300).stdout


def old_family(sync, index, share: float) -> dict:
    """What an older registry left in AstDB: this one's keys, a share of them wrong."""
    households = sorted(index, key=lambda s: s.id)
    every = max(1, round(1 / share)) if share else 0
    held = {"duty": sync.duty(), "stamp": f"v{index.version} 8b6ad77d"}
    for n, snapshot in enumerate(households):
        value = dict(sync.entries(snapshot))
        pairs = [(form, v) for v in value.values() for form in sync.old_keys(snapshot)]
        if every and n % every == 1:
            continue                                   # added since: no key
        if every and n % every == 0:
            other = households[(n + 5000) % len(households)]
            value = sync.dialer.ring_all(other.neighbours)
            pairs = [(k, value) for k, _ in pairs]     # rings other people
        held.update(pairs)
        if every and n % every == 2:
            held[f"2999{n:07d}"] = pairs[0][1]         # a household gone since
    return held


def write_astdb(held: dict) -> None:
    """Give Asterisk's AstDB file the old family only (Asterisk stopped)."""
    from alarm.astdb import FAMILY
    with sqlite3.connect(ASTDB) as db:
        for family in (FAMILY, OLD_FAMILY):
            db.execute("DELETE FROM astdb WHERE key LIKE ?", (f"/{family}/%",))
        db.executemany("INSERT INTO astdb (key, value) VALUES (?, ?)",
                       ((f"/{OLD_FAMILY}/{k}", v) for k, v in held.items()))


class DialplanProbe:
    """Reads one AstDB key through the Asterisk CLI over and over, on a thread."""

    def __init__(self):
        self.times: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            started = time.monotonic()
            subprocess.run([LAB, "cli", "database get swb_ring duty"], capture_output=True,
                           timeout=120)
            self.times.append(time.monotonic() - started)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()


class LinkProbe:
    """Pings C{ami} every 50 ms (one at a time): the longest an action waited."""

    def __init__(self, reactor, ami):
        from twisted.internet import task
        self.ami = ami
        self.longest = 0.0
        self.answered = 0
        self._sent = None
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = reactor

    def _tick(self):
        if self._sent is not None:
            self.longest = max(self.longest, time.monotonic() - self._sent)
            return
        self._sent = time.monotonic()
        self.ami.send_action("Ping", timeout=120).addBoth(self._answered)

    def _answered(self, _):
        self.longest = max(self.longest, time.monotonic() - self._sent)
        self.answered += 1
        self._sent = None

    def start(self):
        self._loop.start(0.05)

    def stop(self):
        self._loop.stop()


def measure(reactor, sync, label, alarm_link=None):
    """One resync, timed, with the reactor's lateness, the dialplan and link probes."""
    from twisted.internet import task
    from twisted.logger import Logger, formatEvent

    started = time.monotonic()
    late = [0.0]
    last = [started]
    stalls = []

    def tick():
        now = time.monotonic()
        late[0] = max(late[0], now - last[0] - 0.01)
        if now - last[0] > 0.03:
            stalls.append((round(last[0] - started, 2), round((now - last[0]) * 1000)))
        last[0] = now

    loop = task.LoopingCall(tick)
    loop.clock = reactor
    loop.start(0.01)
    logged = []
    sync.log = Logger(observer=logged.append)
    probe = DialplanProbe().__enter__()
    link = LinkProbe(reactor, alarm_link) if alarm_link is not None else None
    if link is not None:
        link.start()

    def done(sent):
        loop.stop()
        probe.__exit__()
        waited = ""
        if link is not None:
            link.stop()
            waited = (f"; an action on the alarm's link waited at most "
                      f"{link.longest * 1000:.0f} ms ({link.answered} pings)")
        text = formatEvent(logged[-1]) if logged else "(nothing logged)"
        rss = alarm_lookup.rss()
        print(f"{label}: {time.monotonic() - started:.1f} s, {sent} written; reactor late "
              f"at most {late[0] * 1000:.0f} ms; {reads(probe.times)}{waited}; RSS {rss['VmRSS']:.0f} MiB, peak {rss['VmHWM']:.0f} MiB\n  {text}", flush=True)
        if os.environ.get("BENCH_STALLS"):
            print("  stalls over 30 ms (s after start, ms):", stalls)
        return sent

    return sync.resync().addCallback(done)


def reads(times) -> str:
    """The dialplan probe's figures: at most, the median, how many."""
    ordered = sorted(times) or [0]
    return (f"dialplan AstDB read at most {ordered[-1] * 1000:.0f} ms, median "
            f"{ordered[len(ordered) // 2] * 1000:.0f} ms ({len(times)} reads)")


def measure_idle(seconds=3.0):
    """The dialplan probe with nothing else going on: what one CLI read costs anyway."""
    with DialplanProbe() as probe:
        time.sleep(seconds)
    print(f"idle: {reads(probe.times)}", flush=True)


def measure_before(ami):
    """The old family read back in one DBGetTree, as older servers did: timed, probed."""
    started = time.monotonic()
    probe = DialplanProbe().__enter__()

    def done(result):
        probe.__exit__()
        what = f"{result} keys" if isinstance(result, int) else f"failed: {result.value!r}"
        print(f"before: {OLD_FAMILY} read back in one DBGetTree: {what} in "
              f"{time.monotonic() - started:.1f} s; {reads(probe.times)}", flush=True)

    return ami.db_tree(OLD_FAMILY, lambda k, v: None, timeout=120).addBoth(done)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--households", type=int, default=20000)
    parser.add_argument("--changed", type=float, default=0.01,
                        help="share of households changed, added and removed since")
    parser.add_argument("--no-before", dest="before", action="store_false",
                        help="do not read the old family back in one DBGetTree first")
    args = parser.parse_args(argv)
    if not os.path.exists(ASTDB):
        raise SystemExit(f"no lab AstDB at {ASTDB}: set SWITCHBOARD_LAB_ROOT, start the lab")
    workdir = tempfile.mkdtemp(prefix="astdb-sync-")
    try:
        url = f"sqlite:///{workdir}/registry.db"
        print(f"registry of {args.households} households written in "
              f"{alarm_lookup.build(url, args.households):.1f} s", flush=True)
        return _run(url, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(url, args) -> int:
    from twisted.internet import defer, task, threads

    from alarm import config as alarm_config
    from alarm.astdb import AstDBSync
    from alarm.index import CallerIndex
    from switchboard.ami import AMIClient
    from switchboard.dialing import Dialer
    from switchboard.numbers import NumberPlan
    from switchboard.service import AMI_EVENTS, ami_event_names, settle_memory
    from switchboard.storage import Database
    from tests.conftest import LabAsterisk

    plan = NumberPlan("CN", "591")
    trunks = {"default": "PJSIP/{number}"}
    dialer = Dialer(plan, trunks)
    config = alarm_config.load(os.path.join(PROJECT, "config", "alarm.yaml"), plan, trunks)

    @defer.inlineCallbacks
    def run(reactor):
        database = Database(url, reactor=reactor)
        index = CallerIndex(database, plan, max_neighbours=10)
        yield index.load()
        settle_memory()  # as the server does once started
        lab_ami = LabAsterisk()
        ami = AMIClient(*lab_ami.ami, lab_ami.ami_user, lab_ami.ami_secret, reactor=reactor,
                        events=AMI_EVENTS, only_events=ami_event_names())
        bulk = AMIClient(*lab_ami.ami, lab_ami.ami_user, lab_ami.ami_secret, reactor=reactor,
                         events="off")
        sync = AstDBSync(bulk, index, dialer, config, clock=reactor)
        shared = AstDBSync(ami, index, dialer, config, clock=reactor)
        held = old_family(sync, index, args.changed)
        lab("stop")
        write_astdb(held)
        lab("start")
        print(f"AstDB given {len(held)} keys of an older registry in {OLD_FAMILY}", flush=True)
        drops = []
        ami.on_disconnect(lambda *_: drops.append(time.monotonic()))
        ami.start()
        bulk.start()
        yield ami.when_connected()
        yield bulk.when_connected()
        yield threads.deferToThread(measure_idle)
        if args.before:
            yield measure_before(bulk)
            if not bulk.connected:
                yield bulk.when_connected()
        yield measure(reactor, sync, "after connect, older registry in AstDB", ami)
        yield measure(reactor, sync, "again, AstDB in step", ami)
        yield measure(reactor, shared, "again, read back on the alarm's own link", ami)
        print(f"AMI link dropped {len(drops)} time(s) meanwhile", flush=True)
        yield bulk.stop()
        yield ami.stop()
        database.close()

    task.react(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
