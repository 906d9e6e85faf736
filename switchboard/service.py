"""
The running server: one FastAGI listener and one AMI client, with the
installed features (L{switchboard.features}: the hotline, the #9 alarm, ...)
plugged in.

Start-up order matters for an alarm server: the database, the routing and
the recovered alarms are ready before the FastAGI port opens, so the first
call is served on complete data; the alarm's caller index loads after it
opens (seconds with a large registry), #9 callers being found in the
database meanwhile. AMI (re)connects in the background and every
(re)connect resynchronises what Asterisk needs for the native fallback.
"""

from __future__ import annotations

import faulthandler
import gc
import signal
import sys

from twisted.application import service
from twisted.internet import defer
from twisted.logger import LogLevel, Logger, globalLogBeginner

from switchboard import features as features_module
from switchboard.agi import FastAGIFactory
from switchboard.ami import AMIClient
from switchboard.ami.client import ORIGINATE_EVENTS
from switchboard.ami.servers import AsteriskServer, AsteriskServers
from switchboard.settings import DEFAULT_SERVER
from switchboard.logs import LineLogObserver
from switchboard.ringgroup.trunk import Trunk
from switchboard.storage import Database
from switchboard.systemd import Notifier, Watchdog
from switchboard.watch import FileWatcher


#: The AMI events the server reads are those its features declare
#: (L{features_module.IFeature.ami_events}; the alarm's: Newchannel, Hangup,
#: OriginateResponse). Everything else Asterisk would send costs the
#: reactor more than the calls it describes (~16 us an event; one hotline
#: call in the lab makes 104 of them, 4 of which are the alarm's three). So
#: the login asks only for class call (the events the features read are of
#: it), and a session filter narrows that to their names. Answers to the
#: server's own actions come whatever the filter.
AMI_EVENTS = "call"


def ami_event_names(features=None) -> tuple:
    """The AMI event names the (installed) features and the originates read."""
    names = features_module.ami_events(
        features_module.installed() if features is None else features)
    return tuple(sorted(set(names) | set(ORIGINATE_EVENTS)))


