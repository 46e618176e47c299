"""Every action names its person: who issued, extended and sent the notice of each rights request, who completed each
step and made each extension, who did each audited action; the ingest sources a producer client is bound to; browser
sessions after single sign-on."""

import sqlalchemy as sa
from alembic import op

from pipeline.migrations.shapes import at, cascade, create_indexes, drop_indexes, primary_key, text

revision, down_revision = "0009_actors", "0008_sink_deliveries"

#: The principal columns (JSON, nullable: rows written before this revision name nobody), by table.
_PRINCIPAL_COLUMNS = {
    "rights_audit": ("principal",),
    "rights_request_sinks": ("completed_by",),
    "rights_requests": ("issued_by_principal", "extended_by_principal", "notice_sent_by"),
    "rights_request_extensions": ("principal",),
}


def upgrade() -> None:
    op.create_table(
        "principal_sources",
        text("principal_id", 36),
        text("source_id", 100),
        at("bound_at"),
        text("bound_by", 200),
        cascade("principal_sources", "principal_id", "principals.principal_id"),
        primary_key("principal_sources", "principal_id", "source_id"),
    )
    op.create_table(
        "browser_sessions",
        text("session_hash", 64),
        text("principal_id", 36),
        text("provider_roles", 200),
        at("created_at"),
        at("expires_at"),
        at("revoked_at", nullable=True),
        cascade("browser_sessions", "principal_id", "principals.principal_id"),
        primary_key("browser_sessions", "session_hash"),
    )
    create_indexes("browser_sessions", "expires_at", "principal_id")
    for table, columns in _PRINCIPAL_COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.add_column(sa.Column(column, sa.JSON(), nullable=True))


def downgrade() -> None:
    for table, columns in reversed(_PRINCIPAL_COLUMNS.items()):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in reversed(columns):
                batch_op.drop_column(column)
    drop_indexes("browser_sessions", "expires_at", "principal_id")
    op.drop_table("browser_sessions")
    op.drop_table("principal_sources")
