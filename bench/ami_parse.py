"""
C{python -m bench.ami_parse [--events N] [--chunk BYTES] [--baseline CHECKOUT]}:
AMI event parsing, in-process, switchboard against panoramisk on the same
bytes.

The stream is N typical events of a busy Asterisk 22 (Newchannel, VarSet,
Hangup in turn, 17 to 19 headers each, a Chinese caller name among them),
fed in chunks of C{--chunk} bytes, so multi-byte characters and blocks are
split across reads. Each parser hands its events to a subscriber:

  - (s) switchboard's C{AMIProtocol}, a subscriber for every event;
  - (s3) the same, subscribed to Newchannel and Hangup only (as the alarm
    is): events nobody asked for are dropped before they are built;
  - (p) panoramisk 1.4's C{AMIProtocol.data_received} (if installed);
  - (s0) with C{--baseline CHECKOUT}: the C{AMIProtocol} of another
    checkout of switchboard (the one before a change), every event, in a
    child process that takes its turn in each round like the others.

Before timing, each parser's events are checked against the stream: every
header kept, in order, repeats and empty values included, and the Chinese
name intact (panoramisk drops an empty last header and may lose bytes of a
split character: it is reported, not failed). The figure is the best of
five rounds, the parsers taking turns round by round, in events per second.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time

from switchboard.ami.protocol import AMIProtocol

NAME = "陈梅"


def events(n):
    """N (name, [(header, value)...]) typical events."""
    out = []
    for i in range(n):
        uid = f"1796240000.{i}"
        common = [
            ("Privilege", "call,all"), ("Channel", f"PJSIP/87650{i % 200:03d}-{i:08x}"),
            ("ChannelState", "4"), ("ChannelStateDesc", "Ring"),
            ("CallerIDNum", "87650001"), ("CallerIDName", NAME),
            ("ConnectedLineNum", "<unknown>"), ("ConnectedLineName", "<unknown>"),
            ("Language", "en"), ("AccountCode", ""), ("Context", "switchboard-alarm"),
            ("Exten", "#9"), ("Priority", "1"), ("Uniqueid", uid), ("Linkedid", uid),
        ]
        kind = i % 3
        if kind == 0:
            out.append(("Newchannel", [("Event", "Newchannel")] + common))
        elif kind == 1:
            out.append(("VarSet", [("Event", "VarSet")] + common
                        + [("Variable", "SWITCHBOARD_RESULT"), ("Value", "")]))
        else:
            out.append(("Hangup", [("Event", "Hangup")] + common
                        + [("Cause", "16"), ("Cause-txt", "Normal Clearing")]))
    return out


def stream(evs):
    parts = [b"Asterisk Call Manager/11.0.0\r\n"]
    for _, headers in evs:
        parts.append("".join(f"{k}: {v}\r\n" for k, v in headers).encode() + b"\r\n")
    return b"".join(parts)


def chunks(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


class _Collect:
    """
    A factory for switchboard's protocol: keeps the events it hears (to
    check them), or, while timed, reads one header of each and lets it go,
    as a subscriber does.
    """

    def __init__(self, names=None, keep=True):
        self.seen = []
        self.names = names
        self.keep = keep
        self.count = 0

    def bannerReceived(self, protocol, version):
        pass

    def eventReceived(self, protocol, event):
        if self.keep:
            self.seen.append(event)
        else:
            self.count += event["Uniqueid"] is not None

    def protocolLost(self, protocol, reason):
        pass

    def wants(self, name):
        return self.names is None or name.lower() in self.names


def switchboard_run(data_chunks, names=None, keep=True):
    from twisted.internet.task import Clock
    factory = _Collect(names, keep)
    protocol = AMIProtocol(clock=Clock())
    protocol.factory = factory
    if names is not None:
        protocol.event_filter = factory.wants
    for chunk in data_chunks:
        protocol.dataReceived(chunk)
    return [(e.event, e.items()) for e in factory.seen]


def panoramisk_run(data_chunks, keep=True):
    from panoramisk.ami_protocol import AMIProtocol as PanoramiskProtocol

    class Factory:
        seen = []
        count = 0

        def dispatch(self, message):
            if keep:
                self.seen.append(message)
            else:
                self.count += message["Uniqueid"] is not None

    protocol = PanoramiskProtocol()
    protocol.connection_made(None)
    protocol.factory = Factory()
    protocol.encoding = "utf-8"
    for chunk in data_chunks:
        protocol.data_received(chunk)
    return [(m.get("Event"), [(k, v) for k, v in m.items() if k != "content"])
            for m in protocol.factory.seen]


def best_rates(runs, data_chunks, n, rounds=5):
    """
    The best of C{rounds} rounds of each run, in events per second; the
    runs take turns round by round, so that the machine's other work
    weighs on each alike. A run that returns a number has timed itself
    (in seconds: a child process's round).
    """
    best = {label: 0.0 for label in runs}
    for _ in range(rounds):
        for label, run in runs.items():
            gc.collect()
            started = time.perf_counter()
            seconds = run(data_chunks)
            if not isinstance(seconds, float):
                seconds = time.perf_counter() - started
            best[label] = max(best[label], n / seconds)
    return best


class Baseline:
    """
    The parser of another checkout, in a child process: it builds the same
    stream, checks that its parser reads every event exactly, then times
    one round each time it is asked.
    """

    def __init__(self, checkout, events, chunk):
        here = os.path.abspath(__file__)
        code = ("import importlib.util, sys; sys.path.insert(0, sys.argv[1]); "
                "spec = importlib.util.spec_from_file_location('ami_parse_bench', sys.argv[2]); "
                "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
                "module.child(int(sys.argv[3]), int(sys.argv[4]))")
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, os.path.abspath(checkout), here, str(events),
             str(chunk)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=os.path.abspath(checkout))
        ready = self.process.stdout.readline().strip()
        if not ready.startswith("ready "):
            raise RuntimeError(f"the baseline's parser did not start: {ready!r}")
        self.where = ready[len("ready "):]

    def __call__(self, data_chunks):
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self):
        self.process.stdin.close()
        self.process.wait(10)


def child(n, chunk):
    """The baseline's side (see L{Baseline}): a round per line on stdin."""
    import switchboard

    evs = events(n)
    data_chunks = chunks(stream(evs), chunk)
    got = switchboard_run(data_chunks)
    assert got == [(name, headers) for name, headers in evs], "the baseline lost data"
    print("ready", os.path.dirname(os.path.dirname(switchboard.__file__)), flush=True)
    for _ in sys.stdin:
        gc.collect()
        started = time.perf_counter()
        switchboard_run(data_chunks, keep=False)
        print(time.perf_counter() - started, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=8192)
    parser.add_argument("--baseline", metavar="CHECKOUT",
                        help="also time the parser of this checkout of switchboard")
    args = parser.parse_args(argv)
    evs = events(args.events)
    data_chunks = chunks(stream(evs), args.chunk)
    wanted = {"newchannel", "hangup"}

    got = switchboard_run(data_chunks)
    assert got == [(name, headers) for name, headers in evs], "switchboard lost or changed data"
    got = switchboard_run(data_chunks, wanted)
    assert got == [(n, h) for n, h in evs if n.lower() in wanted], "filtering changed data"
    runs = {"(s) switchboard, every event": lambda c: switchboard_run(c, keep=False),
            "(s3) switchboard, Newchannel and Hangup asked for":
                lambda c: switchboard_run(c, wanted, keep=False)}
    try:
        pano = panoramisk_run(data_chunks)
    except ImportError:
        pano = None
    if pano is not None:
        kept = sum(1 for (name, headers), (_, mine) in zip(pano, evs)
                   if {k.lower(): v for k, v in headers} == {k.lower(): v for k, v in mine})
        runs["(p) panoramisk 1.4"] = lambda c: panoramisk_run(c, keep=False)
        print(f"panoramisk: {len(pano)} events, {kept} with every header intact")
    baseline_label = "(s0) switchboard of the baseline, every event"
    baseline = Baseline(args.baseline, args.events, args.chunk) if args.baseline else None
    if baseline is not None:
        runs[baseline_label] = baseline
        print(f"baseline: switchboard from {baseline.where}")
    try:
        rates = best_rates(runs, data_chunks, args.events)
    finally:
        if baseline is not None:
            baseline.close()
    print(f"{args.events} events, {sum(map(len, data_chunks))} bytes in {args.chunk}-byte reads")
    for label, rate in rates.items():
        print(f"  {label:52} {rate:10,.0f} events/s")
    if pano is not None:
        p = rates["(p) panoramisk 1.4"]
        print(f"  s/p = {rates['(s) switchboard, every event'] / p:.2f}, "
              f"s3/p = {rates['(s3) switchboard, Newchannel and Hangup asked for'] / p:.2f}")
    if baseline is not None:
        print(f"  s/s0 = {rates['(s) switchboard, every event'] / rates[baseline_label]:.2f}")
    return rates


if __name__ == "__main__":
    main()
