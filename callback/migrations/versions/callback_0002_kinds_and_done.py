"""Requests of two kinds (*0 and voicemail), marked done with a note, called back.

Revision ID: callback_0002
Revises: callback_0001
Create Date: 2026-12-03

"""
from alembic import op
import sqlalchemy as sa

revision = "callback_0002"
down_revision = "callback_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("callback_request") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), nullable=False,
                                   server_default="callback"))
        batch.add_column(sa.Column("office", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("recording", sa.String(length=400), nullable=True))
        batch.add_column(sa.Column("message_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("done_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("done_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("called_back_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("called_back_from", sa.String(length=64), nullable=True))
        batch.create_unique_constraint("uq_callback_request_message_id", ["message_id"])


def downgrade() -> None:
    with op.batch_alter_table("callback_request") as batch:
        batch.drop_constraint("uq_callback_request_message_id", type_="unique")
        for name in ("called_back_from", "called_back_at", "note", "done_by", "done_at", "message_id",
                     "recording", "office", "kind"):
            batch.drop_column(name)
