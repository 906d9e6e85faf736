"""The alarm's tables as they were when migrations began: the alarms and their timelines.

The community registry (alarm_household, alarm_household_number,
alarm_neighbour, alarm_registry_version) was created here too until it
became the core's shared domain; its tables are now made by the core's
core_0002, which this revision depends on, so a database at this revision
has them whichever code created them (see core_0002's docstring).

Revision ID: alarm_0001
Revises:
Create Date: 2025-01-01

"""
from alembic import op
import sqlalchemy as sa

revision = "alarm_0001"
down_revision = None
branch_labels = ("alarm",)
depends_on = "core_0002"  # the registry's households, the journal alarms are written behind


def upgrade() -> None:
    op.create_table(
        "alarm",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=True),
        sa.Column("caller_raw", sa.String(length=80), nullable=False),
        sa.Column("caller_number", sa.String(length=20), nullable=True),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("room", sa.String(length=80), nullable=False),
        sa.Column("outcome", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["household_id"], ["alarm_household.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alarm_open", "alarm", ["closed_at"])
    op.create_table(
        "alarm_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("leg", sa.String(length=80), nullable=True),
        sa.Column("number", sa.String(length=80), nullable=True),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(["alarm_id"], ["alarm.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alarm_event_alarm_id", "alarm_event", ["alarm_id"])


def downgrade() -> None:
    for table in ("alarm_event", "alarm"):
        op.drop_table(table)
