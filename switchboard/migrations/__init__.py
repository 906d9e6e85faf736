"""
Schema migrations, with Alembic.

The core and each feature bring their own chain of revisions: an Alembic
branch named after them, kept in their own package (C{<package>/versions}),
so a pip-installed switchboard has them. The core's branch, C{core}, is this
package; a feature's is the package its declaration names
(L{switchboard.features.IFeature.migrations}, found through the entry-point
group C{switchboard.features}), so this module names no feature. A
migrations package says in C{MODELS} which module declares its tables.

L{upgrade} brings a database to the head of every branch, in one
transaction (SQLite included: a failed migration leaves nothing half done),
one process at a time. A database that knows a revision these packages do
not (a newer switchboard upgraded it) is refused with L{SchemaError}, and
so is one whose tables are not what the migrations would have made. A
database created before Alembic (C{create_all}, no C{alembic_version}) is
adopted: each branch whose tables are all there, with the columns its base
revision creates, is stamped at that base, not created again; its rows stay.

This package imports no feature and not L{switchboard.storage} (which
stays below it): it works on an engine, the models are imported by name
(they bring the metadata), and Alembic only when a database is migrated.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from dataclasses import dataclass

from switchboard import features

GROUP = features.GROUP
CORE = "core"
HERE = os.path.dirname(os.path.abspath(__file__))
VERSION_TABLE = "alembic_version"  # Alembic's record of the revisions applied
LEGACY_TABLE = "schema_version"  # the hand-rolled version table before Alembic
_LOCK_KEY = 0x5357424442  # PostgreSQL advisory lock: one migrating process at a time
MODELS = "switchboard.journal"  # the core's tables (the journal's marks)


class SchemaError(Exception):
    """A database this switchboard must not use as it is; the message says why and what to do."""


@dataclass(frozen=True)
class Branch:
    """One chain of revisions: the core's or a feature's (C{name} is its branch label)."""

    name: str
    versions: str  # the folder of its revision files
    models: str  # the module that declares its tables

    @classmethod
    def of(cls, name: str, package: str) -> "Branch":
        """The branch whose migrations package is C{package} (its C{versions} folder)."""
        module = importlib.import_module(package)
        folder = os.path.dirname(os.path.abspath(module.__file__))
        return cls(name, os.path.join(folder, "versions"), module.MODELS)


def branches() -> list[Branch]:
    """The core's branch, then each installed feature's that has tables, by name."""
    found = [Branch.of(CORE, __name__)]
    for feature in features.installed():
        if feature.migrations is None:
            continue
        if feature.name in {b.name for b in found}:
            raise SchemaError(f"feature {feature.name!r} has the name of another branch")
        found.append(Branch.of(feature.name, feature.migrations))
    return found


def import_models():
    """
    Import every branch's models, so that their tables are on the metadata;
    return that metadata (the one all their tables share).
    """
    metadata = set()
    for branch in branches():
        module = importlib.import_module(branch.models)
        metadata.update(value.__table__.metadata for value in vars(module).values()
                        if isinstance(value, type) and hasattr(value, "__table__"))
    if len(metadata) != 1:
        raise SchemaError(f"the models of the branches declare their tables on "
                          f"{len(metadata)} metadata, not one (switchboard.storage.Base)")
    return metadata.pop()


def config(connection=None):
    """An Alembic configuration for every branch, running on C{connection}."""
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", HERE.replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(
        b.versions for b in branches()).replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


def script_directory(cfg=None):
    from alembic.script import ScriptDirectory
    return ScriptDirectory.from_config(cfg or config())


@dataclass(frozen=True)
class Upgrade:
    """
    What L{upgrade} did: the revisions before (after adopting, if it did)
    and after, and the base revisions it stamped to adopt the database.
    """

    before: tuple[str, ...]
    after: tuple[str, ...]
    adopted: tuple[str, ...] = ()
    #: Contract migrations not applied (L{phases}): they wait for C{--contract}.
    waiting: tuple[str, ...] = ()


def upgrade(engine, *, contract=False) -> Upgrade:
    """
    Bring the database of C{engine} to the head of every branch; without
    C{contract}, stop each branch before its first contract migration
    (L{phases}), which an instance still on the old code would not survive.
    """
    from alembic import command

    from switchboard.migrations.phases import expand_targets
    with migrating(engine) as connection:
        cfg = config(connection)
        script = script_directory(cfg)
        before = current_heads(connection)
        refuse_unknown(script, before, engine)
        adopted = () if before else adopt(connection, script)
        if adopted:
            before = current_heads(connection)
        waiting = ()
        if contract:
            command.upgrade(cfg, "heads")
        else:
            targets, waiting = expand_targets(script, _ancestors(script, before))
            for target in targets:
                command.upgrade(cfg, target)
        return Upgrade(before, current_heads(connection), adopted, tuple(waiting))


def current_heads(connection) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext
    return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


def refuse_unknown(script, heads, engine) -> None:
    """Raise L{SchemaError} if the database is at a revision the installed code lacks."""
    from alembic.util import CommandError
    unknown = []
    for revision in heads:
        try:
            script.get_revision(revision)
        except CommandError:
            unknown.append(revision)
    if unknown:
        raise SchemaError(
            f"the database {engine.url.render_as_string(hide_password=True)} is at schema "
            f"revision {', '.join(unknown)}, which this switchboard does not know: a newer "
            f"switchboard (or a feature not installed here) has upgraded it. Run that "
            f"version, or restore the backup taken before the upgrade; nothing was changed.")


@contextlib.contextmanager
def migrating(engine):
    """
    A connection in one transaction that holds the database's write lock
    for as long as the migrations run, committed if they succeed.

    SQLite: Python's sqlite3 would commit before each DDL statement, so the
    transaction is begun by hand (C{BEGIN IMMEDIATE}: a second process
    waits); foreign keys are off meanwhile, as SQLite asks for table
    rebuilds (with them on, dropping a rebuilt parent table would delete
    its children by cascade), and checked before the commit.
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
            yield connection
        return
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        saved = raw.isolation_level
        raw.isolation_level = None
        try:
            raw.execute("PRAGMA foreign_keys=OFF")
            raw.execute("BEGIN IMMEDIATE")
            try:
                connection.begin()
                yield connection
                broken = raw.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise SchemaError(f"the migrations broke foreign keys (table, row, "
                                      f"parent): {broken[:5]}; nothing was changed")
                connection.commit()
                raw.commit()
            except BaseException:
                connection.rollback()
                raw.rollback()
                raise
        finally:
            raw.execute("PRAGMA foreign_keys=ON")
            raw.isolation_level = saved


