"""The hotline as a part of the running server (see L{switchboard.service})."""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from switchboard.calllog import CallLog
from switchboard.hotline.handler import HotlineHandler
from switchboard.routing.store import RoutingStore
from switchboard.yamlconf import ConfigError

#: Seconds call records gather before they are written: one transaction
#: for many calls on a busy hotline, and a record on disk within a moment.
CALL_LOG_DELAY = 0.2


class HotlineFeature:
    """Serves AGI script C{hotline} from the routing file, reloading it when it changes."""

    log = Logger()

    def __init__(self, settings, database, *, reactor=None):
        self.settings = settings
        self.store = RoutingStore(settings.routing, settings.numbers,
                                  trunks=settings.trunks.keys(), reactor=reactor)
        self.call_log = CallLog(database, delay=CALL_LOG_DELAY, clock=reactor)
        self.handler = HotlineHandler(self.store, settings.dialer, self.call_log, settings.tz,
                                      clock=reactor)
        self.handlers = {"hotline": self.handler}
        self.watched = (settings.routing,)

    def start(self):
        try:
            self.store.load()  # the store logs what is in force or what was refused
        except ConfigError:
            # No routing at all: calls end with SWITCHBOARD_RESULT=ERROR and the
            # dialplan sends them to the operator until the file is fixed.
            self.log.critical("no routing in force: hotline calls go to the dialplan's "
                              "operator until {path} is fixed", path=self.settings.routing)

    def reload(self, path=None):
        d = self.store.reload()
        d.addErrback(lambda f: f.trap(ConfigError) and None)
        return d

    def stop(self):
        return defer.maybeDeferred(self.call_log.flush)
