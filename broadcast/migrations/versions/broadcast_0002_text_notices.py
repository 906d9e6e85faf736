"""Text notices: a campaign's channel (voice or text).

Expand only: a column with a server default, so an instance still on the
code before it keeps writing voice campaigns.

Revision ID: broadcast_0002
Revises: broadcast_0001
Create Date: 2026-12-03

"""
from alembic import op
import sqlalchemy as sa

revision = "broadcast_0002"
down_revision = "broadcast_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("broadcast_campaign", sa.Column("channel", sa.String(length=8),
                                                  nullable=False, server_default="voice"))


def downgrade() -> None:
    with op.batch_alter_table("broadcast_campaign") as batch:
        batch.drop_column("channel")
