"""Ingest replay guard: accepted signed requests, until their signature's timestamp leaves the tolerance window.

Revision ID: 0006_ingest_replays
Revises: 0005_rights_extensions_aliases
Create Date: 2026-12-06 02:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_ingest_replays"
down_revision: str | Sequence[str] | None = "0005_rights_extensions_aliases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_replays",
        sa.Column("source_id", sa.String(length=200), nullable=False),
        sa.Column("signature_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_ids", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("source_id", "signature_hash", name=op.f("pk_ingest_replays")),
    )
    with op.batch_alter_table("ingest_replays", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingest_replays_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ingest_replays", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingest_replays_expires_at"))
    op.drop_table("ingest_replays")
