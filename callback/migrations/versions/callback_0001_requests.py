"""The callback's requests.

Revision ID: callback_0001
Revises:
Create Date: 2025-01-02

"""
from alembic import op
import sqlalchemy as sa

revision = "callback_0001"
down_revision = None
branch_labels = ("callback",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "callback_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("uniqueid", sa.String(length=64), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_callback_request_requested_at", "callback_request", ["requested_at"])


def downgrade() -> None:
    op.drop_table("callback_request")
