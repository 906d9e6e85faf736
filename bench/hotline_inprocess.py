"""
C{python -m bench.hotline_inprocess [--sessions 2000] [--rounds 5] [--calls]
[--standin | --raw | --panoramisk]}: the hotline's CPU per call without the
machine's noise in the way (with C{--standin}, server (a0)'s: the FastAGI
layer with the stand-in handler, L{bench.agi_servers.standin_handler}; with
C{--raw}, server (b)'s raw C{LineReceiver}; with C{--panoramisk}, server
(p)'s panoramisk application, its asyncio loop turned by hand: each ready
callback run, no socket).

Server (a) of C{python -m bench} (L{bench.agi_servers.wire_hotline}: the
sample routing, the call log in SQLite) is driven in this process, on a
C{StringTransport}, with L{bench.agi_load}'s exchange (the environment of a
hotline call, Asterisk's replies to a resident who presses 1). Every caller
is seen once first, as in the bench's rounds; then the CPU time of
C{--sessions} sessions, best of C{--rounds}. C{--calls} also counts Python
function calls per session (cProfile): a figure that does not depend on the
load at all, for comparing two checkouts run in turns. To measure another
checkout with this file, run it from there (its code is what is imported):
C{cd OTHER && python /path/to/bench/hotline_inprocess.py}.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())  # the checkout run from is the one measured


def driver(standin=False):
    """
    C{one(n)}: serve hotline call C{n} in-process (through the stand-in
    handler if C{standin}); returns the commands exchanged.
    """
    from bench.agi_servers import standin_handler, wire_hotline
    from switchboard.agi import FastAGIFactory

    handler = standin_handler if standin else wire_hotline()[0]
    return twisted_driver(FastAGIFactory({"hotline": handler}))


def raw_driver():
    """C{one(n)} for server (b), the raw responder."""
    from twisted.internet.protocol import ServerFactory

    from bench.agi_servers import raw_protocol

    return twisted_driver(ServerFactory.forProtocol(raw_protocol()))


def twisted_driver(factory):
    """C{one(n)}: call C{n} served by C{factory}'s protocol on a C{StringTransport}."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    from bench import agi_load

    peer = IPv4Address("TCP", "127.0.0.1", 40000)

    def one(n):
        protocol = factory.buildProtocol(peer)
        transport = StringTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        asterisk = agi_load.AsteriskCall(None, 0)
        protocol.dataReceived(agi_load.environment(n, 4573))
        commands = 0
        for _ in range(40):
            sent = transport.value()
            transport.clear()
            if not sent:
                break
            commands += sent.count(b"\n")
            protocol.dataReceived(asterisk.received(sent))
        protocol.connectionLost(None)
        return commands

    return one


def panoramisk_driver():
    """
    C{one(n)} for server (p): panoramisk's application on an asyncio
    stream whose transport keeps what is written; the loop's ready
    callbacks run after each read, as its own turns would run them (the
    selector is polled, with no wait, once a turn).
    """
    import asyncio
    from asyncio import events

    from bench import agi_load
    from bench.agi_servers import panoramisk_application

    class Transport(asyncio.Transport):
        def __init__(self):
            super().__init__()
            self.out = []
            self.closing = False

        def write(self, data):
            self.out.append(bytes(data))

        def is_closing(self):
            return self.closing

        def close(self):
            self.closing = True

        def get_extra_info(self, name, default=None):
            return ("127.0.0.1", 40000) if name == "peername" else default

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    events._set_running_loop(loop)
    application = panoramisk_application(loop)

    def settle():
        while loop._ready:
            loop._run_once()

    def one(n):
        reader = asyncio.StreamReader(limit=2 ** 16, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, application.handler, loop=loop)
        transport = Transport()
        protocol.connection_made(transport)
        asterisk = agi_load.AsteriskCall(None, 0)
        settle()
        protocol.data_received(agi_load.environment(n, 4573))
        settle()
        commands = 0
        for _ in range(40):
            sent = b"".join(transport.out)
            transport.out.clear()
            if not sent:
                break
            commands += sent.count(b"\n")
            protocol.data_received(asterisk.received(sent))
            settle()
        protocol.connection_lost(None)
        settle()
        return commands

    return one


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", action="store_true", help="count Python calls a session")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--standin", action="store_true",
                       help="server (a0): the FastAGI layer with the stand-in handler")
    which.add_argument("--raw", action="store_true",
                       help="server (b): the raw Twisted responder")
    which.add_argument("--panoramisk", action="store_true",
                       help="server (p): panoramisk's FastAGI application")
    args = parser.parse_args(argv)
    if args.raw:
        one = raw_driver()
    elif args.panoramisk:
        one = panoramisk_driver()
    else:
        one = driver(args.standin)
    commands = [one(n) for n in range(10000)]  # every caller once, as the bench's rounds
    best = min(_timed(one, args.sessions) for _ in range(args.rounds))
    print(f"{os.getcwd()}: {best * 1e6:.0f} us CPU a session (best of {args.rounds} x "
          f"{args.sessions}), {sum(commands) / len(commands):.1f} commands a session")
    if args.calls:
        profile = cProfile.Profile()
        profile.enable()
        for n in range(args.sessions):
            one(n)
        profile.disable()
        calls = pstats.Stats(profile).total_calls / args.sessions
        print(f"  {calls:.0f} Python function calls a session")
    # The call log's database thread would keep the process alive.
    os._exit(0)


def _timed(one, sessions) -> float:
    started = time.process_time()
    for n in range(sessions):
        one(n)
    return (time.process_time() - started) / sessions


if __name__ == "__main__":
    main()
