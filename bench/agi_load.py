"""
FastAGI load: a generator that plays Asterisk, and the exchange it plays.

The generator (L{run_load}, on C{epoll}, in a process of its own) opens
many concurrent connections to a FastAGI server, sends the environment of a
hotline call, answers every command the way Asterisk would on a call where
the resident presses 1 and the department answers, and counts a session
complete when the server closes the connection after the whole exchange.
The servers it measures are in L{bench.agi_servers}; both sides run from
here: C{python -m bench.agi_load serve KIND} and C{... client ...}.

The exchange every server performs is the one the hotline performs with
the sample routing (C{config/routing.yaml}) when the resident presses 1 in
office hours::

    ANSWER
    SET VARIABLE "CHANNEL(language)" "zh"           the hotline's language
    STREAM FILE "hello-world" "0123456789*#"       greeting, interruptible
    GET DATA "vm-enter-num-to-call" 5000 1          -> digits "1"
    EXEC Dial "PJSIP/87650001&PJSIP/87650002,20,g"  the committee, ring-all
    GET VARIABLE "DIALSTATUS"                       -> ANSWER
    GET VARIABLE "ANSWEREDTIME"                     -> unset
    SET VARIABLE "SWITCHBOARD_RESULT" "OK"
    HANGUP
"""

from __future__ import annotations

import argparse
import json
import resource
import select
import socket
import sys
import time
from collections import Counter

#: The reference servers' menu: digits -> dial string (the sample routing's
#: committee, health centre and police desk).
MENU = {
    "1": "PJSIP/87650001&PJSIP/87650002",
    "2": "PJSIP/87650011",
    "3": "PJSIP/87650031",
}
OPERATOR = "PJSIP/87650100"
GREETING, MENU_PROMPT, KEYS = "hello-world", "vm-enter-num-to-call", "0123456789*#"
LANGUAGE = "zh"
DIAL_TIMEOUT, DIAL_OPTIONS = 20, "g"


def route(digits: str) -> str:
    """The dial string the reference menu gives C{digits}."""
    return MENU.get(digits, OPERATOR)


# The Asterisk side -------------------------------------------------------

#: What Asterisk answers, by the start of the command line (first match).
REPLIES = (
    (b"ANSWER", b"200 result=0\n"),
    (b"STREAM FILE", b"200 result=0 endpos=1234\n"),
    (b"GET DATA", b"200 result=1\n"),  # the resident pressed 1
    (b"SET VARIABLE", b"200 result=1\n"),
    (b"EXEC", b"200 result=0\n"),
)
DIALSTATUS_REPLY = b"200 result=1 (ANSWER)\n"
OTHER_REPLY = b"200 result=0\n"  # also GET VARIABLE of anything else: unset


def environment(number: int, port: int) -> bytes:
    """
    The environment Asterisk 22 sends for a hotline call, as its
    C{AGI(agi://host/hotline)} would, for call C{number}.
    """
    phone = 87660000 + number % 10000
    lines = [
        "agi_network: yes",
        "agi_network_script: hotline",
        f"agi_request: agi://127.0.0.1:{port}/hotline",
        f"agi_channel: PJSIP/{phone}-{number:08x}",
        "agi_language: en",
        "agi_type: PJSIP",
        f"agi_uniqueid: 1767225600.{number}",
        "agi_version: 22.1.0",
        f"agi_callerid: {phone}",
        f"agi_calleridname: Resident {number % 10000}",
        "agi_callingpres: 0",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        "agi_dnid: 12345",
        "agi_rdnis: unknown",
        "agi_context: switchboard-hotline",
        "agi_extension: 12345",
        "agi_priority: 2",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        f"agi_threadid: {140000000000000 + number}",
        "agi_arg_1: 12345",
        "",
        "",
    ]
    return "\n".join(lines).encode("ascii")


class AsteriskCall:
    """
    The Asterisk end of one FastAGI session, on a connected non-blocking
    socket.

    It is a success when the server closes the connection (a clean FIN)
    after the call was answered, dialled and C{SWITCHBOARD_RESULT=OK} set.
    """

    __slots__ = ("sock", "deadline", "buffer", "answered", "dialled", "result")

    def __init__(self, sock, deadline):
        self.sock = sock
        self.deadline = deadline
        self.buffer = b""
        self.answered = self.dialled = False
        self.result = None

    def received(self, data: bytes) -> bytes:
        """The replies to the complete command lines in C{data}."""
        if self.buffer:
            data = self.buffer + data
        lines = data.split(b"\n")
        self.buffer = lines.pop()
        return b"".join([self.reply(line) for line in lines])

    def reply(self, line: bytes) -> bytes:
        """Asterisk's reply to the command C{line}."""
        for start, answer in REPLIES:
            if line.startswith(start):
                if start == b"ANSWER":
                    self.answered = True
                elif start == b"EXEC":
                    self.dialled = self.dialled or line.startswith(b"EXEC Dial")
                elif start == b"SET VARIABLE" and b"SWITCHBOARD_RESULT" in line:
                    self.result = line.split()[-1].strip(b'"')
                return answer
        if line.startswith(b"GET VARIABLE") and b"DIALSTATUS" in line:
            return DIALSTATUS_REPLY
        return OTHER_REPLY

    def closed(self) -> str:
        """The server closed the connection: C{"ok"}, or what was missing."""
        if self.result not in (None, b"OK"):
            return f"SWITCHBOARD_RESULT={self.result.decode(errors='replace')}"
        missing = [
            name
            for name, done in (
                ("ANSWER", self.answered),
                ("EXEC Dial", self.dialled),
                ("SWITCHBOARD_RESULT=OK", self.result == b"OK"),
            )
            if not done
        ]
        return "closed before " + ", ".join(missing) if missing else "ok"


