"""The hotline's call log as it was when migrations began.

Revision ID: hotline_0001
Revises:
Create Date: 2025-01-01

"""
from alembic import op
import sqlalchemy as sa

revision = "hotline_0001"
down_revision = None
branch_labels = ("hotline",)
depends_on = "core_0001"  # call records are written behind the core's journal


def upgrade() -> None:
    op.create_table(
        "hotline_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uniqueid", sa.String(length=64), nullable=True),
        sa.Column("caller", sa.String(length=64), nullable=True),
        sa.Column("hotline", sa.String(length=64), nullable=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("destination", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_hotline_calls_uniqueid", "hotline_calls", ["uniqueid"])
    op.create_index("ix_hotline_calls_started", "hotline_calls", ["started"])


def downgrade() -> None:
    op.drop_table("hotline_calls")
