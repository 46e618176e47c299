"""Sink deliveries: the events HubSpot already took, so a batch delivered again after a crash is not upserted twice.

Revision ID: 0007_sink_deliveries
Revises: 0006_ingest_replays
Create Date: 2026-12-06 03:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_sink_deliveries"
down_revision: str | Sequence[str] | None = "0006_ingest_replays"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sink_deliveries",
        sa.Column("sink", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sink", "event_id", name=op.f("pk_sink_deliveries")),
    )
    with op.batch_alter_table("sink_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sink_deliveries_updated_at"), ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sink_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sink_deliveries_updated_at"))
    op.drop_table("sink_deliveries")
