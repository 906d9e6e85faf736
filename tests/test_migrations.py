"""
Schema migrations (switchboard.migrations): the models and the migrations
agree on SQLite and PostgreSQL, a database made before migrations is
adopted with its rows, one newer than the code is refused.
"""

import os
from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from switchboard import migrations
from switchboard.cli import main
from switchboard.migrations import SchemaError
from switchboard.storage import Base, Database
from tests.postgres import fresh_postgres_url, postgres_url  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.database, pytest.mark.sqlite_pass]  # tries both databases itself

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
HEADS = ("alarm_0002", "board_0001", "broadcast_0002", "callback_0002", "core_0003",
         "hotline_0001")


def differences(engine):
    """What autogenerate finds between the models and the database (nothing, if they agree)."""
    migrations.import_models()
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


def make_pre_alembic(engine, *, skip=()):
    """The schema and rows that the hand-rolled migrate() left (create_all, schema_version)."""
    name = "sqlite" if engine.dialect.name == "sqlite" else "postgresql"
    with open(os.path.join(DATA, f"pre_alembic_{name}.sql")) as f:
        statements = [s.strip() for s in f.read().split(";")]
    with engine.begin() as connection:
        for statement in statements:
            lines = [line for line in statement.splitlines() if not line.startswith("--")]
            statement = "\n".join(lines).strip()
            if statement and not any(f" {table} " in statement + " " for table in skip):
                connection.exec_driver_sql(statement)
        connection.execute(text("INSERT INTO schema_version (id, version, note) "
                                "VALUES (1, 1, 'created')"))
        connection.execute(text(
            "INSERT INTO alarm_household (id, community, building, unit, room, residents, "
            "notes, revision, updated_at) VALUES (7, 'Hualin Garden', '3', '1', '501', "
            "'Wang Fang', 'lives alone', 1, :at)"), {"at": datetime(2024, 5, 1)})
        connection.execute(text(
            "INSERT INTO alarm_neighbour (household_id, position, number, name) "
            "VALUES (7, 1, '+8659187650002', 'Lin Tao')"))
        connection.execute(text(
            "INSERT INTO alarm (id, household_id, caller_raw, address, status, opened_at, "
            "room, outcome) VALUES (3, 7, '87650001', 'room 501', 'closed', :at, '', 'ok')"),
            {"at": datetime(2024, 5, 2)})
        if "hotline_calls" not in skip:
            connection.execute(text(
                "INSERT INTO hotline_calls (caller, path, outcome, started) "
                "VALUES ('+8659187650009', '[]', 'answered', :at)"), {"at": datetime(2024, 5, 3)})
        connection.execute(text("INSERT INTO journal_mark (name, seq) VALUES ('alarm', 41)"))


def rows(engine):
    with engine.connect() as connection:
        return {
            "household": connection.execute(text(
                "SELECT id, residents, notes FROM alarm_household")).all(),
            "neighbour": connection.execute(text(
                "SELECT household_id, number, name FROM alarm_neighbour")).all(),
            "alarm": connection.execute(text("SELECT id, household_id FROM alarm")).all(),
            "mark": connection.execute(text("SELECT name, seq FROM journal_mark")).all(),
        }


def tables(engine):
    with engine.connect() as connection:
        return set(inspect(connection).get_table_names())


