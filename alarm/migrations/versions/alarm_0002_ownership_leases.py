"""Who holds each open alarm: its owner (a switchboard instance) and until when;
and the Asterisk server its caller is on (where its calls are placed).

Expand only: two nullable columns and an index. An instance on the code
before leases ignores them; its alarms keep a NULL owner, which an instance
with leases takes up only when it starts (as a restart always did).

Revision ID: alarm_0002
Revises: alarm_0001
Create Date: 2026-12-03

"""
from alembic import op
import sqlalchemy as sa

revision = "alarm_0002"
down_revision = "alarm_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alarm", sa.Column("owner", sa.String(length=120), nullable=True))
    op.add_column("alarm", sa.Column("lease_until", sa.DateTime(), nullable=True))
    op.add_column("alarm", sa.Column("asterisk", sa.String(length=40), nullable=True))
    op.create_index("ix_alarm_owner", "alarm", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_alarm_owner", table_name="alarm")
    with op.batch_alter_table("alarm") as batch:
        batch.drop_column("asterisk")
        batch.drop_column("lease_until")
        batch.drop_column("owner")
