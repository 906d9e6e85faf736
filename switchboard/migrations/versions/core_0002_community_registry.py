"""The community registry: households, their landlines, neighbours, the registry's version.

Revision ID: core_0002
Revises: core_0001
Create Date: 2026-12-03

The registry was the #9 alarm's until it became shared domain (any feature
that calls residents reads it). Its tables keep their names; they were
created by the alarm's first revision, alarm_0001, which now depends on
this one instead of creating them. A database upgraded by an older
switchboard is at alarm_0001, which Alembic reads as "core_0002 applied"
(a revision's dependencies are applied before it): its tables, made then by
alarm_0001, are exactly these, and nothing runs again. A database without
the alarm gets them from this revision. tests/test_migrations.py upgrades a
database at the old heads and checks its rows and schema.
"""
from alembic import op
import sqlalchemy as sa

revision = "core_0002"
down_revision = "core_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alarm_household",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community", sa.String(length=100), nullable=False),
        sa.Column("building", sa.String(length=20), nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=False),
        sa.Column("room", sa.String(length=20), nullable=False),
        sa.Column("residents", sa.String(length=200), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "alarm_registry_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "alarm_household_number",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["household_id"], ["alarm_household.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    op.create_index("ix_alarm_household_number_household_id", "alarm_household_number",
                    ["household_id"])
    op.create_table(
        "alarm_neighbour",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["household_id"], ["alarm_household.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("household_id", "position"),
        sa.UniqueConstraint("household_id", "number"),
    )
    op.create_index("ix_alarm_neighbour_household_id", "alarm_neighbour", ["household_id"])


def downgrade() -> None:
    for table in ("alarm_neighbour", "alarm_household_number", "alarm_registry_version",
                  "alarm_household"):
        op.drop_table(table)
