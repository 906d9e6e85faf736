"""
The FastAGI servers the load generator (L{bench.agi_load}) measures, each
run with C{python -m bench.agi_load serve KIND}:

  - C{switchboard}: L{FastAGIFactory} with the hotline handler, wired as the
    service wires it (see L{wire_hotline});
  - C{standin}: L{FastAGIFactory} with L{standin_handler}, the same
    exchange through L{AGISession} with no hotline logic: what the FastAGI
    layer itself costs;
  - C{raw}: L{RawHotlineProtocol}, a bare C{LineReceiver} doing the same
    exchange with no session or command queue: the ceiling of this design;
  - C{raw-record}: the raw responder that also keeps the record the
    hotline keeps of every call (its row in the call log, through
    L{CallLog} into SQLite, and its log line): what those cost on their
    own, with no FastAGI layer and no routing;
  - C{pyst2}: pyst2's C{asterisk.agi.AGI} behind a thread-per-connection
    C{socketserver.ThreadingTCPServer};
  - C{panoramisk}: panoramisk's FastAGI server (C{panoramisk.fast_agi.
    Application}) on asyncio's default event loop, as shipped: the Python
    FastAGI server nearest to switchboard's design (one process, one event
    loop, a coroutine per call).
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from bench.agi_load import (DIAL_OPTIONS, DIAL_TIMEOUT, GREETING, KEYS, LANGUAGE, MENU_PROMPT,
                             route)
from bench.routing_files import SETTINGS, Resaver

# The reference servers ---------------------------------------------------


async def standin_handler(session):
    """
    Server (a0): the reference exchange through L{AGISession}, with no
    hotline logic, written as the features' handlers are (an C{async def}
    awaiting each command; the factory runs it with
    L{switchboard.agi.drive}, as their C{__call__} does).
    """
    await session.answer()
    await session.set_variable("CHANNEL(language)", LANGUAGE)
    await session.stream_file(GREETING, KEYS)
    digits = await session.get_data(MENU_PROMPT, 5000, 1)
    await session.exec_("Dial", route(digits), DIAL_TIMEOUT, DIAL_OPTIONS)
    await session.get_variable("DIALSTATUS")
    await session.get_variable("ANSWEREDTIME")
    await session.set_variable("SWITCHBOARD_RESULT", "OK")
    await session.hangup()


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
                self.sendLine(b'SET VARIABLE "CHANNEL(language)" "%s"' % LANGUAGE.encode())
            elif step == 2:
                self.sendLine(b'STREAM FILE "%s" "%s"' % (GREETING.encode(), KEYS.encode()))
            elif step == 3:
                self.sendLine(b'GET DATA "%s" 5000 1' % MENU_PROMPT.encode())
            elif step == 4:
                digits = line[len(b"200 result="):].split(b" ", 1)[0].decode()
                self.sendLine(b'EXEC Dial "%s,%d,%s"' % (
                    route(digits).encode(), DIAL_TIMEOUT, DIAL_OPTIONS.encode()))
            elif step == 5:
                self.sendLine(b'GET VARIABLE "DIALSTATUS"')
            elif step == 6:
                self.sendLine(b'GET VARIABLE "ANSWEREDTIME"')
            elif step == 7:
                self.sendLine(b'SET VARIABLE "SWITCHBOARD_RESULT" "OK"')
            elif step == 8:
                self.sendLine(b"HANGUP")
            else:
                self.transport.loseConnection()

    return RawHotlineProtocol


#: The path and destination the hotline records for the reference call
#: with the sample routing: the recording raw responder stores the same
#: row (tests/test_bench_servers.py checks it).
RECORDED_DESTINATION = "居委会"
RECORDED_PATH = (
    'menu main (主菜单): prompt say "居委会请按1，社区卫生服务中心请按2，社区警务室请按3，物业和便民服务请按4，'
    '停水停电通知请按9，人工服务请按0。知道科室号码的，请直接拨号。" (zh), else vm-enter-num-to-call',
    "pressed 1: option 1 -> 居委会 [committee]",
    "居委会 [committee]: open: Tuesday 2026-11-24, 08:30-12:00",
    "社区值班电话 [duty]: open (no hours set)",
    "dial {target} (20 s)",
    "answered at 居委会 [committee]",
)


def raw_recording_protocol(call_log):
    """
    The class of the raw responder that records each call as the hotline
    does: when the connection closes, one L{Call} handed to C{call_log}
    (a L{CallLog}; see L{call_log_in}) and the hotline's log line.
    """
    from datetime import datetime, timezone

    from twisted.logger import Logger

    from switchboard.calllog import ANSWERED, Call

    log = Logger(namespace="switchboard.hotline.handler.HotlineHandler")

    class RawRecordingProtocol(raw_protocol()):
        """L{RawHotlineProtocol}, and a call record for each call."""

        def connectionMade(self):
            super().connectionMade()
            self.started = datetime.now(timezone.utc)
            self.target = None

        def lineReceived(self, line):
            if self.step == 3 and line.startswith(b"200 result="):  # GET DATA's digits
                self.target = route(line[len(b"200 result="):].split(b" ", 1)[0].decode())
            super().lineReceived(line)

        def connectionLost(self, reason=None):
            ended = datetime.now(timezone.utc)
            env = self.env
            call = Call(started=self.started,
                        caller=env.get(b"agi_callerid", b"").decode() or None,
                        hotline=env.get(b"agi_extension", b"").decode() or None,
                        uniqueid=env.get(b"agi_uniqueid", b"").decode() or None,
                        path=[step.format(target=self.target) for step in RECORDED_PATH],
                        destination=RECORDED_DESTINATION,
                        outcome=ANSWERED, answered=ended, ended=ended)
            log.info("hotline call {uniqueid} from {caller}: {outcome} ({destination})",
                     uniqueid=call.uniqueid, caller=call.caller, outcome=call.outcome,
                     destination=call.destination)
            call_log.record(call)
            super().connectionLost(reason)

    return RawRecordingProtocol


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
                agi.set_variable("CHANNEL(language)", LANGUAGE)
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


async def panoramisk_hotline(request):
    """
    Server (p): the reference exchange as a panoramisk FastAGI endpoint.
    panoramisk has no helper per command: the lines are written as the
    raw responder writes them, and each reply is read by
    C{Request.send_command} (C{100 Trying} skipped, C{520} usage read).
    """
    send = request.send_command
    await send("ANSWER")
    await send(f'SET VARIABLE "CHANNEL(language)" "{LANGUAGE}"')
    await send(f'STREAM FILE "{GREETING}" "{KEYS}"')
    reply = await send(f'GET DATA "{MENU_PROMPT}" 5000 1')
    digits = reply.get("result", ("", ""))[0]
    await send(f'EXEC Dial "{route(digits)},{DIAL_TIMEOUT},{DIAL_OPTIONS}"')
    await send('GET VARIABLE "DIALSTATUS"')
    await send('GET VARIABLE "ANSWEREDTIME"')
    await send('SET VARIABLE "SWITCHBOARD_RESULT" "OK"')
    await send("HANGUP")


def panoramisk_application(loop):
    """panoramisk's C{Application} on C{loop}, the hotline at C{hotline}."""
    from panoramisk.fast_agi import Application

    application = Application(loop=loop)
    application.add_route("hotline", panoramisk_hotline)
    return application


