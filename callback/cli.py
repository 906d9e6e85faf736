"""
The staff's command:

  switchboard callbacks [--limit N]    the latest "call me back" requests
"""

from __future__ import annotations

import sys

from switchboard.text import printable

from callback.requests import Requests


def register(subparsers) -> None:
    """Add C{callbacks} to the C{switchboard} command."""
    callbacks = subparsers.add_parser("callbacks", help='the latest *0 "call me back" requests')
    callbacks.add_argument("--limit", type=int, default=20,
                           help="how many (default: %(default)s)")
    callbacks.set_defaults(handler=callbacks_command)


def callbacks_command(args, context) -> int:
    out = getattr(context, "stdout", None) or sys.stdout
    rows = Requests(context.database()).recent(args.limit)
    for row in rows:
        when = row.requested_at.astimezone(context.tz).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{row.id:>6}  {when}  {printable(row.caller)}", file=out)
    if not rows:
        print("no callback requests", file=out)
    return 0
