"""Residents' mobiles, registered for text notices.

Expand only: a new table, which code before it neither reads nor writes.

Revision ID: core_0003
Revises: core_0002
Create Date: 2026-12-03

"""
from alembic import op
import sqlalchemy as sa

revision = "core_0003"
down_revision = "core_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "community_mobile",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("household_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["household_id"], ["alarm_household.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("household_id", "number"),
    )
    op.create_index("ix_community_mobile_household_id", "community_mobile", ["household_id"])


def downgrade() -> None:
    op.drop_table("community_mobile")
