"""
C{python -m bench.alarm_floor}: the floor of a #9 fan-out over FastAGI and AMI.

The least any server built this way can take: a FastAGI server that, the
moment Asterisk has sent a session's environment, writes ten Originates it
prepared at start on an AMI session already logged in, then answers the
caller, waits for a key and hangs up. No lookup, no alarm on record, no
journal, no timers, nothing parsed but line ends. L{bench.alarm_fanout}
C{--floor} dials it (C{*98} in the lab: the #9 dialplan with this server as
C{SWITCHBOARD_AGI}) interleaved with the switchboard's C{#9} and Asterisk's
own ring-all, so that what the switchboard costs and what Asterisk costs for
a fan-out by AMI are told apart in one run.

Each leg rings for C{--ring-ms} and is then given up by Asterisk (the
Originate's C{Timeout}), as the bench's callers cancel the real alarms.
Prints C{ready} once both sides are up.
"""

from __future__ import annotations

import argparse
import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver


class FloorAMI(protocol.Protocol):
    """An AMI session that logs in with events off and writes prepared bytes."""

    def __init__(self, username, secret, ready):
        self.username, self.secret, self.ready = username, secret, ready
        self.buffer = b""

    def connectionMade(self):
        self.transport.write(f"Action: Login\r\nUsername: {self.username}\r\n"
                             f"Secret: {self.secret}\r\nEvents: off\r\n\r\n".encode())

    def dataReceived(self, data):
        if self.ready is not None:
            self.buffer += data
            if b"Authentication accepted" in self.buffer:
                ready, self.ready = self.ready, None
                ready(self)
            elif b"Error" in self.buffer:
                print(self.buffer.decode(errors="replace"), file=sys.stderr)
                reactor.stop()


class FloorAGI(LineReceiver):
    """One FastAGI session: the fan-out as soon as the environment is read."""

    delimiter = b"\n"
    STEPS = (b"ANSWER\n", b"WAIT FOR DIGIT 10000\n", b"SET VARIABLE SWITCHBOARD_RESULT OK\n",
             b"HANGUP\n")

    def connectionMade(self):
        self.in_environment, self.step = True, 0

    def lineReceived(self, line):
        if self.in_environment:
            if not line:
                self.in_environment = False
                self.factory.fan_out()
                self.transport.write(self.STEPS[0])
            return
        if line.startswith(b"200") and self.step + 1 < len(self.STEPS):
            self.step += 1
            self.transport.write(self.STEPS[self.step])
        else:  # the last reply, HANGUP from Asterisk, or an error
            self.transport.loseConnection()


class Floor(protocol.ServerFactory):
    protocol = FloorAGI

    def __init__(self, phones, ring_ms):
        self.ami = None
        self.calls = 0
        self.template = "".join(
            f"Action: Originate\r\nActionID: f{{n}}-{i}\r\nChannel: PJSIP/{phone}\r\n"
            f"Application: Wait\r\nData: 5\r\nTimeout: {ring_ms}\r\n"
            f"CallerID: ALARM <{{n}}>\r\nAsync: true\r\n\r\n"
            for i, phone in enumerate(phones))

    def fan_out(self):
        self.calls += 1
        self.ami.transport.write(self.template.format(n=self.calls).encode())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alarm_floor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agi-port", type=int, default=4574)
    parser.add_argument("--ami-port", type=int, default=5038)
    parser.add_argument("--username", default="switchboard")
    parser.add_argument("--secret", default="lab-secret-not-for-production")
    parser.add_argument("--ring-ms", type=int, default=1500)
    parser.add_argument("phones", nargs="+")
    args = parser.parse_args(argv)
    floor = Floor(args.phones, args.ring_ms)

    def logged_in(ami):
        floor.ami = ami
        reactor.listenTCP(args.agi_port, floor, interface="127.0.0.1")
        print("ready", flush=True)

    ami = protocol.ClientFactory()
    ami.protocol = lambda: FloorAMI(args.username, args.secret, logged_in)
    ami.clientConnectionFailed = lambda connector, reason: (print(reason, file=sys.stderr),
                                                            reactor.stop())
    reactor.connectTCP("127.0.0.1", args.ami_port, ami)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
