"""Requests of two kinds (*0 and voicemail), marked done with a note, called back.

Expand only: nullable columns, a column with a server default and an index,
so that an instance still on the code before it keeps recording *0
requests (they get kind 'callback'; its rows have no message id, which the
unique index allows any number of).

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

_TABLE = "callback_request"


def upgrade() -> None:
    op.add_column(_TABLE, sa.Column("kind", sa.String(length=16), nullable=False,
                                    server_default="callback"))
    op.add_column(_TABLE, sa.Column("office", sa.String(length=80), nullable=True))
    op.add_column(_TABLE, sa.Column("recording", sa.String(length=400), nullable=True))
    op.add_column(_TABLE, sa.Column("message_id", sa.String(length=64), nullable=True))
    op.add_column(_TABLE, sa.Column("done_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(_TABLE, sa.Column("done_by", sa.String(length=64), nullable=True))
    op.add_column(_TABLE, sa.Column("note", sa.Text(), nullable=True))
    op.add_column(_TABLE, sa.Column("called_back_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(_TABLE, sa.Column("called_back_from", sa.String(length=64), nullable=True))
    op.create_index("ix_callback_request_message_id", _TABLE, ["message_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_callback_request_message_id", _TABLE)
    with op.batch_alter_table(_TABLE) as batch:
        for name in ("called_back_from", "called_back_at", "note", "done_by", "done_at",
                     "message_id", "recording", "office", "kind"):
            batch.drop_column(name)
