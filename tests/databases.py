"""
The database a test runs on: SQLite, or PostgreSQL in the second pass.

C{./dev test} runs the suite, then the tests marked C{database} again with
C{SWITCHBOARD_TEST_DATABASE=postgresql}. A test asks L{url} (or
L{database}) for its database instead of writing an C{sqlite:///} URL:
a file in the test's folder in the first pass, a fresh schema on the
run's throwaway cluster (L{tests.postgres}) in the second, dropped when
the test ends. C{tests/conftest.py} checks both ways: a test that makes an
engine without the C{database} marker fails (it would never run on
PostgreSQL), and so does a C{database} test that opens SQLite in the
PostgreSQL pass (it wrote its own URL; a test about SQLite itself, or one
that tries both databases by itself, is marked C{sqlite_pass}).
"""

from __future__ import annotations

import os

BACKEND = os.environ.get("SWITCHBOARD_TEST_DATABASE", "sqlite")
if BACKEND not in ("sqlite", "postgresql"):
    raise SystemExit(f"SWITCHBOARD_TEST_DATABASE={BACKEND!r}: sqlite or postgresql")

ON_POSTGRES = BACKEND == "postgresql"

# (folder, name) -> URL for the running test: the same folder and name give the
# same database (a test writes the URL into a config file, then opens it).
_made: dict[tuple[str, str], str] = {}


def url(folder, name: str = "switchboard") -> str:
    """
    The URL of the test's database C{name}: C{sqlite:///FOLDER/NAME.db}, or
    on PostgreSQL a schema of its own (L{tests.postgres.Cluster.create_schema}), the same one for the same folder
    and name until the test ends.
    """
    if not ON_POSTGRES:
        return f"sqlite:///{folder}/{name}.db"
    key = (str(folder), name)
    if key not in _made:
        from tests.postgres import require_cluster
        _made[key] = require_cluster().create_schema()
    return _made[key]


def database(folder, name: str = "switchboard", **kwargs):
    """A L{switchboard.storage.Database} on L{url}."""
    from switchboard.storage import Database
    return Database(url(folder, name), **kwargs)


def drop_all() -> None:
    """Drop the schemas made for the test that ended (PostgreSQL only)."""
    if not _made:
        return
    from tests.postgres import cluster
    server = cluster()
    for made in _made.values():
        server.drop_schema(made)
    _made.clear()
