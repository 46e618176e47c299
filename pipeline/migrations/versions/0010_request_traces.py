"""A rights request keeps the trace context it arrived in (W3C ``traceparent``, no personal data), so that the retry
timer's later runs of it continue that trace instead of starting traces of their own."""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0010_request_traces", "0009_actors"


def upgrade() -> None:
    with op.batch_alter_table("rights_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("traceparent", sa.String(length=55), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rights_requests", schema=None) as batch_op:
        batch_op.drop_column("traceparent")
