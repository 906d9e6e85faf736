"""
Features: what the core knows of the hotline, the #9 alarm and whatever
comes next, and how it finds them.

A feature is declared by one object providing L{IFeature}, listed in the
entry-point group C{switchboard.features} of its distribution's
C{setup.cfg}::

    [options.entry_points]
    switchboard.features =
        callback = callback.plugin:feature

As Twisted's C{twistd} plugins (C{IServiceMaker}) do, the declaration is
cheap to import and says what the feature brings: its AGI scripts, the AMI
events it reads, its schema migrations, its keys of C{switchboard.yaml},
its dialplan contexts and its commands. L{IFeature.make_service} builds
the running part, an L{IFeatureService} (handlers, C{start}, C{stop},
C{reload}, ...), from the L{Core}: the settings, the database, the AMI
client and the reactor.

The core (C{switchboard/}, C{switchboard/hotline/} aside) iterates
L{installed} and names no feature; a feature imports the core's public
modules and never another feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

from zope.interface import Attribute, Interface
from zope.interface.verify import verifyObject

GROUP = "switchboard.features"


class FeatureError(Exception):
    """An installed feature that cannot be used as declared; the message names it."""


class IFeature(Interface):
    """
    The declaration of one feature (the object its entry point names).
    Importing it must not start anything: the CLI, the settings loader,
    the migrations and the dialplan check read it without running a server.
    """

    name = Attribute("The feature's name (its entry point's): a word, e.g. C{'alarm'}.")
    agi_scripts = Attribute(
        "The FastAGI script names its service serves (C{agi://host/<script>}), a tuple; "
        "each is served by one feature only.")
    ami_events = Attribute(
        "The AMI event names its service subscribes to, a tuple: the server's AMI login "
        "asks for these only (every other event costs the reactor).")
    migrations = Attribute(
        "The dotted name of its migrations package (C{MODELS} and a C{versions/} folder: "
        "an Alembic branch named after the feature), or None for a feature without tables.")
    settings_keys = Attribute(
        "The top-level keys of switchboard.yaml it owns, a tuple (no two features share one).")
    dialplan_contexts = Attribute(
        "The dialplan contexts the server relies on being there for it (it hands calls "
        "to them or originates into them), a tuple; C{switchboard check-dialplan} "
        "reports a dialplan without them.")

    def read_settings(data, check, resolve):
        """
        Read its keys of switchboard.yaml and return its section (any object;
        the server reads it as C{settings.section(name)}, and its attributes
        as attributes of the settings).

        @param data: the whole file, a L{switchboard.yamlconf.LocatedDict}
            (read C{settings_keys} only).
        @param check: the L{switchboard.yamlconf.Checker} to report problems to
            (with file:line:column).
        @param resolve: makes a path relative to the configuration's folder absolute.
        """

    def add_commands(subparsers):
        """
        Add its subcommands to the C{switchboard} command (argparse
        C{subparsers}); each sets C{handler(args, context)} (see
        L{switchboard.cli.Context}). May add none.
        """

    def make_service(core):
        """Build its running part from the L{Core}: an L{IFeatureService}."""


class IFeatureService(Interface):
    """The running part of a feature, as the server drives it."""

    handlers = Attribute("A mapping, AGI script name -> handler(session) (see switchboard.agi).")
    watched = Attribute("Paths of the files it reads: a change calls reload(path).")

    def start():
        """Load and start (a Deferred, or None); the FastAGI port opens after."""

    def stop():
        """Stop, after the FastAGI port closed (a Deferred, or None)."""

    def reload(path=None):
        """Re-read C{path} (one of C{watched}) or all its files (SIGHUP); keep the last good."""

    def ami_connected():
        """The AMI link is (again) logged in: resynchronise what Asterisk keeps for it."""


@dataclass(frozen=True)
class Core:
    """
    What the core gives a feature to build its service on. The settings
    include every feature's section (L{switchboard.settings.Settings.section}).
    """

    settings: object  # switchboard.settings.Settings
    database: object  # switchboard.storage.Database (migrated)
    ami: object  # switchboard.ami.AMIClient
    reactor: object
    #: A second AMI session for bulk work (AstDB's read-back): Asterisk runs
    #: one session's actions one after another, so a read-back of 100,000
    #: keys on the main link would hold every Originate behind it. None:
    #: the main link.
    bulk_ami: object = None
    #: The trunk's lines every feature's calls share (switchboard.ringgroup.Trunk):
    #: urgent calls (a #9) always get one, normal ones (a broadcast) yield to them.
    trunk: object = None
    #: The running parts of every feature (complete once they start): for a
    #: feature that shows others' state through an interface of the core
    #: (the duty board: L{switchboard.duty}).
    services: tuple | list = ()
    #: Every Asterisk server (L{switchboard.ami.servers.AsteriskServers}), the
    #: main one (C{ami}) first; None: C{ami} is the only one.
    asterisks: object = None


def installed() -> list:
    """
    The declarations of the installed features, by name. A feature that
    cannot be imported raises (its ImportError is a bug to see, not a
    feature to skip), and so does one that does not provide L{IFeature}.
    """
    found = []
    for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        feature = entry.load()
        check(feature, entry.name)
        found.append(feature)
    scripts = {}
    keys = {}
    for feature in found:
        for script in feature.agi_scripts:
            if script in scripts:
                raise FeatureError(f"AGI script {script!r} is declared by features "
                                   f"{scripts[script]!r} and {feature.name!r}")
            scripts[script] = feature.name
        for key in feature.settings_keys:
            if key in keys:
                raise FeatureError(f"switchboard.yaml key {key!r} is declared by features "
                                   f"{keys[key]!r} and {feature.name!r}")
            keys[key] = feature.name
    return found


def check(feature, name: str | None = None) -> None:
    """Raise L{FeatureError} unless C{feature} provides L{IFeature} (under C{name})."""
    try:
        verifyObject(IFeature, feature)
    except Exception as e:
        raise FeatureError(f"feature {name or feature!r} does not provide IFeature: {e}") \
            from None
    if name is not None and feature.name != name:
        raise FeatureError(f"entry point {GROUP} {name!r} names a feature called "
                           f"{feature.name!r}")


def ami_events(features) -> tuple:
    """The AMI event names the features read, each once, in a stable order."""
    return tuple(sorted({event for feature in features for event in feature.ami_events}))


def dialplan_contexts(features) -> tuple:
    """The dialplan contexts the features rely on, in their order."""
    seen = []
    for feature in features:
        seen.extend(c for c in feature.dialplan_contexts if c not in seen)
    return tuple(seen)
