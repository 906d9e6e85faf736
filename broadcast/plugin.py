"""
The broadcast's declaration (L{switchboard.features.IFeature}), named by the
entry point C{switchboard.features: broadcast} in setup.cfg. Cheap to
import: the dispatcher, the handler and the commands are imported when used.
"""

from __future__ import annotations

import os

from zope.interface import implementer

from switchboard.features import IFeature

#: The dialplan snippet to #include after switchboard.conf.
DIALPLAN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "broadcast.conf")


@implementer(IFeature)
class Broadcast:
    name = "broadcast"
    agi_scripts = ("broadcast",)
    #: Newchannel names a leg's channel, Hangup tells busy apart and ends an
    #: answered call, OriginateResponse is each call's outcome.
    ami_events = ("Newchannel", "Hangup", "OriginateResponse")
    migrations = "broadcast.migrations"
    settings_keys = ("broadcast",)
    #: The server originates every call into it.
    dialplan_contexts = ("switchboard-broadcast",)

    def read_settings(self, data, check, resolve):
        from broadcast import config
        return config.read(data, check)

    def add_commands(self, subparsers) -> None:
        from broadcast import cli
        cli.register(subparsers)

    def make_service(self, core):
        from broadcast.service import BroadcastService
        return BroadcastService(core, core.settings.section(self.name))


feature = Broadcast()