@pytest.fixture
def sqlite(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/switchboard.db")
    yield database
    database.close()


@pytest.fixture
def postgres(fresh_postgres_url):  # noqa: F811
    database = Database(fresh_postgres_url)
    yield database
    database.close()


@pytest.mark.parametrize("name", ["sqlite", "postgres"])
def test_the_models_and_the_migrations_agree(request, name):
    database = request.getfixturevalue(name)
    assert database.migrate() == HEADS
    assert differences(database.engine) == []
    assert database.migrate() == HEADS  # once applied, nothing more to do


@pytest.mark.parametrize("name", ["sqlite", "postgres"])
def test_a_database_made_before_migrations_is_adopted_with_its_rows(request, name):
    database = request.getfixturevalue(name)
    make_pre_alembic(database.engine)
    before = rows(database.engine)
    assert before["neighbour"] == [(7, "+8659187650002", "Lin Tao")]
    done = migrations.upgrade(database.engine)
    assert done.adopted == ("alarm_0001", "core_0001", "core_0002", "hotline_0001")
    assert done.after == HEADS
    assert rows(database.engine) == before
    assert "schema_version" not in tables(database.engine)
    assert differences(database.engine) == []


def test_a_branch_whose_tables_are_absent_is_created_the_others_adopted(sqlite):
    make_pre_alembic(sqlite.engine, skip=("hotline_calls", "ix_hotline_calls_started",
                                          "ix_hotline_calls_uniqueid"))
    assert "hotline_calls" not in tables(sqlite.engine)
    done = migrations.upgrade(sqlite.engine)
    assert done.adopted == ("alarm_0001", "core_0001", "core_0002")
    assert "hotline_calls" in tables(sqlite.engine)
    assert rows(sqlite.engine)["neighbour"] == [(7, "+8659187650002", "Lin Tao")]
    assert differences(sqlite.engine) == []


def test_tables_that_do_not_match_are_refused_and_left_alone(sqlite):
    make_pre_alembic(sqlite.engine)
    with sqlite.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE alarm_neighbour DROP COLUMN name")
    with pytest.raises(SchemaError) as refused:
        sqlite.migrate()
    message = str(refused.value)
    assert "cannot be adopted" in message
    assert "table alarm_neighbour has columns" in message and "'name'" in message
    assert "nothing was changed" in message
    assert "alembic_version" not in tables(sqlite.engine)
    assert "schema_version" in tables(sqlite.engine)
    with sqlite.engine.connect() as connection:
        assert connection.execute(text("SELECT number FROM alarm_neighbour")).all() == [
            ("+8659187650002",)]


def test_a_database_newer_than_the_code_is_refused(sqlite):
    sqlite.migrate()
    with sqlite.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'alarm_0099' "
                                "WHERE version_num = 'alarm_0002'"))
    with pytest.raises(SchemaError) as refused:
        sqlite.migrate()
    assert "revision alarm_0099, which this switchboard does not know" in str(refused.value)
    with pytest.raises(SchemaError):
        migrations.current(sqlite.engine)


def test_a_failed_migration_on_sqlite_leaves_nothing_half_done(sqlite):
    sqlite.migrate()
    with pytest.raises(RuntimeError):
        with migrations.migrating(sqlite.engine) as connection:
            connection.exec_driver_sql("CREATE TABLE half (x INTEGER)")
            connection.exec_driver_sql("DROP TABLE hotline_calls")
            raise RuntimeError("the next step failed")
    assert "half" not in tables(sqlite.engine)
    assert "hotline_calls" in tables(sqlite.engine)


def test_rebuilding_a_parent_table_on_sqlite_keeps_its_children(sqlite):
    """SQLite alters by rebuilding; with foreign keys on, dropping the old parent would cascade."""
    make_pre_alembic(sqlite.engine)
    sqlite.migrate()
    with migrations.migrating(sqlite.engine) as connection:
        operations = Operations(MigrationContext.configure(connection))
        with operations.batch_alter_table("alarm_household", recreate="always") as batch:
            batch.alter_column("residents", existing_type=None, comment=None)
    assert rows(sqlite.engine)["neighbour"] == [(7, "+8659187650002", "Lin Tao")]
    with sqlite.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_every_feature_brings_its_own_branch():
    script = migrations.script_directory()
    bases = {r: script.get_revision(r) for r in script.get_bases()}
    assert {b.name for b in migrations.branches()} == {"core", "hotline", "alarm", "callback",
                                                          "broadcast", "board"}
    for branch in migrations.branches():
        base, = [r for r in bases.values() if branch.name in r.branch_labels]
        assert os.path.dirname(base.path) == branch.versions
        assert os.path.exists(os.path.join(branch.versions, "__init__.py"))  # packaged


