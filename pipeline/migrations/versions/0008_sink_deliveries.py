"""Sink deliveries: the events HubSpot already took, so a batch delivered again after a crash is not upserted twice."""

import sqlalchemy as sa
from alembic import op

from pipeline.migrations.shapes import at, create_indexes, drop_indexes, primary_key, text

revision, down_revision = "0008_sink_deliveries", "0007_visitor_links"


def upgrade() -> None:
    op.create_table(
        "sink_deliveries",
        text("sink", 32),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        text("state", 16),
        text("external_id", 64, nullable=True),
        at("updated_at"),
        primary_key("sink_deliveries", "sink", "event_id"),
    )
    create_indexes("sink_deliveries", "updated_at")


def downgrade() -> None:
    drop_indexes("sink_deliveries", "updated_at")
    op.drop_table("sink_deliveries")
