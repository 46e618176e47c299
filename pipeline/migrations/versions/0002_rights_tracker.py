"""Rights tracker: requests with deadlines, per-sink status and evidence, subject suppression state, audit."""

import sqlalchemy as sa
from alembic import op

from pipeline.migrations.shapes import at, cascade, create_indexes, drop_indexes, primary_key, subject_key, text

revision, down_revision = "0002_rights", "0001"


def upgrade() -> None:
    op.create_table(
        "rights_audit",
        text("audit_id", 36),
        at("at"),
        text("actor", 200),
        text("action", 100),
        subject_key(nullable=True),
        text("request_id", 36, nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        primary_key("rights_audit", "audit_id"),
    )
    create_indexes("rights_audit", "at", "request_id", "subject_key")
    op.create_table(
        "rights_requests",
        text("request_id", 36),
        text("kind", 32),
        subject_key(),
        text("issued_by", 200),
        at("received_at"),
        at("due_at"),
        at("extended_due_at", nullable=True),
        sa.Column("extension_months", sa.Integer(), nullable=True),
        text("extension_reason", nullable=True),
        text("extended_by", 200, nullable=True),
        at("extended_at", nullable=True),
        text("state", 16),
        at("completed_at", nullable=True),
        at("published_at", nullable=True),
        sa.Column("notice_due", sa.Boolean(), nullable=False),
        at("notice_sent_at", nullable=True),
        text("command"),
        text("handover", nullable=True),
        primary_key("rights_requests", "request_id"),
    )
    create_indexes("rights_requests", "state", "subject_key")
    op.create_table(
        "rights_subject_state",
        subject_key(),
        text("state"),
        at("updated_at"),
        primary_key("rights_subject_state", "subject_key"),
    )
    op.create_table(
        "rights_request_sinks",
        text("request_id", 36),
        text("sink", 32),
        text("status", 16),
        sa.Column("attempts", sa.Integer(), nullable=False),
        text("last_error", nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        at("updated_at"),
        cascade("rights_request_sinks", "request_id", "rights_requests.request_id"),
        primary_key("rights_request_sinks", "request_id", "sink"),
    )


def downgrade() -> None:
    op.drop_table("rights_request_sinks")
    op.drop_table("rights_subject_state")
    drop_indexes("rights_requests", "state", "subject_key")
    op.drop_table("rights_requests")
    drop_indexes("rights_audit", "at", "request_id", "subject_key")
    op.drop_table("rights_audit")
