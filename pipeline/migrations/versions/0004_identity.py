"""Identity: principals (people and machine clients), their roles, API keys (hashes only), identity audit outbox."""

import sqlalchemy as sa
from alembic import op

from pipeline.migrations.shapes import at, cascade, create_indexes, drop_indexes, primary_key, text

revision, down_revision = "0004_identity", "0003_key_links"


def upgrade() -> None:
    op.create_table(
        "identity_audit",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        text("audit_id", 36),
        at("at"),
        text("record"),
        at("published_at", nullable=True),
        primary_key("identity_audit", "seq"),
        sa.UniqueConstraint("audit_id", name=op.f("uq_identity_audit_audit_id")),
    )
    create_indexes("identity_audit", "at", "published_at")
    op.create_table(
        "principals",
        text("principal_id", 36),
        text("name", 100),
        text("display_name", 200),
        text("kind", 16),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        at("disabled_at", nullable=True),
        text("issuer", 300, nullable=True),
        text("external_subject", 255, nullable=True),
        at("created_at"),
        text("created_by", 200),
        primary_key("principals", "principal_id"),
        sa.UniqueConstraint("issuer", "external_subject", name="uq_principals_issuer_subject"),
        sa.UniqueConstraint("name", name=op.f("uq_principals_name")),
    )
    op.create_table(
        "api_keys",
        text("key_id", 16),
        text("principal_id", 36),
        text("label", 200),
        text("key_hash", 64),
        at("created_at"),
        text("created_by", 200),
        at("expires_at", nullable=True),
        at("last_used_at", nullable=True),
        at("revoked_at", nullable=True),
        text("revoked_by", 200, nullable=True),
        cascade("api_keys", "principal_id", "principals.principal_id"),
        primary_key("api_keys", "key_id"),
    )
    create_indexes("api_keys", "principal_id")
    op.create_table(
        "principal_roles",
        text("principal_id", 36),
        text("role", 16),
        at("granted_at"),
        text("granted_by", 200),
        cascade("principal_roles", "principal_id", "principals.principal_id"),
        primary_key("principal_roles", "principal_id", "role"),
    )


def downgrade() -> None:
    op.drop_table("principal_roles")
    drop_indexes("api_keys", "principal_id")
    op.drop_table("api_keys")
    op.drop_table("principals")
    drop_indexes("identity_audit", "at", "published_at")
    op.drop_table("identity_audit")
