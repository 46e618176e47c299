"""A rights request's step that a person closed by hand (done outside leadpipe, or impossible): how, why, who and
when, beside the sink's own evidence, so a request that can never succeed can still be answered and shows why."""

import sqlalchemy as sa
from alembic import op

from pipeline.migrations.shapes import at, text

revision, down_revision = "0012_sink_closures", "0011_ingest_replay_rejections"


def upgrade() -> None:
    with op.batch_alter_table("rights_request_sinks", schema=None) as batch_op:
        batch_op.add_column(text("closed_as", 16, nullable=True))
        batch_op.add_column(text("closed_reason", nullable=True))
        batch_op.add_column(sa.Column("closed_by", sa.JSON(), nullable=True))
        batch_op.add_column(at("closed_at", nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rights_request_sinks", schema=None) as batch_op:
        for column in ("closed_at", "closed_by", "closed_reason", "closed_as"):
            batch_op.drop_column(column)
