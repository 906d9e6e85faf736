"""
The database's schema commands:

  switchboard db current                  where each branch (core, each feature) stands
  switchboard db upgrade [--contract]     apply the migrations (adopting a database
                                          made before migrations); contract ones
                                          (drops, renames) only with --contract
  switchboard db revision BRANCH -m MSG   write a branch's next migration (developers)

The server and the commands that open the database upgrade it themselves;
C{db upgrade} does it on its own, before a start, and says what it did.
"""

from __future__ import annotations

import os

from switchboard import migrations


def register(subparsers) -> None:
    """Add C{db} and its subcommands to the C{switchboard} command."""
    db = subparsers.add_parser("db", help="the database's schema: current, upgrade, revision")
    sub = db.add_subparsers(dest="db_command", metavar="COMMAND")
    sub.required = True
    current = sub.add_parser("current", help="where each branch of the schema stands")
    current.set_defaults(handler=current_command)
    upgrade = sub.add_parser("upgrade", help="apply the migrations to the configured database")
    upgrade.add_argument("--contract", action="store_true",
                         help="also apply contract migrations (drops, renames): only once "
                              "every instance runs this version")
    upgrade.set_defaults(handler=upgrade_command)
    revision = sub.add_parser("revision", help="write a branch's next migration (developers)")
    revision.add_argument("branch", help="core, or a feature's branch (e.g. alarm)")
    revision.add_argument("-m", "--message", required=True, help="what the migration does")
    revision.add_argument("--empty", action="store_true",
                          help="write empty upgrade/downgrade functions (a data migration) "
                               "instead of comparing the models with the migrations")
    revision.set_defaults(handler=revision_command)


def _database(context):
    """The configured database, not migrated (the command says what it does)."""
    return context.database(migrate=False)


def current_command(args, context) -> int:
    database = _database(context)
    try:
        states, legacy = migrations.current(database.engine)
    finally:
        database.close()
    for state in states:
        where = state.revision or "not applied"
        note = "head" if state.up_to_date else f"head is {state.head}"
        print(f"{state.branch:<12} {where:<16} ({note})")
    if legacy:
        print("The database was made before migrations: `switchboard db upgrade` adopts it.")
    return 0


def upgrade_command(args, context) -> int:
    database = _database(context)
    try:
        done = migrations.upgrade(database.engine, contract=args.contract)
    finally:
        database.close()
    if done.adopted:
        print(f"adopted a database made before migrations: stamped {', '.join(done.adopted)}")
    if done.before == done.after:
        print(f"already up to date: {', '.join(done.after)}")
    else:
        print(f"upgraded: {', '.join(done.before) or 'empty'} -> {', '.join(done.after)}")
    if done.waiting:
        print(f"contract migrations waiting: {', '.join(done.waiting)}; run `switchboard db "
              f"upgrade --contract` once every instance runs this version")
    return 0


def revision_command(args, context) -> int:
    path = migrations.new_revision(args.branch, args.message, autogenerate=not args.empty)
    print(f"wrote {os.path.relpath(path)}: read it before committing (autogenerate "
          f"cannot see renames, and data must be moved by hand)")
    return 0
