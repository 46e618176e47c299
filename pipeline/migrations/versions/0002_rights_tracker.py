"""Rights tracker: requests with deadlines, per-sink status and evidence, subject suppression state, audit.

Revision ID: 0002_rights
Revises: 0001
Create Date: 2026-11-30 00:44:12.129001

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002_rights"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "rights_audit",
        sa.Column("audit_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("subject_key", sa.String(length=128), nullable=True),
        sa.Column("request_id", sa.String(length=36), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("audit_id", name=op.f("pk_rights_audit")),
    )
    with op.batch_alter_table("rights_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rights_audit_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_rights_audit_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rights_audit_subject_key"), ["subject_key"], unique=False)

    op.create_table(
        "rights_requests",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject_key", sa.String(length=128), nullable=False),
        sa.Column("issued_by", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("extended_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("extension_months", sa.Integer(), nullable=True),
        sa.Column("extension_reason", sa.Text(), nullable=True),
        sa.Column("extended_by", sa.String(length=200), nullable=True),
        sa.Column("extended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notice_due", sa.Boolean(), nullable=False),
        sa.Column("notice_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("handover", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_rights_requests")),
    )
    with op.batch_alter_table("rights_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rights_requests_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_rights_requests_subject_key"), ["subject_key"], unique=False)

    op.create_table(
        "rights_subject_state",
        sa.Column("subject_key", sa.String(length=128), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject_key", name=op.f("pk_rights_subject_state")),
    )
    op.create_table(
        "rights_request_sinks",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("sink", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["rights_requests.request_id"],
            name=op.f("fk_rights_request_sinks_request_id_rights_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "sink", name=op.f("pk_rights_request_sinks")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("rights_request_sinks")
    op.drop_table("rights_subject_state")
    with op.batch_alter_table("rights_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rights_requests_subject_key"))
        batch_op.drop_index(batch_op.f("ix_rights_requests_state"))

    op.drop_table("rights_requests")
    with op.batch_alter_table("rights_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rights_audit_subject_key"))
        batch_op.drop_index(batch_op.f("ix_rights_audit_request_id"))
        batch_op.drop_index(batch_op.f("ix_rights_audit_at"))

    op.drop_table("rights_audit")
