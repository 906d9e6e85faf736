"""
The #9 alarm's declaration (L{switchboard.features.IFeature}), named by the
entry point C{switchboard.features: alarm}. Cheap to import: the
coordinator, the handlers and the commands are imported when used.
"""

from __future__ import annotations

from dataclasses import dataclass

from zope.interface import implementer

from switchboard.features import IFeature


@dataclass(frozen=True)
class AlarmSettings:
    """The alarm's keys of switchboard.yaml."""

    #: The alarm file (duty phones, timeouts, prompts), absolute.
    alarm: str
    #: A households CSV the demo imports (absolute), or None.
    households: str | None = None


@implementer(IFeature)
class Alarm:
    name = "alarm"
    agi_scripts = ("alarm", "alarm-responder")
    #: Newchannel and Hangup follow each neighbour's leg; OriginateResponse
    #: is the outcome of the coordinator's Originate.
    ami_events = ("Newchannel", "Hangup", "OriginateResponse")
    migrations = "alarm.migrations"
    settings_keys = ("alarm", "households")
    dialplan_contexts = ("switchboard-alarm", "switchboard-alarm-responder",
                         "switchboard-alarm-ring", "switchboard-alarm-leg",
                         "switchboard-alarm-lookup")
    #: Context -> the AstDB family it must read (C{switchboard check-dialplan}):
    #: the server writes the neighbours there (L{alarm.astdb}), and deletes the
    #: older family a dialplan not updated would still read.
    dialplan_astdb = {"switchboard-alarm-lookup": "swb_ring"}

    def read_settings(self, data, check, resolve) -> AlarmSettings:
        households = check.typed(data, "households", str, "households", None)
        return AlarmSettings(
            alarm=resolve(check.typed(data, "alarm", str, "alarm", "alarm.yaml")),
            households=resolve(households) if households else None)

    def add_commands(self, subparsers) -> None:
        from alarm import cli
        cli.register(subparsers)

    def make_service(self, core):
        from alarm.feature import AlarmFeature
        return AlarmFeature(core.settings, core.database, core.ami, reactor=core.reactor,
                            bulk_ami=core.bulk_ami, trunk=core.trunk,
                            asterisks=getattr(core, "asterisks", None))


feature = Alarm()
