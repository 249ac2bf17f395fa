"""The four tables hookline keeps: webhook endpoints, events, deliveries and delivery attempts.

States and statuses are plain ``String(16)`` columns holding the values ``hookline.domain``
defines (storage does not import the domain); the allowed values are listed beside each column.
Every timestamp is a ``UtcDateTime`` the application passes in from its ``Clock``: there are no
server-side defaults that read the database's clock. Ids are ``String(32)`` primary keys made by
``hookline.ids.new_id`` (``wh_``/``evt_``/``dlv_``/``att_``).

The schema itself is owned by the Alembic revisions in ``migrations/versions``; a drift test keeps
these models and the migrations in step, so change both together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hookline.storage.types import JSONVariant, UtcDateTime

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so migrations can name what they drop or alter."""

ID_LENGTH = 32
STATE_LENGTH = 16


class Base(DeclarativeBase):
    """Declarative base; ``Base.metadata`` is what Alembic compares the database against."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Endpoint(Base):
    """A subscriber URL (the API calls it a webhook) with its secret, filters and health."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    # Event types this endpoint receives; an empty list means all of them.
    event_types: Mapped[list[str]] = mapped_column(JSONVariant, default=list)
    # Extra request headers sent with every delivery.
    headers: Mapped[dict[str, str]] = mapped_column(JSONVariant, default=dict)
    # "whsec_" + base64; the previous one keeps verifying until previous_secret_expires_at.
    secret: Mapped[str] = mapped_column(String(128))
    previous_secret: Mapped[str | None] = mapped_column(String(128), default=None)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # active | disabled | recovering
    status: Mapped[str] = mapped_column(String(STATE_LENGTH), default="active")
    # gone (410) | not_found (404) | failing (FAILURE_DISABLE_WINDOW of failures) | manual | NULL
    disabled_reason: Mapped[str | None] = mapped_column(String(STATE_LENGTH), default=None)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # A RetryConfig as a JSON object (JSONB on PostgreSQL); NULL means the defaults.
    retry_config: Mapped[dict[str, Any] | None] = mapped_column(JSONVariant, default=None)
    # Send the W3C ``traceparent`` header with deliveries; NULL = HOOKLINE_TRACE_PROPAGATION.
    trace_propagation: Mapped[bool | None] = mapped_column(Boolean, default=None)
    # envelope (Standard Webhooks {"type", "timestamp", "data"}) | raw (the payload alone)
    payload_format: Mapped[str] = mapped_column(
        String(STATE_LENGTH), default="envelope", server_default="envelope"
    )
    # Most requests per second to this endpoint, across all workers; NULL: no limit.
    rate_limit_per_s: Mapped[float | None] = mapped_column(Float, default=None)
    # Probe it while it is disabled as failing (opt-out per endpoint).
    probe_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # When the next probe is due (disabled as failing); NULL otherwise.
    probe_next_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # The probe and recovery state (domain.lifecycle) as JSON; NULL while active.
    lifecycle: Mapped[dict[str, Any] | None] = mapped_column(JSONVariant, default=None)
    # Start of the current run of failed attempts with no success in between; NULL when healthy.
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # DELETE is a soft delete: deliveries keep pointing at their endpoint.
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)

    __table_args__ = (Index("ix_webhook_endpoints_status", "status"),)


class Event(Base):
    """One published event; its payload is the exact byte sequence every delivery sends."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(255))
    # The compact JSON text that is signed and sent. Not a JSON column: JSONB would reorder keys,
    # and every retry must send (and sign) the same bytes.
    payload: Mapped[str] = mapped_column(Text)
    # Unique when present; any number of events may have none.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # W3C trace context (``traceparent``) of the publish, when tracing is on: every attempt's
    # span, in any process and hours later, is a child of the publishing trace.
    trace_context: Mapped[str | None] = mapped_column(String(512), default=None)

    # GET /events pages newest first.
    __table_args__ = (Index("ix_events_created_at_id", "created_at", "id"),)


class Delivery(Base):
    """One event on its way to one endpoint: its state, due time, lease and attempt counter.

    ``version`` is an optimistic lock the service checks itself (``UPDATE ... WHERE version = :v``
    in batch updates), deliberately not the mapper's ``version_id_col``.
    """

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("events.id"))
    endpoint_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("webhook_endpoints.id"))
    # pending | delivering | succeeded | retrying | failed (the dead letter) | cancelled | parked
    state: Mapped[str] = mapped_column(String(STATE_LENGTH), default="pending")
    # Attempts made so far (0 before the first one).
    attempt_number: Mapped[int] = mapped_column(Integer, default=0)
    # attempt_number when the current round of retries began: 0, or where a manual retry or a
    # replay started a fresh round (the retry budget and the window start again from there).
    round_start_attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the next attempt is due; NULL once the delivery is finished.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # A worker's claim: nobody else runs this delivery until then (SqlQueue).
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # Start of the retry window (max_retry_duration counts from here).
    first_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Set on entering succeeded, failed or cancelled.
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    version: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        # due deliveries: WHERE state IN (...) AND next_attempt_at <= :now
        Index("ix_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
        # an endpoint's deliveries by state (stats, cancel on disable/delete, replay)
        Index("ix_deliveries_endpoint_id_state", "endpoint_id", "state"),
        # an event's deliveries
        Index("ix_deliveries_event_id", "event_id"),
        # newest-first lists with a (created_at, id) cursor
        Index("ix_deliveries_created_at_id", "created_at", "id"),
        # pruning: finished deliveries older than RETENTION_DAYS
        Index("ix_deliveries_state_completed_at", "state", "completed_at"),
    )


class DeliveryAttempt(Base):
    """The record of one HTTP attempt of a delivery and what was decided after it."""

    __tablename__ = "delivery_attempts"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    # NULL for an attempt of the endpoint itself (a probe or a test send: ``endpoint_id``).
    delivery_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=True
    )
    # delivery (an attempt of a delivery) | probe | test
    trigger: Mapped[str] = mapped_column(
        String(STATE_LENGTH), default="delivery", server_default="delivery"
    )
    # Set for probes and test sends only (a delivery's attempts are found through the delivery).
    endpoint_id: Mapped[str | None] = mapped_column(
        String(ID_LENGTH), ForeignKey("webhook_endpoints.id"), default=None
    )
    # 1 for the first attempt.
    attempt_number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    duration_ms: Mapped[int] = mapped_column(Integer)
    # NULL when no response arrived.
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    # timeout | connect | tls | blocked_address | redirect | ... ; NULL for an HTTP answer.
    error: Mapped[str | None] = mapped_column(String(64), default=None)
    retryable: Mapped[bool] = mapped_column(Boolean)
    # The first 4 KiB of the response body (the sender caps the read).
    response_body: Mapped[str | None] = mapped_column(Text, default=None)
    # Seconds until the retry this attempt scheduled; NULL if none.
    next_delay: Mapped[float | None] = mapped_column(Float, default=None)

    __table_args__ = (
        Index("ix_delivery_attempts_delivery_id_attempt_number", "delivery_id", "attempt_number"),
        Index("ix_delivery_attempts_endpoint_id_started_at", "endpoint_id", "started_at"),
    )
