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
from switchboard.observe.web import site
from switchboard.routing.store import RoutingStore


def attach(metrics: Metrics, server) -> None:
    """
    Connect C{metrics} to C{server}'s parts (a L{SwitchboardService}): its
    AMI client and FastAGI factory, and whatever its features hold: routing
    stores, call logs, alarm recorders (anything with C{open_alarm} and
    C{listeners}) and their write-behinds (their C{writer}). Found by
    looking, so that a feature needs nothing of the metrics.
    """
    metrics.watch_ami(server.ami)
    metrics.watch_fastagi(server.factory, lambda: fastagi_listening(server))
    for feature in server.features:
        for part in vars(feature).values():
            if isinstance(part, RoutingStore):
                metrics.watch_routing(part)
            elif isinstance(part, CallLog):
                metrics.watch_calls(part)
            elif callable(getattr(part, "open_alarm", None)) and \
                    isinstance(getattr(part, "listeners", None), Listeners):
                metrics.watch_alarms(part)
            writer = getattr(part, "writer", None)
            if isinstance(writer, WriteBehind):
                metrics.watch_writer(writer.journal.name, writer)


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
        attach(self.metrics, server)
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
            self.port = self.reactor.listenTCP(http.port, site(self.metrics, self.health,
                                                               pages(self.server)),
                                               interface=http.listen)
        except CannotListenError as e:
            self.log.critical("HTTP: cannot listen on {host}:{port} ({error}): no /metrics "
                              "and /healthz; calls are served as usual",
                              host=http.listen, port=http.port, error=e.socketError)
            return
        self.log.info("HTTP on {host}:{port}: /metrics, /healthz", host=http.listen,
                      port=self.port.getHost().port if hasattr(self.port, "getHost")
                      else http.port)

    def stopService(self):
        super().stopService()
        self.lag.stop()
        port, self.port = self.port, None
        if port is not None:
            return defer.maybeDeferred(port.stopListening)
        return None