def run_load(port, sessions, concurrency, *, host="127.0.0.1", first=0,
             session_timeout=30.0):
    """
    Run C{sessions} hotline sessions against C{host:port}, C{concurrency}
    at a time, on one thread with C{epoll}.

    A generator on asyncio's event loop spent as much CPU per session as
    the raw responder it measured; this loop, with a blocking connect
    (immediate on loopback) and one C{send} per reply, spends about half.

    @param first: number of the first call (keeps unique ids unique across
        several generator processes).
    @return: a dict with C{ok}, C{failures} (reason -> count), C{start} and
        C{end} (C{time.monotonic()}, comparable between processes).
    """
    poller = select.epoll()
    calls = {}
    outcomes = Counter()
    numbers = iter(range(first, first + sessions))
    address = (host, port)
    clock = time.monotonic

    def start(number):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(10.0)
        try:
            sock.connect(address)
            sock.setblocking(False)
            sock.send(environment(number, port))
        except OSError as e:
            sock.close()
            outcomes[f"connect: {type(e).__name__}"] += 1
            return
        fd = sock.fileno()
        calls[fd] = AsteriskCall(sock, clock() + session_timeout)
        poller.register(fd, select.EPOLLIN)

    def end(fd, outcome):
        call = calls.pop(fd)
        poller.unregister(fd)
        call.sock.close()
        outcomes[outcome] += 1

    started = clock()
    exhausted = False
    next_check = started + 1.0
    while True:
        while not exhausted and len(calls) < concurrency:
            number = next(numbers, None)
            if number is None:
                exhausted = True
            else:
                start(number)
        if not calls:
            break
        for fd, _ in poller.poll(1.0):
            call = calls[fd]
            try:
                data = call.sock.recv(65536)
                if data:
                    replies = call.received(data)
                    if replies and call.sock.send(replies) != len(replies):
                        end(fd, "short write")
                    continue
            except OSError as e:
                end(fd, f"lost: {type(e).__name__}")
                continue
            end(fd, call.closed())
        now = clock()
        if now > next_check:
            next_check = now + 1.0
            for fd in [fd for fd, call in calls.items() if call.deadline < now]:
                end(fd, "timeout")
    finished = clock()
    poller.close()
    ok = outcomes.pop("ok", 0)
    return {"ok": ok, "failures": dict(outcomes), "start": started, "end": finished}


def client_main(args) -> int:
    """
    C{client}: wait for a line on stdin (so several generators start
    together), run the load, print the result as JSON.
    """
    print("ready", flush=True)
    sys.stdin.readline()
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = run_load(args.port, args.sessions, args.concurrency, first=args.first)
    after = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps(result), flush=True)
    return 0


def main(argv=None) -> int:
    """C{python -m bench.agi_load serve ...} or C{... client ...}."""
    parser = argparse.ArgumentParser(prog="python -m bench.agi_load")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run one FastAGI server")
    serve.add_argument("kind", choices=["switchboard", "standin", "raw", "raw-record", "pyst2",
                                          "panoramisk"])
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--routing", help="routing file for the hotline")
    serve.add_argument("--reload-every", type=float, default=0.0, metavar="SECONDS")
    serve.add_argument("--unchanged", action="store_true",
                       help="reload without saving the routing file again first")
    serve.add_argument("--database", help="call log database URL (hotline)")
    serve.add_argument("--log-file", help="where the Twisted servers log")
    serve.add_argument("--stats", help="write reload figures here (JSON) on exit")
    client = commands.add_parser("client", help="play Asterisk (starts on a line on stdin)")
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--sessions", type=int, default=5000)
    client.add_argument("--concurrency", type=int, default=50)
    client.add_argument("--first", type=int, default=0, help="number of the first call")
    args = parser.parse_args(argv)
    if args.command == "serve":
        from bench.agi_servers import serve_main

        return serve_main(args)
    return client_main(args)


if __name__ == "__main__":
    sys.exit(main())
