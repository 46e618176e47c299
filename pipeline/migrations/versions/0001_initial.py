"""Initial schema: the key store (``data_keys``, crypto-shredding) and the CRM tables."""

import sqlalchemy as sa
from alembic import op

from pipeline.migrations.shapes import (
    at,
    big_id,
    cascade,
    create_indexes,
    document,
    drop_indexes,
    primary_key,
    subject_key,
    text,
)

revision, down_revision = "0001", None


def upgrade() -> None:
    op.create_table(
        "crm_audit",
        big_id(),
        at("at"),
        subject_key(nullable=True),
        text("action", 50),
        text("actor", 100),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("request_id", sa.Uuid(), nullable=True),
        document("detail"),
        primary_key("crm_audit", "id"),
    )
    create_indexes("crm_audit", "request_id", "subject_key")
    op.create_table(
        "crm_subjects",
        subject_key(),
        at("created_at"),
        at("updated_at"),
        at("first_seen_at", nullable=True),
        at("last_seen_at", nullable=True),
        text("first_name", 200, nullable=True),
        text("last_name", 200, nullable=True),
        text("position", 300, nullable=True),
        text("email", 320, nullable=True),
        text("phone", 32, nullable=True),
        text("location", 300, nullable=True),
        text("country_code", 2, nullable=True),
        text("company", 300, nullable=True),
        text("company_address", 500, nullable=True),
        text("skype_id", 100, nullable=True),
        text("linkedin_url", 500, nullable=True),
        at("profile_at", nullable=True),
        sa.Column("marketing_allowed", sa.Boolean(), nullable=True),
        sa.Column("marketing_objected", sa.Boolean(), nullable=False),
        at("marketing_objected_at", nullable=True),
        sa.Column("restricted", sa.Boolean(), nullable=False),
        at("restricted_at", nullable=True),
        at("erased_at", nullable=True),
        sa.Column("erasure_request_id", sa.Uuid(), nullable=True),
        primary_key("crm_subjects", "subject_key"),
    )
    op.create_table(
        "data_keys",
        text("key_id", 200),
        text("scope", 190),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(length=64), nullable=True),
        at("created_at"),
        at("destroyed_at", nullable=True),
        text("destroyed_reason", 200, nullable=True),
        primary_key("data_keys", "key_id"),
        sa.UniqueConstraint("scope", "generation", name=op.f("uq_data_keys_scope")),
    )
    create_indexes("data_keys", "scope")
    op.create_table(
        "crm_consents",
        big_id(),
        subject_key(),
        text("purpose", 40),
        sa.Column("granted", sa.Boolean(), nullable=False),
        at("given_at"),
        text("method", 30),
        text("wording", nullable=True),
        sa.Column("cause_event_id", sa.Uuid(), nullable=True),
        sa.Column("cause_request_id", sa.Uuid(), nullable=True),
        at("recorded_at"),
        cascade("crm_consents", "subject_key", "crm_subjects.subject_key"),
        primary_key("crm_consents", "id"),
        sa.UniqueConstraint("cause_event_id", "purpose", name="uq_crm_consents_event_purpose"),
        sa.UniqueConstraint("cause_request_id", "purpose", name="uq_crm_consents_request_purpose"),
    )
    create_indexes("crm_consents", "subject_key")
    op.create_table(
        "crm_identities",
        big_id(),
        subject_key(),
        text("kind", 40),
        text("value", 500),
        sa.Column("first_event_id", sa.Uuid(), nullable=True),
        at("created_at"),
        cascade("crm_identities", "subject_key", "crm_subjects.subject_key"),
        primary_key("crm_identities", "id"),
        sa.UniqueConstraint("subject_key", "kind", "value", name="uq_crm_identities_subject_kind_value"),
    )
    with op.batch_alter_table("crm_identities", schema=None) as batch_op:
        batch_op.create_index("ix_crm_identities_kind_value", ["kind", "value"], unique=False)
    op.create_table(
        "crm_interactions",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        subject_key(),
        text("channel", 20),
        text("kind", 40),
        at("occurred_at"),
        at("received_at"),
        at("written_at"),
        text("source_id", 100),
        text("source_ref", 200, nullable=True),
        text("subject_line", 1000, nullable=True),
        text("message", nullable=True),
        document("transcript", nullable=True),
        sa.Column("call_duration_s", sa.Float(), nullable=True),
        text("recording_ref", 500, nullable=True),
        text("page_url", 2000, nullable=True),
        text("event_name", 500, nullable=True),
        at("event_date", nullable=True),
        at("last_service_delivery_at", nullable=True),
        text("ip", 64, nullable=True),
        text("user_agent", 1000, nullable=True),
        text("device_id", 200, nullable=True),
        text("policy_version", 100),
        text("retention_clock", 40),
        at("retention_anchor_at"),
        at("retention_expires_at"),
        sa.Column("marketing_allowed", sa.Boolean(), nullable=False),
        sa.Column("spam_score", sa.Float(), nullable=True),
        document("purposes"),
        cascade("crm_interactions", "subject_key", "crm_subjects.subject_key"),
        primary_key("crm_interactions", "event_id"),
    )
    create_indexes("crm_interactions", "retention_expires_at", "subject_key")


def downgrade() -> None:
    drop_indexes("crm_interactions", "retention_expires_at", "subject_key")
    op.drop_table("crm_interactions")
    with op.batch_alter_table("crm_identities", schema=None) as batch_op:
        batch_op.drop_index("ix_crm_identities_kind_value")
    op.drop_table("crm_identities")
    drop_indexes("crm_consents", "subject_key")
    op.drop_table("crm_consents")
    drop_indexes("data_keys", "scope")
    op.drop_table("data_keys")
    op.drop_table("crm_subjects")
    drop_indexes("crm_audit", "request_id", "subject_key")
    op.drop_table("crm_audit")
