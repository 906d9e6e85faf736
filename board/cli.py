"""
The staff's accounts on the duty board:

  switchboard staff add NAME --role viewer|duty|admin   the password is asked for
                                                         (or read from stdin), never an argument
  switchboard staff list
  switchboard staff remove NAME                          a running board ends their sessions
                                                         within a minute
"""

from __future__ import annotations

import getpass
import sys
from datetime import timezone

from board import staff
from board.models import ROLES
from switchboard.text import printable


def register(subparsers) -> None:
    """Add C{staff} to the C{switchboard} command."""
    parser = subparsers.add_parser("staff", help="the duty board's staff accounts")
    sub = parser.add_subparsers(dest="staff_command", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("add", help="add a staff member (the password is asked for)")
    p.add_argument("name")
    p.add_argument("--role", choices=ROLES, required=True,
                   help="viewer: sees the board; duty: acts on alarms; admin: also manages")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of stdin (scripts)")
    p.set_defaults(handler=staff_add)
    p = sub.add_parser("list", help="every staff member and their role")
    p.set_defaults(handler=staff_list)
    p = sub.add_parser("remove", help="remove a staff member")
    p.add_argument("name")
    p.set_defaults(handler=staff_remove)


def read_password(from_stdin: bool, stdin=None, ask=getpass.getpass) -> str:
    """The password from stdin's first line, or asked twice on the terminal."""
    stdin = stdin or sys.stdin
    if from_stdin or not stdin.isatty():
        return stdin.readline().rstrip("\r\n")
    first = ask("Password: ")
    if ask("Again: ") != first:
        raise staff.StaffError("the two passwords differ")
    return first


def staff_add(args, context) -> int:
    try:
        password = read_password(args.password_stdin)
        with context.database().sessions.begin() as session:
            member = staff.add(session, args.name, args.role, password)
    except staff.StaffError as e:
        print(f"staff add: {e}", file=sys.stderr)
        return 1
    print(f"{member.name} added ({member.role})")
    return 0


def staff_list(args, context) -> int:
    with context.database().session() as session:
        rows = staff.members(session)
    for member, created in rows:
        added = created.replace(tzinfo=timezone.utc).astimezone(context.tz)
        print(f"{printable(member.name):<24} {member.role:<7} added {added:%Y-%m-%d %H:%M}")
    if not rows:
        print("no staff: add one with `switchboard staff add NAME --role duty`")
    return 0


def staff_remove(args, context) -> int:
    with context.database().sessions.begin() as session:
        removed = staff.remove(session, args.name)
    if not removed:
        print(f"staff remove: no staff member {args.name!r}", file=sys.stderr)
        return 1
    print(f"{args.name} removed")
    return 0
