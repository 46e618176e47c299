"""Ingest replay guard: a rejected signed request's answer, so its replay gets it again without a second dead letter."""

from alembic import op

from pipeline.migrations.shapes import text

revision, down_revision = "0011_ingest_replay_rejections", "0010_request_traces"


def upgrade() -> None:
    with op.batch_alter_table("ingest_replays", schema=None) as batch_op:
        batch_op.add_column(text("rejection", nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ingest_replays", schema=None) as batch_op:
        batch_op.drop_column("rejection")
