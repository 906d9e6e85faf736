"""
The C{switchboard} command.

  switchboard run                  the server (FastAGI + AMI)
  switchboard check-config [FILE]  validate switchboard.yaml
  switchboard check-dialplan [FILE]  check the dialplan's fallbacks and targets
  switchboard say "TEXT" --to FILE.wav  render a prompt to listen to it
  switchboard db current|upgrade   the database's schema (migrations)
  switchboard status [--json]      the running server's health lights and routing

and each installed feature's commands (L{switchboard.features}), e.g. the
hotline's C{check}, C{route}, C{calls}; the alarm's C{households},
C{neighbours}, C{alarms}; the callback's C{callbacks}.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, datetime

from switchboard import features
from switchboard import settings as settings_module
from switchboard.migrations import SchemaError
from switchboard.migrations import cli as db_cli
from switchboard.observe import cli as status_cli
from switchboard.speech import cli as speech_cli
from switchboard.yamlconf import ConfigError

DEFAULT_CONFIG = os.environ.get("SWITCHBOARD_CONFIG", "config/switchboard.yaml")


class Context:
    """What a subcommand needs, built on first use."""

    def __init__(self, config_path: str):
        self.config_path = config_path
        self._settings = None
        self._database = None

    @property
    def settings(self):
        if self._settings is None:
            self._settings = settings_module.load(self.config_path)
        return self._settings

    @property
    def numbers(self):
        return self.settings.numbers

    @property
    def dialer(self):
        return self.settings.dialer

    @property
    def tz(self):
        return self.settings.tz

    def today(self) -> date:
        """Today's date in the service's time zone."""
        return datetime.now(self.tz).date()

    def database(self, *, migrate: bool = True):
        """The configured L{Database}, its schema upgraded unless C{migrate} is false."""
        if self._database is None:
            from switchboard.storage import Database
            self._database = Database(self.settings.database)
            self._migrated = False
        if migrate and not self._migrated:
            from switchboard import migrations
            migrations.upgrade(self._database.engine)
            self._migrated = True
        return self._database


def _run(args, context) -> int:
    from switchboard.service import run
    return run(context.settings, debug=args.debug)


def _check_config(args, context) -> int:
    path = args.file or context.config_path
    settings_module.load(path)
    print(f"{path}: OK")
    return 0


def _check_dialplan(args, context) -> int:
    from switchboard.dialplan_check import DIALPLANS, check
    path = args.file or f"{DIALPLANS}/switchboard.conf"
    problems = check(path)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{path}: OK")
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__.split("\n")[1].strip()
                                     or "community switchboard and #9 alarm server",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help="service configuration (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    run = sub.add_parser("run", help="run the server (FastAGI listener + AMI client)")
    run.add_argument("--debug", action="store_true", help="log protocol details too")
    run.set_defaults(handler=_run)
    check = sub.add_parser("check-config", help="validate the service configuration")
    check.add_argument("file", nargs="?")
    check.set_defaults(handler=_check_config)
    dialplan = sub.add_parser("check-dialplan", help="check a dialplan file (fallbacks, targets)")
    dialplan.add_argument("file", nargs="?")
    dialplan.set_defaults(handler=_check_dialplan)
    db_cli.register(sub)
    for feature in features.installed():  # an import error of one is a bug: it surfaces
        feature.add_commands(sub)
    speech_cli.register(sub)
    status_cli.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    context = Context(args.config)
    try:
        return int(args.handler(args, context) or 0)
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return 1
    except SchemaError as e:
        print(f"switchboard: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
