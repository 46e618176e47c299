"""Rights: every extension of a request kept (policy 9.1), and aliases of corrected e-mail addresses (policy 9.2).

``rights_request_extensions``: one row per extension, so extensions add up (to two months at most) and every reason
is kept; an extension recorded before this revision becomes its first row. ``crm_subject_aliases``: an old subject
key (the HMAC of a corrected address) leading to the person's current key, when the DPO kept the old address as an
alias.
"""

import sqlalchemy as sa
from alembic import op

from pipeline.migrations.shapes import at, cascade, create_indexes, drop_indexes, primary_key, subject_key, text

revision, down_revision = "0005_rights_extensions_aliases", "0004_identity"


def upgrade() -> None:
    op.create_table(
        "rights_request_extensions",
        text("request_id", 36),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("months", sa.Integer(), nullable=False),
        text("reason"),
        text("extended_by", 200),
        at("extended_at"),
        cascade("rights_request_extensions", "request_id", "rights_requests.request_id"),
        primary_key("rights_request_extensions", "request_id", "seq"),
    )
    op.execute(
        "INSERT INTO rights_request_extensions (request_id, seq, months, reason, extended_by, extended_at) "
        "SELECT request_id, 1, extension_months, extension_reason, COALESCE(extended_by, 'unknown'), "
        "COALESCE(extended_at, received_at) FROM rights_requests "
        "WHERE extension_months IS NOT NULL AND extension_reason IS NOT NULL"
    )
    op.create_table(
        "crm_subject_aliases",
        subject_key("alias_key"),
        subject_key(),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        at("created_at"),
        cascade("crm_subject_aliases", "subject_key", "crm_subjects.subject_key"),
        primary_key("crm_subject_aliases", "alias_key"),
    )
    create_indexes("crm_subject_aliases", "subject_key")


def downgrade() -> None:
    drop_indexes("crm_subject_aliases", "subject_key")
    op.drop_table("crm_subject_aliases")
    op.drop_table("rights_request_extensions")
