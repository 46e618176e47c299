"""Stitching of anonymous website visitors: which person identified on which visitor (cookie id) device, when.

``crm_visitor_links``: one row per (visitor key, subject key) with the earliest event that identified the person on
that visitor's device. Keys only (HMACs), no cookie id.
"""

import sqlalchemy as sa
from alembic import op

from pipeline.migrations.shapes import at, cascade, create_indexes, drop_indexes, primary_key, subject_key

revision, down_revision = "0007_visitor_links", "0006_ingest_replays"


def upgrade() -> None:
    op.create_table(
        "crm_visitor_links",
        subject_key("visitor_key"),
        subject_key(),
        at("linked_at"),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        at("created_at"),
        cascade("crm_visitor_links", "subject_key", "crm_subjects.subject_key"),
        primary_key("crm_visitor_links", "visitor_key", "subject_key"),
    )
    create_indexes("crm_visitor_links", "subject_key")


def downgrade() -> None:
    drop_indexes("crm_visitor_links", "subject_key")
    op.drop_table("crm_visitor_links")