def panoramisk_serve(port):
    """
    Serve (p) on 127.0.0.1: C{asyncio.start_server} with the application's
    handler, as panoramisk's documentation does; print C{READY}; run the
    loop until terminated.
    """
    import asyncio
    import signal

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    application = panoramisk_application(loop)
    server = loop.run_until_complete(
        asyncio.start_server(application.handler, "127.0.0.1", port, backlog=128))
    settle_memory()
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port} panoramisk 1.4 FastAGI Application on asyncio", flush=True)
    loop.run_forever()
    return 0


# The hotline under test --------------------------------------------------

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


def wire_hotline(routing_path=None, database_url=None):
    """
    What server (a) runs: L{HotlineHandler} with its routing store, call
    log and the service's settings (C{config/switchboard.yaml}), wired as
    L{switchboard.hotline.feature} wires it, but with a fixed time of day
    (L{OFFICE_HOURS}).

    @param routing_path: the routing file (the sample routing by default).
    @param database_url: where the call log goes (a temporary SQLite file
        by default).
    @return: C{(handler, reload, description)}; C{reload()} saves the
        routing file again and re-reads, validates and swaps it (a
        Deferred; see L{Resaver}).
    """
    from switchboard import settings as service_settings
    from switchboard.hotline.handler import HotlineHandler
    from switchboard.routing.store import RoutingStore

    settings = service_settings.load(SETTINGS)
    routing_path = routing_path or settings.routing
    store = RoutingStore(routing_path, settings.numbers, trunks=settings.trunks.keys())
    store.load()
    handler = HotlineHandler(store, settings.dialer, call_log_in(database_url), settings.tz,
                             clock=FixedTime(OFFICE_HOURS))
    routing = store.current
    declared = sum(1 for name in routing.destinations if name not in routing.menus)
    description = (f"HotlineHandler with {os.path.basename(routing_path)} "
                   f"({declared} destinations), call log in SQLite")
    return handler, Resaver(routing_path, store.reload), description


def call_log_in(database_url=None):
    """
    A L{CallLog} writing to C{database_url} (a new temporary SQLite file by
    default), batched as the service batches.
    """
    from switchboard.calllog import CallLog
    from switchboard.hotline.feature import CALL_LOG_DELAY
    from switchboard.storage import Database

    if database_url is None:
        database_url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "calls.db")
    database = Database(database_url)
    database.migrate()
    return CallLog(database, delay=CALL_LOG_DELAY)


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

    if args.kind == "panoramisk":
        return panoramisk_serve(args.port)

    from twisted.internet import reactor, task
    from twisted.internet.protocol import ServerFactory

    _log_to(args.log_file)
    reloads = {"done": 0, "failed": 0, "seconds": []}
    if args.kind == "raw":
        factory = ServerFactory.forProtocol(raw_protocol())
        description = "raw Twisted LineReceiver"
    elif args.kind == "raw-record":
        factory = ServerFactory.forProtocol(raw_recording_protocol(call_log_in(args.database)))
        description = ("raw Twisted LineReceiver, and each call's record (call log in "
                       "SQLite, log line) as the hotline keeps it")
    elif args.kind == "standin":
        from switchboard.agi import FastAGIFactory

        factory = FastAGIFactory({"hotline": standin_handler})
        description = ("switchboard FastAGIFactory, stand-in handler: the same exchange "
                       "through AGISession, no hotline logic")
    else:
        from switchboard.agi import FastAGIFactory

        handler, reload, description = wire_hotline(args.routing, args.database)
        factory = FastAGIFactory({"hotline": handler})
        description = "switchboard FastAGIFactory, " + description
        if args.reload_every:
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
    as the running service does; every server measured here gets the same.
    """
    from switchboard.service import settle_memory as service_settle_memory

    service_settle_memory()


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