class SwitchboardService(service.MultiService):
    """
    The whole server for one L{Settings}. C{features} are objects with
    C{handlers} (script -> AGI handler), and optional C{start()},
    C{stop()}, C{reload(path)}, C{watched} (paths) and C{ami_connected()}.

    Under systemd (L{switchboard.systemd}) it says C{READY=1} once the
    FastAGI port is open and the AMI link has been tried (logged in, or
    C{ami_grace} seconds gone by: an alarm is served without AMI too),
    C{WATCHDOG=1} every C{watchdog_interval} seconds from the reactor, and
    C{STOPPING=1} when it stops.
    """

    log = Logger()

    def __init__(self, settings, *, reactor=None, database=None, ami=None, settle=None,
                 notifier=None, watchdog_interval=None, ami_grace: float = 5.0,
                 ami_events=None, bulk_ami=None):
        """
        @param ami_events: the AMI event names to ask for (default: those
            the installed features read, L{ami_event_names}).
        @param settle: called once the features have started, before the
            FastAGI port opens (L{settle_memory} in the running server).
        @param notifier: a L{Notifier} (default: none, outside systemd).
        @param watchdog_interval: seconds between two C{WATCHDOG=1}, or None.
        @param bulk_ami: the AMI session for bulk work (L{features_module.Core.bulk_ami});
            default: a second session of the same user, without events, when
            C{ami} is not given, else C{ami} itself.
        """
        super().__init__()
        from twisted.internet import reactor as default_reactor
        self.settings = settings
        self.reactor = reactor or default_reactor
        self.database = database or Database(settings.database, reactor=self.reactor)
        #: The AMI event names the login asks for.
        self.ami_events = ami_event_names() if ami_events is None else tuple(ami_events)
        servers = list(getattr(settings, "servers", ())) if ami is None else []
        main = servers[0].ami if servers else settings.ami
        #: Where the main link goes (for the log).
        self._main = main
        self.ami = ami or self._link(main)
        if bulk_ami is None and ami is None:
            bulk_ami = self._link(main, bulk=True)
        self.bulk_ami = bulk_ami or self.ami
        #: Every Asterisk (L{AsteriskServers}), the main one's links first.
        self.asterisks = AsteriskServers(
            [AsteriskServer(servers[0].name if servers else DEFAULT_SERVER, self.ami,
                            self.bulk_ami, host=main.host,
                            dialer=settings.dialer_for(servers[0]) if servers else None)]
            + [AsteriskServer(s.name, self._link(s.ami), self._link(s.ami, bulk=True),
                              dialer=settings.dialer_for(s), host=s.ami.host)
               for s in servers[1:]])
        self.handlers: dict = {}
        self.features: list = []
        agi = settings.agi
        self.factory = FastAGIFactory(self.handlers, allow=agi.allow,
                                      idle_timeout=agi.idle_timeout, clock=self.reactor,
                                      key=agi.key or None, env_timeout=agi.env_timeout,
                                      max_sessions=agi.max_sessions,
                                      max_peer_sessions=agi.max_peer_sessions)
        self.port = None
        self.watcher = None
        self.settle = settle
        self.notifier = notifier or Notifier(None)
        self.watchdog = Watchdog(self.notifier, watchdog_interval, clock=self.reactor)
        self.ami_grace = ami_grace
        self.ready = False
        self._ready_timer = None

    def _link(self, ami, bulk=False):
        """An AMI client to C{ami} (L{AMISettings}): the events link, or a bulk session."""
        return AMIClient(ami.host, ami.port, ami.username, ami.secret, reactor=self.reactor,
                         **({"events": "off"} if bulk else
                            {"events": AMI_EVENTS, "only_events": self.ami_events}))

    def add_feature(self, feature) -> None:
        self.features.append(feature)
        self.handlers.update(feature.handlers)

    @defer.inlineCallbacks
    def startService(self):
        if not self.settings.agi.key and not self.settings.agi.insecure:
            raise ValueError(
                "no FastAGI key: set SWITCHBOARD_AGI_KEY, agi.key_file or agi.key (and "
                "SWITCHBOARD_KEY in the dialplan's [globals]), or agi.insecure: true to let "
                "any local process run the alarm")
        if not self.settings.agi.key:
            self.log.warn("FastAGI without a key (agi.insecure): any process on this host "
                          "can raise an alarm")
        super().startService()
        # From the first moment: loading the features takes the reactor too.
        self.watchdog.start()
        for feature in self.features:
            if hasattr(feature, "start"):
                yield feature.start()
        if self.settle is not None:
            self.settle()
        self.ami.on_connect(self._ami_connected)
        self.ami.start()
        if self.bulk_ami is not self.ami:
            self.bulk_ami.start()
        for other in self.asterisks.servers[1:]:
            other.ami.on_connect(lambda _, name=other.name: self.log.info(
                "AMI connected to Asterisk {name}", name=name))
            other.ami.start()
            other.bulk_ami.start()
        self.port = self.reactor.listenTCP(self.settings.agi.port, self.factory,
                                           backlog=self.settings.agi.backlog,
                                           interface=self.settings.agi.listen)
        self._ready_timer = self.reactor.callLater(self.ami_grace, self._announce_ready)
        watched = [p for f in self.features for p in getattr(f, "watched", ())]
        self.watcher = FileWatcher(watched, self.reload, clock=self.reactor)
        self.watcher.start()
        self.log.info("switchboard ready: FastAGI on {host}:{port}, scripts {scripts}",
                      host=self.settings.agi.listen, port=self.settings.agi.port,
                      scripts=", ".join(sorted(self.handlers)))

    def _announce_ready(self):
        """READY=1, once: the port is open and AMI has been tried."""
        if self._ready_timer is not None and self._ready_timer.active():
            self._ready_timer.cancel()
        self._ready_timer = None
        if self.ready or self.port is None:
            return
        self.ready = True
        self.notifier.notify("READY=1")

    def _ami_connected(self, *_):
        self.log.info("AMI connected to {host}:{port}", host=self._main.host,
                      port=self._main.port)
        self._announce_ready()
        for feature in self.features:
            if hasattr(feature, "ami_connected"):
                d = defer.maybeDeferred(feature.ami_connected)
                d.addErrback(lambda f, name=type(feature).__name__: self.log.failure(
                    "{feature} after AMI connect", f, feature=name))

    def reload(self, path=None):
        """Reload the configuration files (all on SIGHUP, one when it changed)."""
        results = []
        for feature in self.features:
            if hasattr(feature, "reload") and (path is None or path in getattr(feature, "watched", ())):
                results.append(defer.maybeDeferred(feature.reload, path))
        return defer.DeferredList(results, consumeErrors=True)

    @defer.inlineCallbacks
    def stopService(self):
        self.log.info("switchboard stopping")
        self.notifier.notify("STOPPING=1")
        if self._ready_timer is not None and self._ready_timer.active():
            self._ready_timer.cancel()
        if self.watcher:
            self.watcher.stop()
        if self.port is not None:
            yield self.port.stopListening()
        for feature in reversed(self.features):
            if hasattr(feature, "stop"):
                try:
                    yield feature.stop()
                except Exception:
                    self.log.failure("stopping {feature}", feature=type(feature).__name__)
        for other in self.asterisks.servers[1:]:
            yield other.bulk_ami.stop()
            yield other.ami.stop()
        if self.bulk_ami is not self.ami:
            yield self.bulk_ami.stop()
        yield self.ami.stop()
        self.watchdog.stop()
        yield super().stopService()