REFUSED = ("the database was made before migrations, but its tables are not what the "
           "migrations make, so it cannot be adopted (nothing was changed):\n  ")


def adopt(connection, script) -> tuple[str, ...]:
    """
    Stamp a database made before Alembic at the base revision of each
    branch whose tables it has, after checking them; drop the legacy
    C{schema_version} table. Return the revisions stamped.
    """
    from alembic import command
    from sqlalchemy import inspect, text
    inspector = inspect(connection)
    existing = set(inspector.get_table_names())
    if not existing - {LEGACY_TABLE}:
        return ()  # an empty database: the upgrade creates everything
    stamped = []
    problems = []
    for base in sorted(script.get_bases()):
        label = ", ".join(sorted(script.get_revision(base).branch_labels)) or base
        expected = tables_created_by(script, base)
        present = expected.keys() & existing
        if not present:
            continue  # this branch came later: the upgrade creates its tables
        for table in sorted(expected):
            if table not in existing:
                problems.append(f"{label}: table {table} is missing")
                continue
            columns = {c["name"] for c in inspector.get_columns(table)}
            if columns != expected[table]:
                problems.append(
                    f"{label}: table {table} has columns {sorted(columns)}, "
                    f"revision {base} creates {sorted(expected[table])}")
        stamped.append(base)
    if LEGACY_TABLE in existing:
        versions = connection.execute(text(f"SELECT version FROM {LEGACY_TABLE}")).scalars()
        if any(v != 1 for v in versions):
            problems.append(f"table {LEGACY_TABLE} records a version other than 1, "
                            f"which no switchboard has made")
    if problems:
        raise SchemaError(REFUSED + "\n  ".join(problems))
    if stamped:
        # Stamping a revision marks what it depends on as applied too: only
        # the tops are stamped, and only if what they depend on is here.
        below = {b: _ancestors(script, [b]) - {b} for b in stamped}
        for base in stamped:
            for dependency in below[base] - set(stamped):
                problems.append(f"{base}: its tables are there but not those of {dependency}, "
                                f"which it depends on")
        if problems:
            raise SchemaError(REFUSED + "\n  ".join(problems))
        tops = [b for b in stamped if not any(b in below[o] for o in stamped)]
        command.stamp(config(connection), tops)
    if LEGACY_TABLE in existing:
        connection.execute(text(f"DROP TABLE {LEGACY_TABLE}"))
    return tuple(stamped)


