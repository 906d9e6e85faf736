"""
C{python -m bench.originate_floor [--legs 2000] [--rounds 2]}: what the lab
Asterisk itself takes to ring a burst's legs one AMI C{Originate} each,
beside the same legs rung ten at a time by C{Dial} (issue 15).

No switchboard and no callers: the ten SIPp phones of L{bench.alarm_fanout}
ring; one AMI session writes every action at once, in turns:

  - C{originate}: C{--legs} asynchronous Originates, each of one phone
    (C{PJSIP/8765NNNN}), as the server places an alarm's legs;
  - C{dial}: C{--legs}/10 asynchronous Originates of
    C{Local/native@switchboard-bench}, each a C{Dial} of all ten phones
    (the lab's C{*99}, the fan-out bench's native baseline);
  - C{refused} (once): C{--legs} Originates of an endpoint that does not
    exist: the action and its threads without a call.

Each figure: the time from the actions' bytes leaving until the last
phone's INVITE arrived (SIPp's traces), and the CPU seconds the lab
Asterisk and the whole machine spent meanwhile. Every leg rings 8 s, then
Asterisk gives up on it; the next turn waits until all are gone.

Run it in the lab's network namespace, with no switchboard on AMI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import time

from bench import alarm_lab
from bench.alarm_fanout import PHONES

LOGIN = ("Action: Login\r\nUsername: switchboard\r\n"
         "Secret: lab-secret-not-for-production\r\nEvents: off\r\n\r\n")
RING_MS = 8000


def actions(kind: str, legs: int) -> bytes:
    """The burst's AMI actions, one string."""
    where = "Context: switchboard-lab-test\r\nExten: wait\r\nPriority: 1\r\n"
    if kind == "dial":
        channels = ["Local/native@switchboard-bench/n"] * (legs // len(PHONES))
    elif kind == "refused":
        channels = ["PJSIP/no-such-endpoint"] * legs
    else:
        channels = [f"PJSIP/{PHONES[i % len(PHONES)]}" for i in range(legs)]
    return "".join(f"Action: Originate\r\nActionID: {i}\r\nChannel: {c}\r\n{where}"
                   f"Timeout: {RING_MS}\r\nAsync: true\r\n\r\n"
                   for i, c in enumerate(channels)).encode()


def one_turn(phones, kind: str, legs: int) -> dict:
    before = {p.name: set(p.calls()) for p in phones}
    expected = 0 if kind == "refused" else legs
    with socket.create_connection(("127.0.0.1", 5038), timeout=5) as ami:
        ami.sendall(LOGIN.encode())
        time.sleep(0.3)
        ami.recv(65536)
        spent = alarm_lab.CpuSpent(os.getpid())
        started = time.time()
        ami.sendall(actions(kind, legs))
        rang = 0
        limit = 3.0 if kind == "refused" else 60.0
        while time.time() - started < limit and (not expected or rang < expected):
            time.sleep(0.05)
            rang = sum(len(set(p.calls()) - before[p.name]) for p in phones)
        took = time.time() - started
        cpu = spent.stop()
        pid = alarm_lab.lab_pid()
        threads = len(os.listdir(f"/proc/{pid}/task")) if pid else 0
    # Every leg given up on (RING_MS) and its threads gone before the next turn.
    time.sleep(RING_MS / 1000 + 4)
    return {"kind": kind, "rang": rang, "expected": expected, "took": took,
            "asterisk": cpu["asterisk"], "machine": cpu["machine"], "threads": threads}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.originate_floor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--legs", type=int, default=2000, help="legs a turn (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="originate and dial turns each (default %(default)s)")
    args = parser.parse_args(argv)
    if args.legs < len(PHONES) or args.legs % len(PHONES):
        parser.error(f"--legs: a multiple of {len(PHONES)}")
    alarm_lab.ready([20000 + int(p[-4:]) for p in PHONES])
    cpu = alarm_lab.CpuWatch()
    workdir = tempfile.mkdtemp(prefix="switchboard-originates-")
    phones = [alarm_lab.phone(p, workdir) for p in PHONES]
    try:
        time.sleep(0.5)
        turns = [one_turn(phones, "refused", args.legs)]
        for _ in range(args.rounds):
            for kind in ("originate", "dial"):
                turns.append(one_turn(phones, kind, args.legs))
        print(f"\n{args.legs} legs rung at once by the lab Asterisk, no switchboard: from the "
              f"actions written to the last phone's INVITE")
        print(f"    {'':<34}{'rang':>11}{'s':>8}{'Asterisk CPU s':>16}{'machine CPU s':>15}"
              f"{'threads':>9}")
        names = {"originate": "one Originate a leg", "dial": "Dial of ten a call (Local)",
                 "refused": "Originate refused (no call)"}
        for t in turns:
            print(f"    {names[t['kind']]:<34}{t['rang']:>5}/{t['expected']:<5}{t['took']:>8.2f}"
                  f"{t['asterisk']:>16.2f}{t['machine']:>15.2f}{t['threads']:>9}")
        for a, b in zip(turns[1::2], turns[2::2]):
            print(f"    originate / dial: time {a['took'] / b['took']:.2f}, Asterisk CPU "
                  f"{a['asterisk'] / max(b['asterisk'], 1e-9):.2f}")
        return 0
    finally:
        for p in phones:
            p.stop()
        print(cpu.others())
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
