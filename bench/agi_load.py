"""
FastAGI load: a generator that plays Asterisk, and the servers it measures.

The generator (L{run_load}, on C{epoll}, in a process of its own) opens
many concurrent connections to a FastAGI server, sends the environment of a
hotline call, answers every command the way Asterisk would on a call where
the resident presses 1 and the department answers, and counts a session
complete when the server closes the connection after the whole exchange.

The servers (each run with C{python -m bench.agi_load serve KIND}):
  - C{switchboard}: L{FastAGIFactory} with the hotline handler (see
    L{hotline_handler});
  - C{standin}: L{FastAGIFactory} with L{standin_handler}, the same
    exchange through L{AGISession} with no hotline logic: what the FastAGI
    layer itself costs;
  - C{raw}: L{RawHotlineProtocol}, a bare C{LineReceiver} doing the same
    exchange with no session or command queue: the ceiling of this design;
  - C{pyst2}: pyst2's C{asterisk.agi.AGI} behind a thread-per-connection
    C{socketserver.ThreadingTCPServer}.

The exchange they all perform is the one the hotline performs with the
sample routing (C{config/routing.yaml}) when the resident presses 1 in
office hours::

    ANSWER
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
import gc
import json
import os
import resource
import select
import socket
import sys
import tempfile
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


# The servers -------------------------------------------------------------

def standin_handler(session):
    """
    The reference exchange through L{AGISession}, for when the hotline
    handler cannot be imported.
    """
    from twisted.internet import defer

    @defer.inlineCallbacks
    def call():
        yield session.answer()
        yield session.stream_file(GREETING, KEYS)
        digits = yield session.get_data(MENU_PROMPT, 5000, 1)
        yield session.exec_("Dial", route(digits), DIAL_TIMEOUT, DIAL_OPTIONS)
        yield session.get_variable("DIALSTATUS")
        yield session.get_variable("ANSWEREDTIME")
        yield session.set_variable("SWITCHBOARD_RESULT", "OK")
        yield session.hangup()

    return call()


def raw_protocol():
    """The class of the raw responder (Twisted is imported only here)."""
    from twisted.protocols.basic import LineReceiver

    class RawHotlineProtocol(LineReceiver):
        """
        The reference exchange written straight onto a C{LineReceiver}:
        read the environment, then send each command when the previous
        reply comes; no session object, no command queue, no Deferreds.
        """

        delimiter = b"\n"

        def connectionMade(self):
            self.env = {}
            self.step = None  # commands answered so far, once started

        def lineReceived(self, line):
            if self.step is None:
                if line:
                    key, _, value = line.partition(b":")
                    self.env[key.strip()] = value.strip()
                    return
                self.step = 0
                self.sendLine(b"ANSWER")
                return
            if not line.startswith(b"200 result="):
                self.transport.loseConnection()  # not what this exchange expects
                return
            self.step += 1
            step = self.step
            if step == 1:
                self.sendLine(b'STREAM FILE "%s" "%s"' % (GREETING.encode(), KEYS.encode()))
            elif step == 2:
                self.sendLine(b'GET DATA "%s" 5000 1' % MENU_PROMPT.encode())
            elif step == 3:
                digits = line[len(b"200 result="):].split(b" ", 1)[0].decode()
                self.sendLine(b'EXEC Dial "%s,%d,%s"' % (
                    route(digits).encode(), DIAL_TIMEOUT, DIAL_OPTIONS.encode()))
            elif step == 4:
                self.sendLine(b'GET VARIABLE "DIALSTATUS"')
            elif step == 5:
                self.sendLine(b'GET VARIABLE "ANSWEREDTIME"')
            elif step == 6:
                self.sendLine(b'SET VARIABLE "SWITCHBOARD_RESULT" "OK"')
            elif step == 7:
                self.sendLine(b"HANGUP")
            else:
                self.transport.loseConnection()

    return RawHotlineProtocol


def pyst2_server(port):
    """
    A C{ThreadingTCPServer} running each connection through pyst2's C{AGI}
    class in a thread of its own, as a Python AGI script written with
    pyst2 would, given the socket's files for stdin and stdout.
    """
    import os
    import socketserver

    from asterisk.agi import AGI, AGIHangup

    class SocketAGI(AGI):
        """
        pyst2's C{AGI} on a socket. Its constructor installs a C{SIGHUP}
        handler, which only the main thread may do (and FastAGI signals a
        hangup in-band, not with C{SIGHUP}); this one does everything else
        the original does: keep the files, read the environment.
        """

        def __init__(self, stdin, stdout, stderr):
            self.stdin = stdin
            self.stdout = stdout
            self.stderr = stderr
            self._got_sighup = False
            self.env = {}
            self._get_agi_env()

    debug = open(os.devnull, "w")  # pyst2 writes a trace of everything to stderr

    class PystHotline(socketserver.BaseRequestHandler):
        """One FastAGI session, in its own thread."""

        def handle(self):
            stdin = self.request.makefile("rb")
            stdout = self.request.makefile("w", encoding="utf-8", newline="")
            try:
                agi = SocketAGI(stdin, stdout, debug)
                agi.answer()
                agi.stream_file(GREETING, KEYS)
                target = route(agi.get_data(MENU_PROMPT, 5000, 1))
                agi.appexec("Dial", f"{target},{DIAL_TIMEOUT},{DIAL_OPTIONS}")
                agi.get_variable("DIALSTATUS")
                agi.get_variable("ANSWEREDTIME")
                agi.set_variable("SWITCHBOARD_RESULT", "OK")
                agi.hangup()
            except AGIHangup:
                pass
            finally:
                stdin.close()
                stdout.close()

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128  # the default (5) would drop bursts of connects

    return Server(("127.0.0.1", port), PystHotline)


# The hotline under test --------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = os.path.join(ROOT, "config", "switchboard.yaml")

#: The hotline's clock is held at a Tuesday 10:00 in Fuzhou, so that digit 1
#: reaches the residents' committee while it is open, whenever the
#: benchmark runs (otherwise the call would go to voicemail after hours).
OFFICE_HOURS = 1795485600.0  # 2026-11-24 10:00 Asia/Shanghai


class FixedTime:
    """A clock (C{seconds()}) that stands still."""

    def __init__(self, when: float):
        self.when = when

    def seconds(self) -> float:
        return self.when


def hotline_handler(routing_path=None, database_url=None):
    """
    What server (a) runs: switchboard's hotline handler, with its routing
    store, call log and the service's settings (C{config/switchboard.yaml}),
    or the stand-in when the hotline cannot be imported.

    @param routing_path: the routing file (the sample routing by default).
    @param database_url: where the call log goes (a temporary SQLite file
        by default).
    @return: C{(handler, reload, description)}; C{reload()} re-reads,
        validates and swaps the routing file (a Deferred), L{None} for the
        stand-in, which has no routing.
    """
    try:
        from switchboard.hotline.handler import HotlineHandler  # noqa: F401
    except Exception as e:
        why = f"{type(e).__name__}: {e}"
        return standin_handler, None, f"STAND-IN handler via AGISession (no hotline: {why})"
    return wire_hotline(routing_path, database_url)


def wire_hotline(routing_path, database_url):
    """
    L{HotlineHandler} wired as L{switchboard.hotline.feature} wires it, but
    with a fixed time of day (L{OFFICE_HOURS}).
    """
    from switchboard import settings as service_settings
    from switchboard.calllog import CallLog
    from switchboard.hotline.feature import CALL_LOG_DELAY
    from switchboard.hotline.handler import HotlineHandler
    from switchboard.routing.store import RoutingStore
    from switchboard.storage import Database

    settings = service_settings.load(SETTINGS)
    routing_path = routing_path or settings.routing
    store = RoutingStore(routing_path, settings.numbers, trunks=settings.trunks.keys())
    store.load()
    if database_url is None:
        database_url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "calls.db")
    database = Database(database_url)
    database.migrate()
    call_log = CallLog(database, delay=CALL_LOG_DELAY)
    handler = HotlineHandler(store, settings.dialer, call_log, settings.tz,
                             clock=FixedTime(OFFICE_HOURS))
    routing = store.current
    declared = sum(1 for name in routing.destinations if name not in routing.menus)
    description = (f"HotlineHandler with {os.path.basename(routing_path)} "
                   f"({declared} destinations), call log in SQLite")
    return handler, Resaver(routing_path, store.reload), description


class Resaver:
    """
    Calling it saves the routing file again with one byte-level change (a
    trailing comment), as staff saving an edit would, then calls
    C{reload()}: the store skips a file whose bytes are unchanged, and each
    reload here must read, validate and swap the whole file.
    """

    def __init__(self, path, reload):
        self.path = path
        self.reload = reload
        with open(path, "rb") as f:
            self.original = f.read()
        self.saves = 0

    def save(self):
        """Write the file anew (to a temporary name, then renamed over it)."""
        self.saves += 1
        temporary = f"{self.path}.saving"
        with open(temporary, "wb") as f:
            f.write(self.original + b"# saved again: %d\n" % self.saves)
        os.replace(temporary, self.path)

    def __call__(self):
        self.save()
        return self.reload()


def scaled_routing(destinations, directory, sample=None):
    """
    Write the sample routing grown to C{destinations} destinations into
    C{directory}: the sample as it is, then departments (ring-all or hunt,
    with hours), outside services, mailboxes and announcements, each with
    its own direct-dial code, in the forms staff write numbers.

    @return: the path of the file written.
    """
    import yaml

    sample = sample or os.path.join(ROOT, "config", "routing.yaml")
    with open(sample, encoding="utf-8") as f:
        text = f.read()
    have = len(yaml.safe_load(text)["destinations"])
    lines = [text.rstrip("\n"), "", "  # Generated for the benchmark."]
    for i in range(max(0, destinations - have)):
        name, code, kind = f"unit_{i:04d}", f"7{i:04d}", i % 10
        lines += [f"  {name}:", f"    label: 第{i}号服务点", f'    code: "{code}"']
        if kind < 7:
            first, second = 87660000 + 2 * i, 87660001 + 2 * i
            lines += [
                "    type: department",
                f"    phones: [0591-{first}, \"+86 591 {str(second)[:4]} {str(second)[4:]}\"]",
                f"    strategy: {'hunt' if kind % 2 else 'ring-all'}",
                "    ring_timeout: 20",
                "    hours:",
                '      mon-fri: ["08:30-12:00", "14:30-17:30"]',
                '      sat: ["09:00-12:00"]',
                "    closed: voicemail",
                "    overflow: [duty, voicemail]",
            ]
        elif kind == 7:
            lines += ["    type: service", f"    number: 1380591{i:04d}", "    trunk: default",
                      "    hours:", '      daily: ["10:00-21:00"]', "    closed: restaurant_closed"]
        elif kind == 8:
            lines += ["    type: voicemail", f'    mailbox: "{3000 + i}"']
        else:
            lines += ["    type: announcement", "    sound: vm-nobodyavail"]
    path = os.path.join(directory, f"routing-{destinations}.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def swap_times(routing_path, times):
    """
    Seconds taken, C{times} times over, to read, validate and swap
    C{routing_path} into a L{RoutingStore} (after one untimed load); the
    file is saved again with a change before each (not timed).
    """
    from switchboard import settings as service_settings
    from switchboard.routing.store import RoutingStore

    settings = service_settings.load(SETTINGS)
    store = RoutingStore(routing_path, settings.numbers, trunks=settings.trunks.keys())
    store.load()
    resaver = Resaver(routing_path, store.load)
    seconds = []
    for _ in range(times):
        resaver.save()
        started = time.perf_counter()
        store.load()
        seconds.append(time.perf_counter() - started)
    return seconds


# Running a server --------------------------------------------------------

def serve_main(args) -> int:
    """
    C{serve KIND}: listen on 127.0.0.1, print C{READY <port> <what runs>},
    serve until terminated.
    """
    if args.kind == "pyst2":
        server = pyst2_server(args.port)
        port = server.server_address[1]
        settle_memory()
        print(f"READY {port} pyst2 AGI, a thread per connection", flush=True)
        server.serve_forever()
        return 0

    from twisted.internet import reactor, task
    from twisted.internet.protocol import ServerFactory

    _log_to(args.log_file)
    reloads = {"done": 0, "failed": 0, "seconds": []}
    if args.kind == "raw":
        factory = ServerFactory.forProtocol(raw_protocol())
        description = "raw Twisted LineReceiver"
    elif args.kind == "standin":
        from switchboard.agi import FastAGIFactory

        factory = FastAGIFactory({"hotline": standin_handler})
        description = ("switchboard FastAGIFactory, stand-in handler: the same exchange "
                       "through AGISession, no hotline logic")
    else:
        from switchboard.agi import FastAGIFactory

        handler, reload, description = hotline_handler(args.routing, args.database)
        factory = FastAGIFactory({"hotline": handler})
        description = "switchboard FastAGIFactory, " + description
        if args.reload_every:
            if reload is None:
                description += "; NO routing store to reload"
            else:
                if args.unchanged:
                    reload, saved = reload.reload, "unchanged"
                else:
                    saved = "saved with a change"
                loop = task.LoopingCall(_timed_reload, reload, reloads)
                _reload_on_signals(reactor, loop, args.reload_every)
                description += (f"; routing {saved} and reloaded every "
                                f"{args.reload_every:g} s while under load")
    settle_memory()
    port = reactor.listenTCP(args.port, factory, backlog=128, interface="127.0.0.1")
    print(f"READY {port.getHost().port} {description}", flush=True)
    if args.stats:
        reactor.addSystemEventTrigger("before", "shutdown", _write_json, args.stats, reloads)
    reactor.run()
    return 0


def settle_memory():
    """
    Leave what start-up loaded out of the garbage collector's full passes,
    as the running service does (L{switchboard.service.settle_memory});
    every server measured here gets the same.
    """
    gc.collect()
    gc.freeze()


def _reload_on_signals(reactor, loop, interval):
    """
    Run C{loop} every C{interval} seconds from C{SIGUSR1} to C{SIGUSR2}:
    the runner reloads only the server under load, so that one reloading
    in the background does not take CPU from the others' measurements.
    """
    import signal

    def start():
        if not loop.running:
            loop.start(interval, now=True)

    def stop():
        if loop.running:
            loop.stop()

    signal.signal(signal.SIGUSR1, lambda *_: reactor.callFromThread(start))
    signal.signal(signal.SIGUSR2, lambda *_: reactor.callFromThread(stop))


def _timed_reload(reload, reloads):
    """Run C{reload()} and count it (a failure is counted, not raised)."""
    from twisted.internet import defer

    started = time.perf_counter()
    d = defer.maybeDeferred(reload)

    def done(result):
        reloads["done"] += 1
        reloads["seconds"].append(time.perf_counter() - started)

    def failed(failure):
        reloads["failed"] += 1
        reloads["last_error"] = failure.getErrorMessage()[:500]

    return d.addCallbacks(done, failed)


def _write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f)


def _log_to(path):
    """Log as the service does (info and above, as text), to C{path}."""
    from twisted.logger import globalLogBeginner

    from switchboard.service import log_observer

    out = open(path, "a") if path else open("/dev/null", "w")
    globalLogBeginner.beginLoggingTo([log_observer(out)], redirectStandardIO=False)


def main(argv=None) -> int:
    """C{python -m bench.agi_load serve ...} or C{... client ...}."""
    parser = argparse.ArgumentParser(prog="python -m bench.agi_load")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run one FastAGI server")
    serve.add_argument("kind", choices=["switchboard", "standin", "raw", "pyst2"])
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
    return serve_main(args) if args.command == "serve" else client_main(args)


if __name__ == "__main__":
    sys.exit(main())
