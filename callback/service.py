"""The callback's running part (L{switchboard.features.IFeatureService})."""

from __future__ import annotations

from twisted.logger import Logger
from zope.interface import implementer

from switchboard.features import IFeatureService
from switchboard.speech import Speech

from callback.handler import CallbackHandler
from callback.desk import RequestDesk
from callback.requests import Requests
from callback.voicemail import VoicemailWatcher


def make_speech(described, reactor):
    """The renderer of the core's C{speech:} settings, or None (logged): stock sound only."""
    # A public sentence: Asterisk reads it as any user.
    return Speech.usable(described, reactor=reactor, mode=0o644, log=CallbackService.log,
                         instead="*0 confirms with a stock sound")


@implementer(IFeatureService)
class CallbackService:
    """
    Serves AGI script C{callback}; renders the confirmation at start (in the
    background: calls meanwhile hear the stock sound); turns the voicemails
    left at the offices into requests (L{VoicemailWatcher}).

    @param speech: a L{Speech}, or None for the stock sound only.
    @param voicemail_spool: Asterisk's voicemail spool on this host (None:
        voicemails are not watched).
    @ivar requests: the L{Requests} (its C{snapshot()} is what a board shows).
    """

    log = Logger()
    watched = ()

    def __init__(self, database, numbers, prompt: str, *, speech=None, reactor=None,
                 voicemail_spool=None, voicemail_contexts=(), ami=None, dialer=None,
                 services=()):
        self.prompt = prompt
        self.speech = speech
        self.requests = Requests(database, clock=reactor)
        #: What the duty board reads and does (L{switchboard.duty.IRequestDesk}).
        self.desk = RequestDesk(self.requests, ami, dialer, services)
        self.voicemail = None
        if voicemail_spool and voicemail_contexts:
            self.voicemail = VoicemailWatcher(self.requests, voicemail_spool, voicemail_contexts,
                                              numbers, clock=reactor)
        self.handler = CallbackHandler(self.requests, numbers, confirmation=self._confirmation,
                                       clock=reactor)
        self.handlers = {"callback": self.handler}
        self.rendering = None

    def _confirmation(self):
        return self.speech.sound_name(self.prompt) if self.speech is not None else None

    def start(self):
        if self.speech is not None:
            self.rendering = self.speech.render(self.prompt)
            self.rendering.addErrback(lambda f: self.log.failure(
                "callback prompt not rendered; *0 confirms with a stock sound", f))
        if self.voicemail is not None:
            self.voicemail.start()
        return None

    def stop(self):
        if self.voicemail is not None:
            self.voicemail.stop()
        return None

    def reload(self, path=None):
        return None

    def ami_connected(self):
        return None
