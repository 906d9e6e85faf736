"""
The HTTP port of the running server (C{http:} in switchboard.yaml):
C{/metrics} and C{/healthz}, and what connects the metrics to the parts.
"""

from __future__ import annotations

from twisted.application import service
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from switchboard.calllog import CallLog
from switchboard.journal import WriteBehind
from switchboard.listeners import Listeners
from switchboard.observe.health import Health
from switchboard.observe.lag import ReactorLag
from switchboard.observe.metrics import Metrics
from switchboard.observe.status import Status
from switchboard.reloads import LoadRecord
from switchboard.observe.web import site
from switchboard.routing.store import RoutingStore


def attach(metrics: Metrics, server, status: Status | None = None) -> None:
    """
    Connect C{metrics} (and C{status}) to C{server}'s parts (a
    L{SwitchboardService}): its AMI client and FastAGI factory, and
    whatever its features hold: routing stores, call logs, alarm recorders
    (anything with C{open_alarm} and C{listeners}) and their write-behinds
    (their C{writer}), the load records of their files (L{LoadRecord}), an
    AstDB copy (C{resync} and C{synced_at}), a registry watcher (C{check}
    and C{refreshes}), a voicemail watcher (C{poll} and C{recorded}).
    Found by looking (L{kind_of}), so that a feature needs nothing of the
    metrics.
    """
    metrics.watch_ami(server.ami)
    if len(getattr(server, "asterisks", ())) > 1:
        metrics.watch_asterisks(server.asterisks)
    metrics.watch_fastagi(server.factory, lambda: fastagi_listening(server))
    if status is not None:
        status.watch_ami(server.ami)
        if len(getattr(server, "asterisks", ())) > 1:
            status.watch_asterisks(server.asterisks)
    for feature in server.features:
        for part in vars(feature).values():
            kind = kind_of(part)
            if kind is not None:
                getattr(metrics, f"watch_{kind}")(part)
                if status is not None and hasattr(status, f"watch_{kind}"):
                    getattr(status, f"watch_{kind}")(part)
            writer = getattr(part, "writer", None)
            if isinstance(writer, WriteBehind):
                metrics.watch_writer(writer.journal.name, writer)
                if status is not None:
                    status.watch_writer(writer.journal.name, writer)


def kind_of(part):
    """What C{part} of a feature is to the metrics (their C{watch_<kind>}), or L{None}."""
    if isinstance(part, RoutingStore):
        return "routing"
    if isinstance(part, LoadRecord):
        return "loads"
    if isinstance(part, CallLog):
        return "calls"
    if callable(getattr(part, "resync", None)) and hasattr(part, "synced_at"):
        return "astdb"
    if callable(getattr(part, "check", None)) and isinstance(getattr(part, "refreshes", None),
                                                             dict):
        return "registry"
    if callable(getattr(part, "poll", None)) and isinstance(getattr(part, "recorded", None), int):
        return "voicemail"
    if callable(getattr(part, "open_alarm", None)) and \
            isinstance(getattr(part, "listeners", None), Listeners):
        return "alarms"
    return None


def pages(server) -> dict:
    """The pages the features serve on the HTTP port (their C{pages}: name -> resource)."""
    found = {}
    for feature in server.features:
        found.update(getattr(feature, "pages", None) or {})
    return found


def fastagi_listening(server) -> bool:
    """Whether C{server}'s FastAGI port is open (and not closing)."""
    port = server.port
    return (port is not None and getattr(port, "connected", True)
            and not getattr(port, "disconnecting", False))


class ObserveService(service.Service):
    """
    Serves C{/metrics} and C{/healthz} for C{server} on C{settings.http}
    (loopback by default), and measures the reactor's lag. Started with
    the server (a child service): before the FastAGI port opens C{/healthz}
    answers 503. A port that cannot be opened is logged and the server
    goes on without it: calls and alarms come first.
    """

    log = Logger()

    def __init__(self, server, settings, *, reactor=None):
        self.server = server
        self.settings = settings
        self.reactor = reactor or server.reactor
        self.metrics = Metrics()
        self.lag = ReactorLag(self.reactor, self.metrics.reactor_lag.observe)
        #: The health lights and the routing at a glance (C{/status.json}).
        self.status = Status(self.reactor, getattr(getattr(server, "settings", None), "tz", None))
        attach(self.metrics, server, self.status)
        self.health = Health(lambda: fastagi_listening(server), self.lag, server.ami,
                             self.metrics.readings.writers)
        self.port = None

    def startService(self):
        super().startService()
        self.lag.start()
        http = self.settings
        if not http.enabled:
            return
        try:
            self.port = self.reactor.listenTCP(http.port, site(self.metrics, self.health, self.status,
                                                               pages=pages(self.server)),
                                               interface=http.listen)
        except CannotListenError as e:
            self.log.critical("HTTP: cannot listen on {host}:{port} ({error}): no /metrics "
                              "and /healthz; calls are served as usual",
                              host=http.listen, port=http.port, error=e.socketError)
            return
        self.log.info("HTTP on {host}:{port}: /metrics, /healthz, /status.json", host=http.listen,
                      port=self.port.getHost().port if hasattr(self.port, "getHost")
                      else http.port)

    def stopService(self):
        super().stopService()
        self.lag.stop()
        port, self.port = self.port, None
        if port is not None:
            return defer.maybeDeferred(port.stopListening)
        return None
