"""Every action names its person: the principal who issued, extended and recorded a notice on each rights request,
who completed each step (and who made each extension), who did each audited action; the ingest sources a producer
client is bound to; browser sessions after single sign-on.

Revision ID: 0008_actors
Revises: 0007_visitor_links
Create Date: 2026-12-06 01:52:04.727393

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_actors"
down_revision: str | Sequence[str] | None = "0007_visitor_links"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "principal_sources",
        sa.Column("principal_id", sa.String(length=36), nullable=False),
        sa.Column("source_id", sa.String(length=100), nullable=False),
        sa.Column("bound_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bound_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["principals.principal_id"],
            name=op.f("fk_principal_sources_principal_id_principals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("principal_id", "source_id", name=op.f("pk_principal_sources")),
    )
    op.create_table(
        "browser_sessions",
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("principal_id", sa.String(length=36), nullable=False),
        sa.Column("provider_roles", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["principals.principal_id"],
            name=op.f("fk_browser_sessions_principal_id_principals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_hash", name=op.f("pk_browser_sessions")),
    )
    with op.batch_alter_table("browser_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_browser_sessions_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_browser_sessions_principal_id"), ["principal_id"], unique=False)

    with op.batch_alter_table("rights_audit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("principal", sa.JSON(), nullable=True))

    with op.batch_alter_table("rights_request_sinks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("completed_by", sa.JSON(), nullable=True))

    with op.batch_alter_table("rights_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("issued_by_principal", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("extended_by_principal", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("notice_sent_by", sa.JSON(), nullable=True))

    with op.batch_alter_table("rights_request_extensions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("principal", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rights_request_extensions", schema=None) as batch_op:
        batch_op.drop_column("principal")

    with op.batch_alter_table("rights_requests", schema=None) as batch_op:
        batch_op.drop_column("notice_sent_by")
        batch_op.drop_column("extended_by_principal")
        batch_op.drop_column("issued_by_principal")

    with op.batch_alter_table("rights_request_sinks", schema=None) as batch_op:
        batch_op.drop_column("completed_by")

    with op.batch_alter_table("rights_audit", schema=None) as batch_op:
        batch_op.drop_column("principal")

    with op.batch_alter_table("browser_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_browser_sessions_principal_id"))
        batch_op.drop_index(batch_op.f("ix_browser_sessions_expires_at"))

    op.drop_table("browser_sessions")
    op.drop_table("principal_sources")
