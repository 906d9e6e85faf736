"""
The callback's declaration (L{switchboard.features.IFeature}), named by the
entry point C{switchboard.features: callback} in setup.cfg.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from zope.interface import implementer

from switchboard import yamlconf
from switchboard.features import IFeature

#: What a resident hears once the request is recorded (Mandarin).
PROMPT = "您的回电请求已经收到，工作人员会尽快给您回电。谢谢！"
#: The dialplan snippet to #include after switchboard.conf.
DIALPLAN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback.conf")


#: Where Asterisk keeps voicemail (its C{astspooldir}/voicemail), as this host sees it.
VOICEMAIL_SPOOL = "/var/spool/asterisk/voicemail"
#: The voicemail contexts of the offices' mailboxes (the routing's C{voicemail_context}).
VOICEMAIL_CONTEXTS = ("switchboard",)


@dataclass(frozen=True)
class CallbackSettings:
    """
    C{callback:} in switchboard.yaml (optional): C{prompt} (what a C{*0}
    caller hears), C{voicemail_spool} and C{voicemail_contexts} (whose
    messages become requests; C{[]} for none).
    """

    prompt: str = PROMPT
    voicemail_spool: str = VOICEMAIL_SPOOL
    voicemail_contexts: tuple = VOICEMAIL_CONTEXTS


@implementer(IFeature)
class Callback:
    name = "callback"
    agi_scripts = ("callback",)
    ami_events = ()
    migrations = "callback.migrations"
    settings_keys = ("callback",)
    #: None the server relies on: it neither originates into nor hands calls
    #: to [switchboard-callback]; the residents' context Goto()s it, and
    #: check-dialplan reports that Goto when the snippet is not included.
    dialplan_contexts = ()

    def read_settings(self, data, check, resolve) -> CallbackSettings:
        section = check.mapping(data.get("callback", yamlconf.LocatedDict()), "callback",
                                data.where("callback"),
                                allowed={"prompt", "voicemail_spool", "voicemail_contexts"})
        prompt = check.typed(section, "prompt", str, "callback.prompt", PROMPT)
        if not prompt.strip():
            check.add(section.where("prompt"), "callback.prompt", "is empty",
                      "the sentence a resident hears after dialling *0")
            prompt = PROMPT
        spool = check.typed(section, "voicemail_spool", str, "callback.voicemail_spool",
                            VOICEMAIL_SPOOL)
        contexts = check.typed(section, "voicemail_contexts", list,
                               "callback.voicemail_contexts", list(VOICEMAIL_CONTEXTS))
        for i, name in enumerate(contexts):
            if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
                check.add(section.where("voicemail_contexts"), f"callback.voicemail_contexts[{i}]",
                          f"{name!r} is not a voicemail context", "e.g. switchboard")
                contexts = list(VOICEMAIL_CONTEXTS)
                break
        return CallbackSettings(prompt=prompt, voicemail_spool=resolve(spool),
                                voicemail_contexts=tuple(contexts))

    def add_commands(self, subparsers) -> None:
        from callback import cli
        cli.register(subparsers)

    def make_service(self, core):
        from callback.service import CallbackService, make_speech
        settings = core.settings
        mine = settings.section(self.name)
        return CallbackService(core.database, settings.numbers, mine.prompt,
                               speech=make_speech(settings.speech, core.reactor),
                               reactor=core.reactor, voicemail_spool=mine.voicemail_spool,
                               voicemail_contexts=mine.voicemail_contexts,
                               ami=core.ami, dialer=settings.dialer, services=core.services)


feature = Callback()
