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


@dataclass(frozen=True)
class CallbackSettings:
    """C{callback: {prompt: TEXT}} in switchboard.yaml (optional)."""

    prompt: str = PROMPT


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
                                data.where("callback"), allowed={"prompt"})
        prompt = check.typed(section, "prompt", str, "callback.prompt", PROMPT)
        if not prompt.strip():
            check.add(section.where("prompt"), "callback.prompt", "is empty",
                      "the sentence a resident hears after dialling *0")
            prompt = PROMPT
        return CallbackSettings(prompt=prompt)

    def add_commands(self, subparsers) -> None:
        from callback import cli
        cli.register(subparsers)

    def make_service(self, core):
        from callback.service import CallbackService, make_speech
        settings = core.settings
        return CallbackService(core.database, settings.numbers,
                               settings.section(self.name).prompt,
                               speech=make_speech(settings.speech, core.reactor),
                               reactor=core.reactor)


feature = Callback()
