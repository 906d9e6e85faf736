"""
C{python -m bench.board_watchers [--alarms 200] [--watchers 50] [--rounds 2]}:
the duty board watched by 50 browsers while a burst of 200 #9 alarms
arrives, beside the same burst with nobody watching.

In one process on the real reactor: the alarm coordinator with a call
placer standing in for AMI (each originate recorded with its time), the
alarm's journal and a SQLite database as in production, the board on a
real TCP port. The watchers are another process: N server-sent event
streams on sockets, each counting the timeline entries it receives.

A burst: one #9 every 5 ms (200 a second, as the lab bench's SIPp -r 200),
each household with ten neighbours; 100 ms after its legs ring, a
neighbour answers, 300 ms after, presses 1; once all are in, every alarm is
closed. The figure of a #9 is the time from when it was due to its tenth
leg placed (the reactor's lateness included: a board encoding frames
delays the alarms behind it). Rounds alternate without and with watchers
(same run, same machine: the ratio is the figure). Every watcher must have
every entry the board sent.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time

PERIOD = 0.005


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


# The watchers' process ----------------------------------------------------------------

def watch(port: int, token: str, count: int) -> int:
    """Open C{count} event streams; on SIGTERM print each one's entry count (JSON)."""
    selector = selectors.DefaultSelector()
    streams = []
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"GET /board/api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Cookie: sb_session={token}\r\n\r\n".encode())
        s.setblocking(False)
        state = {"buffer": b"", "entries": 0, "frames": 0}
        streams.append(state)
        selector.register(s, selectors.EVENT_READ, state)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    print("ready", flush=True)
    quiet_since = None
    while True:
        events = selector.select(timeout=0.2)
        if stop:
            # Told to stop: read what is still on its way, until a second of quiet.
            if events:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > 1.0:
                break
        for key, _ in events:
            state = key.data
            data = key.fileobj.recv(1 << 20)
            if not data:
                selector.unregister(key.fileobj)
                continue
            state["buffer"] += data
            while b"\n\n" in state["buffer"]:
                block, state["buffer"] = state["buffer"].split(b"\n\n", 1)
                if b"event: changes" in block:
                    # Entries are the frame's only objects with a "kind" (views have a
                    # "status", legs a "state"): counted without parsing the JSON, so
                    # that the watchers, on the same cores, take little from the server.
                    state["entries"] += block.count(b'"kind":')
                    state["frames"] += 1
    print(json.dumps([s["entries"] for s in streams]), flush=True)
    return 0


# The server's side --------------------------------------------------------------------

