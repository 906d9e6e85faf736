"""
C{python -m bench.alarm_probe OUT -- ARGS...}: C{switchboard ARGS} (the
server the #9 fan-out bench runs), with probes that note, on the host's
clock (the one SIPp's traces use), where a #9's time goes inside the
server; written to C{OUT} (JSON) when the server stops.

  - each FastAGI connection: accepted, environment complete (its caller ID);
  - each alarm: raise asked, on record (its id known, its legs originated);
  - each AMI read: when, how many bytes, how long the reactor spent on it;
  - each durable journal append: how long its fsync took;
  - the reactor's lag: a timer due every 5 ms, how late it ran;
  - the reactor's busy time: wall time not spent waiting in epoll;
  - each socket write carrying Originate actions: when the bytes left
    (Twisted writes in the reactor's next turn, not in C{transport.write}).

Bench code only: the probes wrap methods from outside, the server's code
is what runs.
"""

from __future__ import annotations

import cProfile
import json
import os
import sys
import time


def install(out_path):
    """Wrap the server's methods; return the dict the notes go into."""
    from twisted.internet import reactor, task

    from alarm.coordinator import AlarmCoordinator
    from switchboard.agi.protocol import FastAGIProtocol
    from switchboard.ami.protocol import AMIProtocol
    from switchboard.journal import Journal

    notes = {"connect": [], "env": [], "raise": [], "opened": [], "ami": [], "fsync": [],
             "lag": [], "busy": [], "originate_sent": []}
    now = time.time

    made = FastAGIProtocol.connectionMade

    def connectionMade(self):
        self._probe_made = now()
        return made(self)

    start_session = FastAGIProtocol._startSession

    def _startSession(self):
        t = now()
        notes["connect"].append(getattr(self, "_probe_made", t))
        notes["env"].append([self._env.get("callerid", ""), getattr(self, "_probe_made", t), t])
        return start_session(self)

    raise_alarm = AlarmCoordinator.raise_alarm

    def raise_alarm_probed(self, caller_raw, household):
        notes["raise"].append([str(caller_raw or ""), now()])
        return raise_alarm(self, caller_raw, household)

    opened = AlarmCoordinator._opened
    # BENCH_OPENED_PROFILE=FILE: cProfile of every _opened call (its own
    # overhead inflates the times noted above: a separate run).
    profiled = os.environ.get("BENCH_OPENED_PROFILE")
    profile = cProfile.Profile() if profiled else None

    def opened_probed(self, alarm_id, alarm):
        t = now()
        if profile is not None:
            profile.enable()
        try:
            result = opened(self, alarm_id, alarm)
        finally:
            if profile is not None:
                profile.disable()
        notes["opened"].append([alarm.caller_raw, t, now()])
        return result

    received = AMIProtocol.dataReceived

    def dataReceived(self, data):
        t = now()
        try:
            return received(self, data)
        finally:
            notes["ami"].append([t, len(data), now() - t])

    append = Journal.append

    def append_probed(self, record, durable=False):
        t = now()
        try:
            return append(self, record, durable)
        finally:
            if durable:
                notes["fsync"].append([t, now() - t])

    from twisted.internet import tcp

    write_some = tcp.Connection.writeSomeData

    def writeSomeData(self, data):
        t = now()
        result = write_some(self, data)
        originates = bytes(data).count(b"Action: Originate\r\n")
        if originates:
            notes["originate_sent"].append([t, originates])
        return result

    tcp.Connection.writeSomeData = writeSomeData
    FastAGIProtocol.connectionMade = connectionMade
    FastAGIProtocol._startSession = _startSession
    AlarmCoordinator.raise_alarm = raise_alarm_probed
    AlarmCoordinator._opened = opened_probed
    AMIProtocol.dataReceived = dataReceived
    Journal.append = append_probed

    every = 0.005
    due = [None]

    def tick():
        t = now()
        if due[0] is not None:
            notes["lag"].append([t, max(0.0, t - due[0])])
        due[0] = t + every

    reactor.callWhenRunning(lambda: task.LoopingCall(tick).start(every))

    # Busy: the time between two waits in epoll (the reactor's work).
    poll = reactor._poller.poll
    last = [None]

    def poll_probed(timeout=-1, maxevents=-1):
        t = now()
        if last[0] is not None:
            notes["busy"].append([last[0], t - last[0]])
        try:
            return poll(timeout, maxevents)
        finally:
            last[0] = now()

    reactor._poller = _Poller(reactor._poller, poll_probed)

    def dump():
        with open(out_path, "w") as f:
            json.dump(notes, f)
        if profile is not None:
            profile.dump_stats(profiled)

    reactor.addSystemEventTrigger("after", "shutdown", dump)
    return notes


class _Poller:
    """epoll with its C{poll} wrapped (the C object's attributes cannot be set)."""

    def __init__(self, poller, poll):
        self._poller = poller
        self.poll = poll

    def __getattr__(self, name):
        return getattr(self._poller, name)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out, rest = argv[0], argv[argv.index("--") + 1:]
    from twisted.internet import epollreactor
    epollreactor.install()
    install(out)
    from switchboard.cli import main as switchboard
    return switchboard(rest)


if __name__ == "__main__":
    sys.exit(main())
