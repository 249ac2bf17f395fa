"""Add webhook_endpoints.retry_config (a per-endpoint RetryConfig; NULL means the defaults) and
deliveries.round_start_attempt (where the current round of retries began).

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-01 00:00:01

JSON on SQLite, JSONB on PostgreSQL; nullable, so no existing row needs a value. Batch mode lets
the downgrade drop the column on SQLite too (env.py switches foreign keys off while SQLite copies
the table). ``round_start_attempt`` is the attempt counter's value when the current round of
retries began: 0, or where a manual retry / replay started a fresh round (retry budget and window
start again while the counter keeps counting).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json_type = sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.add_column(sa.Column("retry_config", json_type, nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("round_start_attempt", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("round_start_attempt")
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("retry_config")
