"""Endpoints that come back: parked deliveries, probes, slow-start recovery, rate limits, and
the body format a subscriber receives.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 00:00:00

``webhook_endpoints`` gains ``payload_format`` (``envelope`` | ``raw``), ``rate_limit_per_s``,
``probe_enabled``, ``probe_next_at`` and ``lifecycle`` (the probe and recovery state as JSON).
Endpoints that exist when this runs get ``payload_format = 'raw'``: their receivers keep getting
the bare payload they were built for; new endpoints default to the Standard Webhooks envelope.

``delivery_attempts`` gains ``trigger`` (``delivery`` | ``probe`` | ``test``) and ``endpoint_id``,
and its ``delivery_id`` becomes nullable: a probe or a test send is an attempt of an endpoint,
not of a delivery. The ``parked`` delivery state needs no schema change (states are strings).
The downgrade deletes those endpoint-only attempts (the old schema cannot hold them) and turns
parked deliveries into ``cancelled`` ones (``last_error`` ``endpoint_disabled``) that an enable
with ``replay_cancelled`` brings back.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMESTAMP = sa.DateTime(timezone=True)


def _attempts_at_0004() -> sa.Table:
    """``delivery_attempts`` as revision 0004 left it: SQLite's batch mode copies the table to
    change a column's nullability, and ``copy_from`` lets it do so without reflecting a live
    database (so ``alembic upgrade --sql`` works too)."""
    return sa.Table(
        "delivery_attempts",
        sa.MetaData(),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("delivery_id", sa.String(32), nullable=False),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
        sa.Column("started_at", _TIMESTAMP, nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(64), nullable=True),
        sa.Column("retryable", sa.Boolean(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("next_delay", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_attempts"),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name="fk_delivery_attempts_delivery_id_deliveries",
            ondelete="CASCADE",
        ),
        sa.Index(
            "ix_delivery_attempts_delivery_id_attempt_number", "delivery_id", "attempt_number"
        ),
    )


def upgrade() -> None:
    json_type = sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )
    # Columns added in place (SQLite's ADD COLUMN takes constant defaults): no table copy.
    with op.batch_alter_table("webhook_endpoints", recreate="never") as batch:
        batch.add_column(
            sa.Column("payload_format", sa.String(16), nullable=False, server_default="envelope")
        )
        batch.add_column(sa.Column("rate_limit_per_s", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("probe_enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("probe_next_at", _TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("lifecycle", json_type, nullable=True))
    op.execute("UPDATE webhook_endpoints SET payload_format = 'raw'")
    with op.batch_alter_table("delivery_attempts", copy_from=_attempts_at_0004()) as batch:
        batch.alter_column("delivery_id", existing_type=sa.String(32), nullable=True)
        batch.add_column(
            sa.Column("trigger", sa.String(16), nullable=False, server_default="delivery")
        )
        batch.add_column(sa.Column("endpoint_id", sa.String(32), nullable=True))
        batch.create_foreign_key(
            "fk_delivery_attempts_endpoint_id_webhook_endpoints",
            "webhook_endpoints",
            ["endpoint_id"],
            ["id"],
        )
        batch.create_index(
            "ix_delivery_attempts_endpoint_id_started_at", ["endpoint_id", "started_at"]
        )


def downgrade() -> None:
    op.execute("DELETE FROM delivery_attempts WHERE delivery_id IS NULL")
    op.execute(
        "UPDATE deliveries SET state = 'cancelled', last_error = 'endpoint_disabled', "
        "completed_at = updated_at WHERE state = 'parked'"
    )
    with op.batch_alter_table("delivery_attempts") as batch:
        batch.drop_index("ix_delivery_attempts_endpoint_id_started_at")
        batch.drop_constraint(
            "fk_delivery_attempts_endpoint_id_webhook_endpoints", type_="foreignkey"
        )
        batch.drop_column("endpoint_id")
        batch.drop_column("trigger")
        batch.alter_column("delivery_id", existing_type=sa.String(32), nullable=False)
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("lifecycle")
        batch.drop_column("probe_next_at")
        batch.drop_column("probe_enabled")
        batch.drop_column("rate_limit_per_s")
        batch.drop_column("payload_format")