def tables_created_by(script, base: str) -> dict[str, set[str]]:
    """
    The tables (and their column names) that the base revision C{base}
    creates, found by running it, after what it depends on, in a scratch
    SQLite database.
    """
    from alembic import command
    from sqlalchemy import create_engine, inspect
    scratch = create_engine("sqlite://")
    try:
        with scratch.begin() as connection:
            cfg = config(connection)
            dependencies = script.get_revision(base).dependencies or ()
            for dependency in ((dependencies,) if isinstance(dependencies, str)
                               else dependencies):
                command.upgrade(cfg, dependency)
            before = set(inspect(connection).get_table_names())
            command.upgrade(cfg, base)
            inspector = inspect(connection)
            return {table: {c["name"] for c in inspector.get_columns(table)}
                    for table in set(inspector.get_table_names()) - before - {VERSION_TABLE}}
    finally:
        scratch.dispose()


@dataclass(frozen=True)
class State:
    """Where one branch stands in a database."""

    branch: str
    revision: str | None  # None: not applied yet
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.revision == self.head


def current(engine) -> tuple[list[State], bool]:
    """
    Where each branch stands, without changing anything, and whether the
    database predates migrations (tables but no C{alembic_version}).
    """
    from sqlalchemy import inspect
    script = script_directory()
    with engine.connect() as connection:
        heads = current_heads(connection)
        refuse_unknown(script, heads, engine)
        legacy = not heads and bool(set(inspect(connection).get_table_names())
                                    - {LEGACY_TABLE})
    applied = _ancestors(script, heads)
    states = []
    for head in script.get_heads():
        chain = _chain(script, head)
        revision = next((r.revision for r in chain if r.revision in applied), None)
        label = ", ".join(sorted(chain[-1].branch_labels)) or chain[-1].revision
        states.append(State(label, revision, head))
    return sorted(states, key=lambda s: s.branch), legacy


def _as_tuple(value) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value or ())


def _chain(script, head) -> list:
    """C{head} and the revisions below it on its own branch, down to the base."""
    chain = [script.get_revision(head)]
    while chain[-1].down_revision:
        chain.append(script.get_revision(_as_tuple(chain[-1].down_revision)[0]))
    return chain


def _ancestors(script, heads) -> set[str]:
    """The revisions applied in a database at C{heads}: theirs, below, and depended on."""
    seen, todo = set(), list(heads)
    while todo:
        revision = script.get_revision(todo.pop())
        if revision.revision not in seen:
            seen.add(revision.revision)
            todo.extend(_as_tuple(revision.down_revision) + _as_tuple(revision.dependencies))
    return seen


def new_revision(branch_name: str, message: str, *, autogenerate: bool = True) -> str:
    """
    Write the next revision of the branch C{branch_name} (its first, the
    branch's base, if it has none) into that branch's C{versions} folder
    and return the file's path. With C{autogenerate}, its operations are
    what the branch's models differ by from a scratch database at the
    heads; other branches' tables are left out.
    """
    from alembic import command
    from sqlalchemy import create_engine
    by_name = {b.name: b for b in branches()}
    if branch_name not in by_name:
        raise SchemaError(f"no migrations branch {branch_name!r}: there are "
                          f"{', '.join(sorted(by_name))} (a feature declares its own: "
                          f"IFeature.migrations, entry-point group {GROUP})")
    branch = by_name[branch_name]
    models = importlib.import_module(branch.models)
    tables = {value.__table__.name for value in vars(models).values()
              if isinstance(value, type) and value.__module__ == branch.models
              and hasattr(value, "__table__")}

    def include_object(obj, name, type_, reflected, compare_to):
        table = name if type_ == "table" else getattr(obj, "table", None)
        return (table if isinstance(table, str) else getattr(table, "name", None)) in tables

    script = script_directory()
    head = next((h for h in script.get_heads()
                 if branch_name in _chain(script, h)[-1].branch_labels), None)
    count = len(_chain(script, head)) if head else 0
    scratch = create_engine("sqlite://")
    try:
        upgrade(scratch)
        with scratch.connect() as connection:
            cfg = config(connection)
            cfg.attributes["include_object"] = include_object
            written = command.revision(
                cfg, message, autogenerate=autogenerate,
                head=f"{branch_name}@head" if head else "base",
                branch_label=None if head else branch_name,
                depends_on=None if head or branch_name == CORE else f"{CORE}@head",
                version_path=branch.versions, rev_id=f"{branch_name}_{count + 1:04d}")
    finally:
        scratch.dispose()
    return written.path