def test_db_commands(tmp_path, capsys):
    config = tmp_path / "switchboard.yaml"
    config.write_text(f"database: sqlite:///{tmp_path}/sb.db\n"
                      "numbers: {region: CN, area_code: \"591\"}\n")
    make_pre_alembic(create_engine(f"sqlite:///{tmp_path}/sb.db"))

    def run(*argv):
        code = main(["--config", str(config), "db", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run("current")
    assert code == 0
    assert "alarm        not applied      (head is alarm_0002)" in out
    assert "made before migrations: `switchboard db upgrade` adopts it" in out
    code, out, _ = run("upgrade")
    assert (code, out) == (0, "adopted a database made before migrations: stamped "
                              "alarm_0001, core_0001, core_0002, hotline_0001\n"
                              "upgraded: alarm_0001, hotline_0001 -> "
                              "alarm_0002, board_0001, broadcast_0002, callback_0002, core_0003, "
                              "hotline_0001\n")
    code, out, _ = run("current")
    assert out.splitlines() == ["alarm        alarm_0002       (head)",
                                "board        board_0001       (head)",
                                "broadcast    broadcast_0002   (head)",
                                "callback     callback_0002    (head)",
                                "core         core_0003        (head)",
                                "hotline      hotline_0001     (head)"]
    with create_engine(f"sqlite:///{tmp_path}/sb.db").begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'alarm_0099' "
                                "WHERE version_num = 'alarm_0002'"))
    code, out, err = run("upgrade")
    assert code == 1
    assert err.startswith("switchboard: the database sqlite:///")
    assert "alarm_0099, which this switchboard does not know" in err


def test_a_revision_of_unchanged_models_has_nothing_to_do(tmp_path, monkeypatch):
    """Autogenerate, branch by branch, finds nothing: another proof that models and migrations agree."""
    real = migrations.branches()
    copy = tmp_path / "versions"
    copy.mkdir()
    alarm = next(b for b in real if b.name == "alarm")
    for name in os.listdir(alarm.versions):
        if name.endswith(".py"):
            (copy / name).write_bytes(open(os.path.join(alarm.versions, name), "rb").read())
    monkeypatch.setattr(migrations, "branches", lambda: [
        migrations.Branch(b.name, str(copy), b.models) if b.name == "alarm" else b
        for b in real])
    path = migrations.new_revision("alarm", "nothing changed")
    assert os.path.basename(path) == "alarm_0003_nothing_changed.py"
    source = open(path).read()
    assert "down_revision: Union[str, Sequence[str], None] = 'alarm_0002'" in source
    upgrade = source[source.index("def upgrade()"):source.index("def downgrade()")]
    assert "pass" in upgrade and "op." not in upgrade
    with pytest.raises(SchemaError, match="no migrations branch 'nosuchfeature'"):
        migrations.new_revision("nosuchfeature", "x")


def make_old_heads(engine):
    """
    A database as the switchboard of before the registry moved to the core
    left it: the registry's tables made by alarm_0001, at the old heads.
    """
    make_pre_alembic(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE schema_version"))
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) "
                                "NOT NULL, CONSTRAINT alembic_version_pkc "
                                "PRIMARY KEY (version_num))"))
        for head in ("alarm_0001", "hotline_0001"):  # callback_0001 came later
            connection.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": head})


@pytest.mark.parametrize("name", ["sqlite", "postgres"])
def test_a_database_at_the_heads_of_before_the_registry_moved_keeps_its_households(
        request, name):
    database = request.getfixturevalue(name)
    make_old_heads(database.engine)
    before = rows(database.engine)
    states, legacy = migrations.current(database.engine)
    assert not legacy
    assert {s.branch: s.revision for s in states}["core"] == "core_0002"  # alarm_0001 made it
    done = migrations.upgrade(database.engine)
    assert done.before == ("alarm_0001", "hotline_0001")
    assert done.after == HEADS
    assert rows(database.engine) == before
    assert differences(database.engine) == []


def test_without_the_alarm_the_core_makes_the_registry(sqlite):
    """A database whose alarm branch never ran gets the registry's tables from core_0002."""
    from alembic import command
    with migrations.migrating(sqlite.engine) as connection:
        command.upgrade(migrations.config(connection), "hotline@head")
    assert "alarm_household" not in tables(sqlite.engine)
    with migrations.migrating(sqlite.engine) as connection:
        command.upgrade(migrations.config(connection), "core@head")
    assert {"alarm_household", "alarm_household_number", "alarm_neighbour",
            "alarm_registry_version"} <= tables(sqlite.engine)
    assert "alarm" not in tables(sqlite.engine)
