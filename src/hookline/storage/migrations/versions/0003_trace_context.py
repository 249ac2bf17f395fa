"""Add events.trace_context (the W3C trace context of the publish) and
webhook_endpoints.trace_propagation (per-endpoint switch of the ``traceparent`` header).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 00:00:00

Both nullable, so no existing row needs a value: an event without a trace context starts a new
trace per attempt; an endpoint with NULL follows ``HOOKLINE_TRACE_PROPAGATION``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("trace_context", sa.String(512), nullable=True))
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.add_column(sa.Column("trace_propagation", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("trace_propagation")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("trace_context")
