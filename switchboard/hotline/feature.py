"""The hotline as a part of the running server (see L{switchboard.service})."""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from switchboard.hotline.desk import CallDesk
from switchboard.calllog import CallLog
from switchboard.features import IFeatureService
from switchboard.journal import Journal
from switchboard.hotline.handler import HotlineHandler
from switchboard.routing.router import local_time
from switchboard.routing.schedule import missing_holidays_notice
from switchboard.routing.store import RoutingStore
from switchboard.yamlconf import ConfigError

#: Seconds call records gather before they are written: one transaction
#: for many calls on a busy hotline, and a record on disk within a moment.
CALL_LOG_DELAY = 0.2

#: Seconds between looks at whether the routing lists the holidays due
#: (this year's, and from November next year's): a year turns without a
#: reload, and a reminder a day is what the log's readers need.
CALENDAR_CHECK_EVERY = 24 * 3600.0


def make_speech(settings, reactor=None, *, log=None):
    """
    The L{switchboard.speech.Speech} of C{settings.speech}, or L{None}
    (logged) when it cannot be made: text prompts then play their fallback
    sounds. Menus are public, so their renderings are readable by all
    (Asterisk reads them as its own user).
    """
    config = getattr(settings, "speech", None)
    if config is None:
        return None
    from switchboard.speech import Speech
    try:
        speech = Speech.from_settings(config, reactor=reactor, mode=0o644)
    except Exception as e:
        (log or HotlineFeature.log).error(
            "speech: {error}: text prompts play their fallback sounds", error=e)
        return None
    if not speech.available:
        (log or HotlineFeature.log).warn(
            "speech: {why}: text prompts play their fallback sounds",
            why=speech.unavailable_reason)
    return speech


@implementer(IFeatureService)
class HotlineFeature:
    """Serves AGI script C{hotline} from the routing file, reloading it when it changes."""

    log = Logger()

    def __init__(self, settings, database, *, reactor=None, speech=None):
        """
        @param speech: a L{switchboard.speech.Speech} for the text prompts;
            by default one made from C{settings.speech} (L{make_speech}).
        """
        if reactor is None:
            from twisted.internet import reactor
        self.settings = settings
        self.clock = reactor
        self.speech = speech if speech is not None else make_speech(settings, reactor)
        self.store = RoutingStore(settings.routing, settings.numbers,
                                  trunks=settings.trunks.keys(), reactor=reactor,
                                  speech=self.speech)
        journal = Journal(settings.journal, "calls") if getattr(settings, "journal", "") else None
        self.call_log = CallLog(database, journal, delay=CALL_LOG_DELAY, clock=reactor)
        self.handler = HotlineHandler(self.store, settings.dialer, self.call_log, settings.tz,
                                      clock=reactor, speech=self.speech)
        self.handlers = {"hotline": self.handler}
        #: What the duty board reads of the calls (L{switchboard.duty.ICallDesk}).
        self.desk = CallDesk(self.call_log, database)
        self.watched = (settings.routing,)
        self._calendar_check = task.LoopingCall(self.check_calendar)
        self._calendar_check.clock = reactor

    def start(self):
        # The journal replayed (calls it held are written) once the database
        # answers; calls are served meanwhile, their records waiting.
        self.call_log.start()
        try:
            self.store.load()  # the store logs what is in force or what was refused
        except ConfigError:
            # No routing at all: calls end with SWITCHBOARD_RESULT=ERROR and the
            # dialplan sends them to the operator until the file is fixed.
            self.log.critical("no routing in force: hotline calls go to the dialplan's "
                              "operator until {path} is fixed", path=self.settings.routing)
        self._calendar_check.start(CALENDAR_CHECK_EVERY, now=True)

    def reload(self, path=None):
        generation = self.store.generation
        d = self.store.reload()

        def swapped(_):
            if self.store.generation != generation:
                self.check_calendar()

        d.addCallbacks(swapped, lambda f: f.trap(ConfigError) and None)
        return d

    def check_calendar(self) -> tuple:
        """
        Warn in the log when the routing in force lists no holidays for a
        year that is due (see L{Calendar.missing_years}); return those years.
        """
        routing = self.store.current
        if routing is None:
            return ()
        now = datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
        today = local_time(routing, now, self.settings.tz).date()
        missing = routing.calendar.missing_years(today)
        if missing:
            self.log.warn("routing {path}: {notice}", path=routing.path,
                          notice=missing_holidays_notice(missing))
        return missing

    def ami_connected(self):
        return None  # the hotline keeps nothing in Asterisk

    def stop(self):
        if self._calendar_check.running:
            self._calendar_check.stop()
        return self.call_log.stop()