def settle_memory() -> None:
    """
    Take what start-up loaded (modules, the routing, the caller index) out
    of the garbage collector's full passes. Those objects live as long as
    the server; scanning them made each full pass take tens of
    milliseconds (about 70 ms with 200,000 households), a stall for every
    call in progress, a #9 among them, several times a minute on a busy
    hotline. Whatever is loaded later (a reloaded routing) is collected
    as usual.
    """
    gc.collect()
    gc.freeze()


def build(settings, reactor=None, *, settle=None, notifier=None, watchdog_interval=None,
          features=None) -> SwitchboardService:
    """
    The server with the installed features (or C{features}, each an
    L{features_module.IFeature}), their services started in that order.
    """
    features = features_module.installed() if features is None else features
    server = SwitchboardService(settings, reactor=reactor, settle=settle, notifier=notifier,
                                watchdog_interval=watchdog_interval,
                                ami_events=features_module.ami_events(features))
    server.database.migrate()
    trunk = Trunk(server.reactor)
    server.asterisks.subscribe("Hangup",
                               lambda event: trunk.note_hangup(event.get("Uniqueid", "")))
    core = features_module.Core(settings=settings, database=server.database, ami=server.ami,
                                reactor=server.reactor, bulk_ami=server.bulk_ami,
                                trunk=trunk, services=server.features,
                                asterisks=server.asterisks)
    for feature in features:
        running = feature.make_service(core)
        stray = set(running.handlers) - set(feature.agi_scripts)
        if stray:
            raise features_module.FeatureError(
                f"feature {feature.name!r} serves AGI scripts it does not declare: "
                f"{', '.join(sorted(stray))}")
        server.add_feature(running)
    observe(server)
    return server


def observe(server) -> None:
    """/metrics and /healthz for C{server} (L{switchboard.observe}), once its features are in."""
    from switchboard.observe.service import ObserveService
    ObserveService(server, server.settings.http).setServiceParent(server)


def log_observer(out, *, debug: bool = False):
    """The server's log: text lines to C{out}, info and above unless C{debug}."""
    return LineLogObserver(out, LogLevel.debug if debug else LogLevel.info)


def run(settings, *, debug: bool = False) -> int:
    """
    Run the server until SIGTERM or Ctrl-C; SIGHUP reloads the
    configuration. Under systemd it notifies and feeds the watchdog the
    unit asks for (C{NOTIFY_SOCKET}, C{WATCHDOG_USEC}).
    """
    from twisted.internet import reactor
    from switchboard import systemd
    globalLogBeginner.beginLoggingTo([log_observer(sys.stdout, debug=debug)],
                                     redirectStandardIO=False)
    # Killed by the watchdog (SIGABRT), the log shows where every thread was.
    faulthandler.enable(sys.stderr, all_threads=True)
    server = build(settings, reactor, settle=settle_memory,
                   notifier=systemd.Notifier.from_environment(),
                   watchdog_interval=systemd.watchdog_interval())
    outcome = {"code": 0}

    def start():
        d = defer.maybeDeferred(server.startService)

        def failed(failure):
            Logger().failure("switchboard could not start", failure)
            outcome["code"] = 1
            reactor.stop()

        d.addCallbacks(lambda _: reactor.addSystemEventTrigger(
            "before", "shutdown", server.stopService), failed)

    signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(server.reload))
    reactor.callWhenRunning(start)
    reactor.run()
    return outcome["code"]
