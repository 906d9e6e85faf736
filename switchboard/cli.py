"""
The C{switchboard} command.

  switchboard run                  the server (FastAGI + AMI)
  switchboard check [FILE]         validate a routing file
  switchboard route --at ... --digits ...   where a hotline call would go, and why
  switchboard calls                recent hotline calls
  switchboard households ...       the #9 registry (import, add, show, list, export)
  switchboard neighbours set ...   a household's ring group
  switchboard alarms [show ID]     alarms and their timelines
  switchboard check-config [FILE]  validate switchboard.yaml
  switchboard check-dialplan [FILE]  check the dialplan's fallbacks and targets
  switchboard say "TEXT" --to FILE.wav  render a prompt to listen to it
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, datetime

from switchboard import settings as settings_module
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

    def database(self):
        if self._database is None:
            from switchboard.storage import Database
            self._database = Database(self.settings.database)
            self._database.migrate()
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
    for module in ("switchboard.hotline.cli", "alarm.cli", "switchboard.speech.cli"):
        try:
            __import__(module, fromlist=["register"]).register(sub)
        except ImportError as e:  # a domain missing from a partial install
            print(f"switchboard: {module} unavailable: {e}", file=sys.stderr)
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
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