def run(args) -> int:
    from twisted.internet import defer, reactor, task
    from twisted.web import server as web_server

    from alarm.config import AlarmConfig, Stage
    from alarm.coordinator import AlarmCoordinator
    from alarm.desk import AlarmDesk
    from alarm.index import HouseholdSnapshot
    from alarm.recorder import AlarmRecorder
    from board.plugin import BoardSettings
    from board.service import BoardService
    from board.staff import Member
    from switchboard.dialing import Dialer
    from switchboard.journal import Journal
    from switchboard.numbers import NumberPlan
    from switchboard.observe.web import root
    from switchboard.ringgroup.testing import FakeCallPlacer
    from switchboard.storage import Database

    work = tempfile.mkdtemp(prefix="board-bench-")
    database = Database(f"sqlite:///{work}/bench.db", reactor=reactor)
    database.migrate()
    recorder = AlarmRecorder(database, Journal(os.path.join(work, "journal"), "alarm"),
                             clock=reactor)
    placer = FakeCallPlacer()
    config = AlarmConfig(stages=(Stage("duty", 600.0, ("+8659187650190",)),),
                         ring_timeout=30.0, retry_unanswered=0, repeat_every=0.0)
    dialer = Dialer(NumberPlan("CN", "591"), {"default": "PJSIP/{number}"})
    coordinator = AlarmCoordinator(dialer, placer, recorder, config, reactor)
    desk = AlarmDesk(coordinator, database)

    class Holder:
        def __init__(self):
            self.desk = desk

    board = BoardService(BoardSettings(), database, [Holder()], "Asia/Shanghai", reactor=reactor)
    board.start()
    sent = []
    real_flush = board.flush

    spent = []   # seconds of the reactor in each flush (views built, encoded, written)

    def counting_flush():
        before = len(board._entries)
        begun = time.perf_counter()
        real_flush()
        spent.append(time.perf_counter() - begun)
        sent.append(before)

    board.flush = counting_flush
    port = reactor.listenTCP(0, web_server.Site(root(None, None, pages=board.pages)),
                             interface="127.0.0.1")
    token = board.sessions.start(Member(1, "bench", "viewer")).token
    placed: dict = {}   # alarm id -> perf_counter of each leg placed
    placer.on_originate = lambda call: placed.setdefault(
        call.variables["SWITCHBOARD_ALARM"], []).append(time.perf_counter())
    results = {"without": [], "with": []}
    delivery = []
    household_base = [0]

    @defer.inlineCallbacks
    def burst(mode):
        watchers = None
        if mode == "with":
            watchers = subprocess.Popen(
                [sys.executable, "-m", "bench.board_watchers", "--watch", str(port.getHost().port),
                 token, str(args.watchers)], stdout=subprocess.PIPE, text=True)
            yield task.deferLater(reactor, 0, lambda: None)
            while len(board.watchers) < args.watchers:
                yield task.deferLater(reactor, 0.05, lambda: None)
        sent.clear()
        spent.clear()
        due: dict = {}
        started = time.perf_counter()
        alarms = []

        def raise_one(i, at):
            hid = household_base[0] + i + 1
            own = f"+86591877{hid:05d}"
            ring = tuple(f"+86591876{50002 + n:05d}" for n in range(10))
            snapshot = HouseholdSnapshot(hid, 1, "Bench Garden", str(hid // 100), "1",
                                         str(hid % 100), "", (own,), ring)
            d = coordinator.raise_alarm(own, snapshot)

            def opened(alarm):
                due[str(alarm.id)] = at
                alarms.append(alarm)
                leg = next(iter(alarm.legs.values()))
                reactor.callLater(0.1, coordinator.answered, alarm.id, leg.id)
                reactor.callLater(0.3, coordinator.confirm, alarm.id, leg.id)
            d.addCallback(opened)

        for i in range(args.alarms):
            reactor.callLater(i * PERIOD, raise_one, i, started + i * PERIOD)
        household_base[0] += args.alarms
        yield task.deferLater(reactor, args.alarms * PERIOD + 0.6, lambda: None)
        for alarm_id, at in due.items():
            legs = placed.get(alarm_id, [])
            if len(legs) >= 10:
                results[mode].append(sorted(legs)[9] - at)
        for alarm in alarms:
            coordinator.close(alarm.id, "bench")
        yield task.deferLater(reactor, 0.5, lambda: None)
        yield recorder.flush()
        if watchers is not None:
            watchers.send_signal(signal.SIGTERM)
            # The round is measured: waiting for the process here costs nothing.
            text = watchers.communicate(timeout=30)[0].split("\n")
            counts = json.loads(next(line for line in text if line.startswith("[")))
            delivery.append((sum(sent), counts, sum(spent), len(spent)))
            while len(board.watchers):
                yield task.deferLater(reactor, 0.05, lambda: None)

    @defer.inlineCallbacks
    def main():
        try:
            yield recorder.start()
            for _ in range(args.rounds):
                for mode in ("without", "with"):
                    yield burst(mode)
        finally:
            board.stop()
            port.stopListening()
            reactor.stop()

    reactor.callWhenRunning(main)
    reactor.run()
    print(f"{args.alarms} alarms at {1 / PERIOD:.0f}/s, {args.rounds} round(s) each; "
          f"#9 due -> tenth leg placed:")
    print(f"{'':<22}{'median':>9}{'p95':>9}{'max':>9}")
    for mode in ("without", "with"):
        values = [v * 1000 for v in results[mode]]
        label = "nobody watching" if mode == "without" else f"{args.watchers} boards watching"
        print(f"{label:<22}{percentile(values, 50):>8.2f} {percentile(values, 95):>8.2f} "
              f"{max(values):>8.2f}  ms ({len(values)} alarms)")
    ratio = percentile([v for v in results["with"]], 95) / \
        percentile([v for v in results["without"]], 95)
    print(f"p95 ratio (watching / not): {ratio:.2f}")
    ok = True
    for total, counts, seconds, flushes in delivery:
        missing = [c for c in counts if c != total]
        print(f"entries sent {total} in {flushes} frames, {seconds * 1000:.1f} ms of the reactor "
              f"({seconds / max(1, flushes) * 1000:.2f} ms a frame to {len(counts)} boards); "
              f"watchers that got every entry: {len(counts) - len(missing)}/{len(counts)}")
        ok = ok and not missing
    return 0 if ok else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.board_watchers")
    parser.add_argument("--alarms", type=int, default=200)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--watch", nargs=3, metavar=("PORT", "TOKEN", "N"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.watch:
        return watch(int(args.watch[0]), args.watch[1], int(args.watch[2]))
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
