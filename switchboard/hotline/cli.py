"""
Staff commands of the hotline:

  switchboard check [FILE]                      validate a routing file
  switchboard route --at "YYYY-MM-DD HH:MM" --digits D [--caller N] [--file F]
                                                where a call would go, and why
  switchboard calls [--limit N]                 recent hotline calls

Each handler takes C{(args, context)} (see L{switchboard.cli.Context}) and
returns the exit code. None of them touches the running server.
"""

from __future__ import annotations

import sys
from datetime import datetime

from switchboard.calllog import CallLog, utc
from switchboard.routing import router, schema
from switchboard.routing.schedule import missing_holidays_notice
from switchboard.yamlconf import ConfigError
from switchboard.text import printable


def register(subparsers) -> None:
    """Add C{check}, C{route} and C{calls} to the C{switchboard} command."""
    check = subparsers.add_parser("check", help="validate a routing file (exit 0 if it is good)")
    check.add_argument("file", nargs="?", help="routing file (default: the configured one)")
    check.set_defaults(handler=check_command)

    route = subparsers.add_parser("route", help="show where a hotline call would go, and why")
    route.add_argument("--at", help='local time "YYYY-MM-DD HH:MM" (default: now)')
    route.add_argument("--digits", default="", help="keys the caller presses, e.g. 2 or 41 or 805")
    route.add_argument("--caller", help="the caller's number")
    route.add_argument("--file", help="routing file (default: the configured one)")
    route.set_defaults(handler=route_command)

    calls = subparsers.add_parser("calls", help="list recent hotline calls")
    calls.add_argument("--limit", type=int, default=20, help="how many (default: %(default)s)")
    calls.set_defaults(handler=calls_command)


def _load(path, context, speech=None):
    return schema.load(path, context.numbers, trunks=tuple(context.settings.trunks),
                       speech=speech)


def _speech(context):
    """
    The context's C{speech} if it has one (tests), else the service's, made
    from its settings (quietly L{None} when it cannot be made).
    """
    if hasattr(context, "speech"):
        return context.speech
    from twisted.logger import Logger
    from switchboard.hotline.feature import make_speech
    return make_speech(context.settings, log=Logger(observer=lambda event: None))


def _out(context):
    return getattr(context, "stdout", None) or sys.stdout


def _refused(error: ConfigError, path: str, verdict: str, out) -> int:
    for problem in error.problems:
        print(problem, file=out)
    print(f"{path}: {len(error.problems)} problem(s){verdict}", file=out)
    return 1


def check_command(args, context) -> int:
    out = _out(context)
    path = args.file or context.settings.routing
    speech = _speech(context)
    try:
        routing = _load(path, context, speech)
    except ConfigError as e:
        return _refused(e, path, ", not valid", out)
    texts = routing.texts()
    if texts and (speech is None or not speech.available):
        why = speech.unavailable_reason if speech is not None else "no speech engine"
        for prompt in texts.values():
            print(f"{prompt.where}: text cannot be rendered here ({why}): callers would "
                  f"hear {prompt.sound or prompt.fallback or 'nothing'}", file=out)
        print(f"{path}: {len(texts)} text prompt(s) cannot be spoken: install the speech "
              "engine (see the README)", file=out)
        return 1
    print(f"{path}: OK: {routing.summary()}" + (f", {len(texts)} text prompt(s)" if texts
                                                else ""), file=out)
    missing = routing.calendar.missing_years(context.today())
    if missing:
        print(f"{path}: note: {missing_holidays_notice(missing)}", file=out)
    return 0


def route_command(args, context) -> int:
    out = _out(context)
    if args.at:
        try:
            at = datetime.strptime(args.at.strip(), "%Y-%m-%d %H:%M")
        except ValueError:
            print(f"--at {args.at!r}: write the local time as \"YYYY-MM-DD HH:MM\"", file=out)
            return 2
    else:
        at = datetime.now(context.tz)
    if any(key not in "0123456789*#" for key in args.digits):
        print(f"--digits {args.digits!r}: keys are 0-9, * and #", file=out)
        return 2
    path = args.file or context.settings.routing
    try:
        routing = _load(path, context)
    except ConfigError as e:
        return _refused(e, path, ": fix them first", out)
    decision = router.route(routing, at, args.digits, args.caller, tz=context.tz,
                            numbers=context.numbers)
    print(decision.explain(), file=out)
    return 0


def calls_command(args, context) -> int:
    out = _out(context)
    database = context.database()
    with database.session() as session:
        records = CallLog.recent(session, max(1, args.limit))
    if not records:
        print("no hotline calls recorded", file=out)
        return 0
    for record in records:
        started = utc(record.started).astimezone(context.tz)
        ended = utc(record.ended)
        length = f"{(ended - utc(record.started)).total_seconds():.0f} s" if ended else "-"
        # The caller ID is the caller's choice: no control characters on a terminal.
        print(f"{started:%Y-%m-%d %H:%M:%S}  {printable(record.caller or 'unknown'):<16} "
              f"{record.outcome:<12} {printable(record.destination or '-')}  ({length})",
              file=out)
        steps = record.steps
        if steps:
            print("    " + printable(" | ".join(steps)), file=out)
    return 0
