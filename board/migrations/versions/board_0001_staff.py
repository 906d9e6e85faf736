"""The board's staff accounts.

Revision ID: board_0001
Revises:
Create Date: 2026-12-03

"""
from alembic import op
import sqlalchemy as sa

revision = "board_0001"
down_revision = None
branch_labels = ("board",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "board_staff",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("board_staff")
