"""The same schema and records on PostgreSQL, the production database."""

import pytest
import os

from sqlalchemy import func, select

from switchboard.community import csvfile
from alarm.models import Alarm
from switchboard.community.registry import Registry
from switchboard.numbers import NumberPlan
from switchboard.storage import Database
from switchboard.calllog import CallRecord
from tests.postgres import fresh_postgres_url  # noqa: F401  (fixture)

pytestmark = [pytest.mark.database, pytest.mark.sqlite_pass]  # tries both databases itself

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_migrate_import_and_read_back_on_postgresql(fresh_postgres_url):  # noqa: F811
    db = Database(fresh_postgres_url)
    heads = db.migrate()
    assert "alarm_0002" in heads
    assert db.migrate() == heads  # idempotent
    registry = Registry(db, NumberPlan("CN", "591"))
    csvfile.import_csv(registry, os.path.join(PROJECT, "config", "households.csv"))
    household = registry.find("0591-87650001")
    assert household is not None
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Alarm)) == 0
        assert session.scalar(select(func.count()).select_from(CallRecord)) == 0
    db.close()


def test_a_batch_with_an_overlong_caller_id_is_written_whole_on_postgresql(fresh_postgres_url):  # noqa: F811,E501
    # Before: one caller ID over 64 characters failed the whole batch of
    # 100 records on PostgreSQL, and the error printed ten callers' numbers.
    from twisted.internet import task
    from twisted.logger import capturedLogs, formatEvent
    from switchboard.calllog import CallLog
    from tests.test_calllog import call
    from tests.test_hotline_support import SyncDatabase
    db = Database(fresh_postgres_url)
    db.migrate()
    sync = SyncDatabase(fresh_postgres_url)
    log = CallLog(sync, clock=task.Clock())
    hostile = "+86591" + "8" * 200 + "\n<script>"
    with capturedLogs() as events:
        for n in range(100):
            log.record(call(n, uniqueid=f"1790000001.{n}",
                            caller=hostile if n == 37 else "+8659187650001"))
        log.flush()
    with sync.session() as session:
        rows = CallLog.recent(session, 200)
    assert len(rows) == 100
    assert [r.caller for r in rows if r.caller != "+8659187650001"] == [hostile[:64]]
    assert not [e for e in events if "8659187650001" in formatEvent(e)]
    sync.close()
    db.close()
