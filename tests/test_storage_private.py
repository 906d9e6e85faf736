"""The SQLite database holds residents' personal data: its owner's alone, whatever the umask."""

import os
import stat

import pytest

from switchboard.storage import Database

pytestmark = [pytest.mark.database, pytest.mark.sqlite_pass]  # about SQLite files


@pytest.fixture(autouse=True)
def umask():
    old = os.umask(0o022)   # the usual umask: files 0644, folders 0755 if nothing is done
    yield
    os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_database_folder_and_files_are_the_owners_alone(tmp_path):
    path = tmp_path / "var" / "switchboard.db"
    database = Database(f"sqlite:///{path}")
    database.migrate()
    # An open connection in WAL mode keeps its -wal and -shm files.
    with database.engine.connect() as connection:
        connection.exec_driver_sql("CREATE TABLE probe (x)")
        connection.exec_driver_sql("INSERT INTO probe VALUES (1)")
        connection.commit()
        names = sorted(os.listdir(path.parent))
        assert names == ["switchboard.db", "switchboard.db-shm", "switchboard.db-wal"]
        assert {name: mode(path.parent / name) for name in names} == dict.fromkeys(names, 0o600)
    assert mode(path.parent) == 0o700
    database.close()


def test_a_world_readable_database_from_before_is_tightened(tmp_path):
    path = tmp_path / "switchboard.db"
    Database(f"sqlite:///{path}").migrate()
    os.chmod(path, 0o644)
    database = Database(f"sqlite:///{path}")
    database.migrate()
    assert mode(path) == 0o600
    with database.engine.connect() as connection:
        connection.exec_driver_sql("CREATE TABLE probe (x)")
        connection.commit()
        assert mode(tmp_path / "switchboard.db-wal") == 0o600
    database.close()


def test_a_database_url_with_options_is_made_private_too(tmp_path):
    path = tmp_path / "switchboard.db"
    Database(f"sqlite:///{path}?timeout=5").migrate()
    assert mode(path) == 0o600


def test_a_commit_is_on_the_disk_before_the_journal_lets_go(tmp_path):
    # synchronous=FULL (2): WAL mode's NORMAL may lose the last commits in
    # a power cut, after the alarm journal was compacted.
    database = Database(f"sqlite:///{tmp_path / 'switchboard.db'}")
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    database.close()
