"""Event shapes: ``EventIn`` (publish), ``PublishedEventOut`` (its answer), ``EventOut`` (read
one, with its deliveries), ``EventSummaryOut`` (an item of the list: the delivery count only)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from pydantic import AfterValidator, Field

from hookline.api.schemas.common import (
    MAX_JSON_DEPTH,
    InputModel,
    OutputModel,
    StorableText,
    UtcDatetime,
)
from hookline.api.schemas.deliveries import DeliveryOut
from hookline.domain.event_types import EVENT_TYPE_FORBIDDEN_REGEX, validate_event_type

if TYPE_CHECKING:
    from hookline.service.events import PublishResult
    from hookline.service.queries import EventSummary, EventWithDeliveries
    from hookline.storage.models import Event


def _finite_and_shallow(value: Any) -> None:
    """Refuse NaN/Infinity anywhere in ``value`` and nesting deeper than ``MAX_JSON_DEPTH``
    (one iterative walk: a deep value cannot exhaust the stack)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("must be JSON: NaN and Infinity are not JSON numbers")
        if isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise ValueError(
                    f"must not nest arrays/objects deeper than {MAX_JSON_DEPTH} levels"
                )
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def _sendable_json(value: Any) -> Any:
    """The payload unchanged if it is JSON hookline can store and send byte for byte."""
    _finite_and_shallow(value)
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError as exc:  # lone surrogates, integers beyond 64 bits, depth
        raise ValueError(f"cannot be sent as JSON: {exc}") from exc
    return value


EventType = Annotated[
    StorableText,
    Field(
        min_length=1,
        max_length=255,
        description="The literal type of this event, e.g. `order.created`; no `*` (that is for "
        "the patterns webhooks subscribe with).",
        examples=["order.created"],
        json_schema_extra={"not": {"pattern": EVENT_TYPE_FORBIDDEN_REGEX}},
    ),
    AfterValidator(validate_event_type),
]


class EventIn(InputModel):
    """An event to publish to every active webhook subscribed to its type."""

    event_type: EventType
    payload: Annotated[Any, AfterValidator(_sendable_json)] = Field(
        description="Any JSON value, at most MAX_PAYLOAD_BYTES (default 256 KiB) as compact "
        f"JSON, nested at most {MAX_JSON_DEPTH} arrays/objects deep, integers written without "
        "a fraction or exponent within -2^63..2^64-1; sent to subscribers as the request body.",
        examples=[{"order_id": 1234, "total": "19.99"}],
    )
    idempotency_key: Annotated[StorableText, Field(min_length=1, max_length=255)] | None = Field(
        None,
        description="A repeat with the same key, the same event_type and an equal payload (as "
        "JSON values: key order and whitespace aside; 1 and 1.0 differ) returns the first event "
        "(200) and creates nothing; the same key with a different event_type or payload is a 409.",
    )


class DeliveryRefOut(OutputModel):
    """A delivery created by a publish: its id and the webhook it goes to."""

    id: str = Field(examples=["dlv_01JH8X4T0Q3W8YV4ZK9D3M2N1P"])
    webhook_id: str


class PublishedEventOut(OutputModel):
    """The published event (or, for a repeated idempotency key, the first one)."""

    id: str = Field(examples=["evt_01JH8X4T0Q3W8YV4ZK9D3M2N1P"])
    event_type: str
    idempotency_key: str | None
    created_at: UtcDatetime
    deliveries: list[DeliveryRefOut]

    @classmethod
    def from_result(cls, result: PublishResult) -> PublishedEventOut:
        event = result.event
        return cls(
            id=event.id,
            event_type=event.event_type,
            idempotency_key=event.idempotency_key,
            created_at=event.created_at,
            deliveries=[
                DeliveryRefOut(id=d.id, webhook_id=d.endpoint_id) for d in result.deliveries
            ],
        )


def _event_fields(event: Event) -> dict[str, Any]:
    """What every event shape shows of the stored event (the payload parsed back to JSON)."""
    return {
        "id": event.id,
        "event_type": event.event_type,
        "payload": orjson.loads(event.payload),
        "idempotency_key": event.idempotency_key,
        "created_at": event.created_at,
    }


class _EventBase(OutputModel):
    """The fields of a published event; the shapes below add what they tell about deliveries."""

    id: str
    event_type: str
    payload: Any = Field(description="The JSON value published.")
    idempotency_key: str | None
    created_at: UtcDatetime


class EventOut(_EventBase):
    """An event with its payload and every delivery it fanned out to (newest first)."""

    deliveries: list[DeliveryOut]

    @classmethod
    def from_found(cls, found: EventWithDeliveries) -> EventOut:
        return cls(
            **_event_fields(found.event),
            deliveries=[DeliveryOut.from_delivery(d) for d in found.deliveries],
        )


class EventSummaryOut(_EventBase):
    """An event with its payload; `GET /events/{event_id}` shows its deliveries."""

    delivery_count: int = Field(
        description="How many deliveries the event has now: one per webhook it fanned out to, "
        "less those pruned after RETENTION_DAYS."
    )

    @classmethod
    def from_summary(cls, summary: EventSummary) -> EventSummaryOut:
        return cls(**_event_fields(summary.event), delivery_count=summary.delivery_count)
