"""Links from shared payload keys to the subjects they cover (erasing one person destroys the shared key).

Revision ID: 0003_key_links
Revises: 0002_rights
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_key_links"
down_revision: str | Sequence[str] | None = "0002_rights"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "data_key_links",
        sa.Column("scope", sa.String(length=190), nullable=False),
        sa.Column("subject_scope", sa.String(length=190), nullable=False),
        sa.PrimaryKeyConstraint("scope", "subject_scope", name=op.f("pk_data_key_links")),
    )
    with op.batch_alter_table("data_key_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_data_key_links_subject_scope"), ["subject_scope"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("data_key_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_key_links_subject_scope"))
    op.drop_table("data_key_links")
