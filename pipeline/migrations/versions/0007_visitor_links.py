"""Stitching of anonymous website visitors: which person identified on which visitor (cookie id) device, when.

``crm_visitor_links``: one row per (visitor key, subject key) with the earliest event that identified the person on
that visitor's device. Keys only (HMACs), no cookie id.

Revision ID: 0007_visitor_links
Revises: 0006_ingest_replays
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_visitor_links"
down_revision: str | Sequence[str] | None = "0006_ingest_replays"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "crm_visitor_links",
        sa.Column("visitor_key", sa.String(length=128), nullable=False),
        sa.Column("subject_key", sa.String(length=128), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_key"],
            ["crm_subjects.subject_key"],
            name=op.f("fk_crm_visitor_links_subject_key_crm_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("visitor_key", "subject_key", name=op.f("pk_crm_visitor_links")),
    )
    with op.batch_alter_table("crm_visitor_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_crm_visitor_links_subject_key"), ["subject_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("crm_visitor_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crm_visitor_links_subject_key"))
    op.drop_table("crm_visitor_links")
