"""The broadcast's running part (L{switchboard.features.IFeatureService})."""

from __future__ import annotations

from twisted.logger import Logger
from zope.interface import implementer

from switchboard import election
from switchboard.features import IFeatureService
from switchboard.ringgroup import AMICallPlacer, RingEngine
from switchboard.speech import Speech
from switchboard.texting import channel_from_settings

from broadcast.dispatcher import Dispatcher
from broadcast.handler import BroadcastHandler


@implementer(IFeatureService)
class BroadcastService:
    """
    Serves AGI script C{broadcast} and runs the campaigns (L{Dispatcher}).
    Its calls hold normal lines of the core's trunk: they yield to a #9's.
    """

    log = Logger()
    watched = ()

    def __init__(self, core, section, *, speech=False):
        settings = core.settings
        reactor = core.reactor
        trunk = core.trunk
        if trunk is not None and section.trunk_lines is not None:
            trunk.lines = section.trunk_lines
        placer = AMICallPlacer(core.ami)
        if trunk is not None:
            placer = trunk.placer(placer, urgent=False,
                                  on_yield=lambda channel_id: self.dispatcher.yield_line(
                                      channel_id))
        self.engine = RingEngine(placer, reactor)
        if speech is False:
            # A notice is public: Asterisk reads it as any user.
            speech = Speech.usable(settings.speech, reactor=reactor, mode=0o644, log=self.log,
                                   instead="only recorded notices can be sent")
        self.speech = speech
        self.dispatcher = Dispatcher(
            core.database, self.engine, section, settings.dialer, settings.tz, clock=reactor,
            speech=self.speech, trunk=trunk,
            caller_number=section.caller_number or settings.hotline_number,
            texts=channel_from_settings(settings, core.ami, reactor),
            fastagi=getattr(settings.agi, "advertise", ""))
        # Several instances may share a PostgreSQL: one runs the campaigns,
        # and when it dies (or loses the database) the next elected takes them
        # up from the database (calls up then are called again, who pressed 1
        # is not). On SQLite this instance always runs them.
        self.elector = election.for_database(core.database, "switchboard broadcast campaigns",
                                             reactor or _reactor())
        self.elector.listeners.append(self._leading)
        self.handler = BroadcastHandler(self.dispatcher, plays=section.plays)
        self.handlers = {"broadcast": self.handler}
        core.ami.subscribe("Newchannel", lambda event: self.dispatcher.note_channel(
            event.get("Uniqueid", ""), event.get("Channel", "")))
        core.ami.subscribe("Hangup", lambda event: self.dispatcher.note_hangup(
            event.get("Uniqueid", "")))

    def start(self):
        self.elector.start()

    def _leading(self, leading: bool) -> None:
        if not leading:
            self.log.warn("broadcast: another instance runs the campaigns now")
            self.dispatcher.stop()
            return
        d = self.dispatcher.start()
        d.addErrback(lambda f: self.log.failure(
            "broadcast: cannot read the campaigns; none is called until this instance "
            "leads again", f))

    def stop(self):
        self.dispatcher.stop()
        if self.dispatcher.texts is not None:
            self.dispatcher.texts.stop()
        return self.elector.stop()

    def reload(self, path=None):
        return None

    def ami_connected(self):
        return None


def _reactor():
    from twisted.internet import reactor
    return reactor
