"""The same schema and records on PostgreSQL, the production database."""

import os

from sqlalchemy import func, select

from alarm import csvfile
from alarm.models import Alarm
from alarm.registry import Registry
from switchboard.numbers import NumberPlan
from switchboard.storage import Database
from switchboard.calllog import CallRecord
from tests.postgres import postgres_url  # noqa: F401  (fixture)

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_migrate_import_and_read_back_on_postgresql(postgres_url):  # noqa: F811
    db = Database(postgres_url)
    heads = db.migrate()
    assert "alarm_0001" in heads
    assert db.migrate() == heads  # idempotent
    registry = Registry(db, NumberPlan("CN", "591"))
    csvfile.import_csv(registry, os.path.join(PROJECT, "config", "households.csv"))
    household = registry.find("0591-87650001")
    assert household is not None
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Alarm)) == 0
        assert session.scalar(select(func.count()).select_from(CallRecord)) == 0
    db.close()
