"""Rights: every extension of a request kept (policy 9.1), and aliases of corrected e-mail addresses (policy 9.2).

``rights_request_extensions``: one row per extension, so extensions add up (to two months at most) and every reason
is kept; an extension recorded before this revision becomes its first row. ``crm_subject_aliases``: an old subject
key (the HMAC of a corrected address) leading to the person's current key, when the DPO kept the old address as an
alias.

Revision ID: 0005_rights_extensions_aliases
Revises: 0004_identity
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_rights_extensions_aliases"
down_revision: str | Sequence[str] | None = "0004_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rights_request_extensions",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("months", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("extended_by", sa.String(length=200), nullable=False),
        sa.Column("extended_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["rights_requests.request_id"],
            name=op.f("fk_rights_request_extensions_request_id_rights_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "seq", name=op.f("pk_rights_request_extensions")),
    )
    op.execute(
        "INSERT INTO rights_request_extensions (request_id, seq, months, reason, extended_by, extended_at) "
        "SELECT request_id, 1, extension_months, extension_reason, COALESCE(extended_by, 'unknown'), "
        "COALESCE(extended_at, received_at) FROM rights_requests "
        "WHERE extension_months IS NOT NULL AND extension_reason IS NOT NULL"
    )
    op.create_table(
        "crm_subject_aliases",
        sa.Column("alias_key", sa.String(length=128), nullable=False),
        sa.Column("subject_key", sa.String(length=128), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_key"],
            ["crm_subjects.subject_key"],
            name=op.f("fk_crm_subject_aliases_subject_key_crm_subjects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alias_key", name=op.f("pk_crm_subject_aliases")),
    )
    with op.batch_alter_table("crm_subject_aliases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_crm_subject_aliases_subject_key"), ["subject_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("crm_subject_aliases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crm_subject_aliases_subject_key"))
    op.drop_table("crm_subject_aliases")
    op.drop_table("rights_request_extensions")
