"""
The hotline's declaration (L{switchboard.features.IFeature}), named by the
entry point C{switchboard.features: hotline}. Cheap to import: the handler,
the routing store and the commands are imported when used.
"""

from __future__ import annotations

from dataclasses import dataclass

from zope.interface import implementer

from switchboard.features import IFeature


@dataclass(frozen=True)
class HotlineSettings:
    """The hotline's keys of switchboard.yaml."""

    #: The routing file (menus, departments, hours), absolute.
    routing: str


@implementer(IFeature)
class Hotline:
    name = "hotline"
    agi_scripts = ("hotline",)
    ami_events = ()
    migrations = "switchboard.hotline.migrations"
    settings_keys = ("routing",)
    dialplan_contexts = ("switchboard-hotline",)

    def read_settings(self, data, check, resolve) -> HotlineSettings:
        return HotlineSettings(
            routing=resolve(check.typed(data, "routing", str, "routing", "routing.yaml")))

    def add_commands(self, subparsers) -> None:
        from switchboard.hotline import cli
        cli.register(subparsers)

    def make_service(self, core):
        from switchboard.hotline.feature import HotlineFeature
        return HotlineFeature(core.settings, core.database, reactor=core.reactor)


feature = Hotline()
