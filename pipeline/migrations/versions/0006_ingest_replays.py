"""Ingest replay guard: accepted signed requests, until their signature's timestamp leaves the tolerance window."""

from alembic import op

from pipeline.migrations.shapes import at, create_indexes, drop_indexes, primary_key, text

revision, down_revision = "0006_ingest_replays", "0005_rights_extensions_aliases"


def upgrade() -> None:
    op.create_table(
        "ingest_replays",
        text("source_id", 200),
        text("signature_hash", 64),
        at("expires_at"),
        text("event_ids"),
        primary_key("ingest_replays", "source_id", "signature_hash"),
    )
    create_indexes("ingest_replays", "expires_at")


def downgrade() -> None:
    drop_indexes("ingest_replays", "expires_at")
    op.drop_table("ingest_replays")
