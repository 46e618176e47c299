"""Links from shared payload keys to the subjects they cover (erasing one person destroys the shared key)."""

from alembic import op

from pipeline.migrations.shapes import create_indexes, drop_indexes, primary_key, text

revision, down_revision = "0003_key_links", "0002_rights"


def upgrade() -> None:
    op.create_table(
        "data_key_links",
        text("scope", 190),
        text("subject_scope", 190),
        primary_key("data_key_links", "scope", "subject_scope"),
    )
    create_indexes("data_key_links", "subject_scope")


def downgrade() -> None:
    drop_indexes("data_key_links", "subject_scope")
    op.drop_table("data_key_links")
