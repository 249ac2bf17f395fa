"""Delivery shapes: ``DeliveryOut``, ``AttemptOut``, the detail view, and dead-letter replay."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from hookline.api.schemas.common import (
    TIMESTAMP_RULE,
    AwareUtcDatetime,
    InputModel,
    OutputModel,
    UtcDatetime,
    WebhookIdField,
)
from hookline.domain.states import DeliveryState

if TYPE_CHECKING:
    from hookline.service.queries import DeliveryWithAttempts
    from hookline.storage.models import Delivery


class DeliveryOut(OutputModel):
    """One event on its way to one webhook."""

    id: str = Field(examples=["dlv_01JH8X4T0Q3W8YV4ZK9D3M2N1P"])
    event_id: str
    webhook_id: str
    state: DeliveryState = Field(description="failed is the dead-letter state.")
    attempt_number: int = Field(description="Attempts made so far.")
    next_attempt_at: UtcDatetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: UtcDatetime
    completed_at: UtcDatetime | None

    @classmethod
    def from_delivery(cls, delivery: Delivery) -> DeliveryOut:
        return cls(
            id=delivery.id,
            event_id=delivery.event_id,
            webhook_id=delivery.endpoint_id,
            state=DeliveryState(delivery.state),
            attempt_number=delivery.attempt_number,
            next_attempt_at=delivery.next_attempt_at,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            completed_at=delivery.completed_at,
        )


class AttemptOut(OutputModel):
    """One HTTP attempt of a delivery and what was decided after it."""

    id: str = Field(examples=["att_01JH8X4T0Q3W8YV4ZK9D3M2N1P"])
    attempt_number: int
    started_at: UtcDatetime
    duration_ms: int
    status_code: int | None = Field(description="Null when no response arrived.")
    error: str | None = Field(
        description="timeout, connect, tls, blocked_address, redirect, ...; null for an "
        "HTTP answer that needs no explanation.",
    )
    retryable: bool
    response_body: str | None = Field(description="The first 4 KiB of the response body.")
    next_delay: float | None = Field(description="Seconds until the retry it scheduled.")


class DeliveryDetailOut(DeliveryOut):
    """A delivery with its attempts, first attempt first."""

    attempts: list[AttemptOut]

    @classmethod
    def from_found(cls, found: DeliveryWithAttempts) -> DeliveryDetailOut:
        base = DeliveryOut.from_delivery(found.delivery)
        return cls(
            **base.model_dump(),
            attempts=[AttemptOut.model_validate(a) for a in found.attempts],
        )


class ReplayIn(InputModel):
    """Which dead letters to send again; nothing given means all of them."""

    webhook_id: WebhookIdField | None = Field(None, description="Only this webhook's.")
    since: AwareUtcDatetime | None = Field(
        None, description=f"Only those that failed at or after this time: {TIMESTAMP_RULE}"
    )


class ReplayOut(OutputModel):
    """How many dead letters went back to the queue, and how many matching ones did not, by
    reason."""

    replayed: int = Field(description="Dead letters queued again, due now.")
    skipped: dict[str, int] = Field(
        description="Dead letters that matched but were not queued again, counted by reason: "
        "`endpoint_disabled` (enable the webhook first), `endpoint_deleted`; empty when none "
        "were skipped. The reasons are those a manual retry's 409 names.",
        examples=[{"endpoint_disabled": 2}],
    )
