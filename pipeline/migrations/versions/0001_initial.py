"""Initial schema: the key store (``data_keys``, crypto-shredding) and the CRM tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-30

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "crm_audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subject_key", sa.String(length=128), nullable=True),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.Column(
            "detail", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_audit")),
    )
    with op.batch_alter_table("crm_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_crm_audit_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_crm_audit_subject_key"), ["subject_key"], unique=False)

    op.create_table(
        "crm_subjects",
        sa.Column("subject_key", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_name", sa.String(length=200), nullable=True),
        sa.Column("last_name", sa.String(length=200), nullable=True),
        sa.Column("position", sa.String(length=300), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("location", sa.String(length=300), nullable=True),
        sa.Column("country_code", sa.String(length=2), nullable=True),
        sa.Column("company", sa.String(length=300), nullable=True),
        sa.Column("company_address", sa.String(length=500), nullable=True),
        sa.Column("skype_id", sa.String(length=100), nullable=True),
        sa.Column("linkedin_url", sa.String(length=500), nullable=True),
        sa.Column("profile_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("marketing_allowed", sa.Boolean(), nullable=True),
        sa.Column("marketing_objected", sa.Boolean(), nullable=False),
        sa.Column("marketing_objected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("restricted", sa.Boolean(), nullable=False),
        sa.Column("restricted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("erasure_request_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("subject_key", name=op.f("pk_crm_subjects")),
    )
    op.create_table(
        "data_keys",
        sa.Column("key_id", sa.String(length=200), nullable=False),
        sa.Column("scope", sa.String(length=190), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("destroyed_reason", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_data_keys")),
        sa.UniqueConstraint("scope", "generation", name=op.f("uq_data_keys_scope")),
    )
    with op.batch_alter_table("data_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_keys_scope"), ["scope"], unique=False)

    op.create_table(
        "crm_consents",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("subject_key", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=30), nullable=False),
        sa.Column("wording", sa.Text(), nullable=True),
        sa.Column("cause_event_id", sa.Uuid(), nullable=True),
        sa.Column("cause_request_id", sa.Uuid(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_key"],
            ["crm_subjects.subject_key"],
            name=op.f("fk_crm_consents_subject_key_crm_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_consents")),
        sa.UniqueConstraint("cause_event_id", "purpose", name="uq_crm_consents_event_purpose"),
        sa.UniqueConstraint("cause_request_id", "purpose", name="uq_crm_consents_request_purpose"),
    )
    with op.batch_alter_table("crm_consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_crm_consents_subject_key"), ["subject_key"], unique=False)

    op.create_table(
        "crm_identities",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("subject_key", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=500), nullable=False),
        sa.Column("first_event_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_key"],
            ["crm_subjects.subject_key"],
            name=op.f("fk_crm_identities_subject_key_crm_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_identities")),
        sa.UniqueConstraint("subject_key", "kind", "value", name="uq_crm_identities_subject_kind_value"),
    )
    with op.batch_alter_table("crm_identities", schema=None) as batch_op:
        batch_op.create_index("ix_crm_identities_kind_value", ["kind", "value"], unique=False)

    op.create_table(
        "crm_interactions",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("subject_key", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source_id", sa.String(length=100), nullable=False),
        sa.Column("source_ref", sa.String(length=200), nullable=True),
        sa.Column("subject_line", sa.String(length=1000), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column(
            "transcript", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("call_duration_s", sa.Float(), nullable=True),
        sa.Column("recording_ref", sa.String(length=500), nullable=True),
        sa.Column("page_url", sa.String(length=2000), nullable=True),
        sa.Column("event_name", sa.String(length=500), nullable=True),
        sa.Column("event_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_service_delivery_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=1000), nullable=True),
        sa.Column("device_id", sa.String(length=200), nullable=True),
        sa.Column("policy_version", sa.String(length=100), nullable=False),
        sa.Column("retention_clock", sa.String(length=40), nullable=False),
        sa.Column("retention_anchor_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retention_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("marketing_allowed", sa.Boolean(), nullable=False),
        sa.Column("spam_score", sa.Float(), nullable=True),
        sa.Column(
            "purposes", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["subject_key"],
            ["crm_subjects.subject_key"],
            name=op.f("fk_crm_interactions_subject_key_crm_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_crm_interactions")),
    )
    with op.batch_alter_table("crm_interactions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_crm_interactions_retention_expires_at"), ["retention_expires_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_crm_interactions_subject_key"), ["subject_key"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("crm_interactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crm_interactions_subject_key"))
        batch_op.drop_index(batch_op.f("ix_crm_interactions_retention_expires_at"))

    op.drop_table("crm_interactions")
    with op.batch_alter_table("crm_identities", schema=None) as batch_op:
        batch_op.drop_index("ix_crm_identities_kind_value")

    op.drop_table("crm_identities")
    with op.batch_alter_table("crm_consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crm_consents_subject_key"))

    op.drop_table("crm_consents")
    with op.batch_alter_table("data_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_keys_scope"))

    op.drop_table("data_keys")
    op.drop_table("crm_subjects")
    with op.batch_alter_table("crm_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crm_audit_subject_key"))
        batch_op.drop_index(batch_op.f("ix_crm_audit_request_id"))

    op.drop_table("crm_audit")
