"""SQL of publishing: idempotency look-ups, subscriber matching, event + fan-out inserts.

Publishing writes in groups (``service.event_writer``): whatever the size of a group, it costs one
look-up of the endpoints (active ones, and disabled or recovering ones, which park), at most two
look-ups of idempotency keys (events, then their deliveries) and one insert of events and
deliveries. That path runs on an ``AsyncConnection``
with Core statements built once (no unit of work, no ORM objects: rows in, ``EventRow`` and
``DeliveryRow`` out); ``find_by_idempotency_key`` takes a session like the other repositories.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple, cast

from sqlalchemy import (
    Integer,
    String,
    Table,
    Text,
    bindparam,
    case,
    func,
    insert,
    literal,
    null,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from hookline.domain.event_types import subscribed
from hookline.domain.states import DeliveryState, parks, receives
from hookline.storage.models import Delivery, Endpoint, Event
from hookline.storage.repositories._sql import one_of
from hookline.storage.types import UtcDateTime


class EventRow(NamedTuple):
    """An event as it is stored (the columns of ``events``)."""

    id: str
    event_type: str
    payload: str
    """The compact JSON text that is signed and sent."""
    idempotency_key: str | None
    created_at: datetime
    trace_context: str | None = None
    """The publish's W3C ``traceparent``, while tracing is on."""


class DeliveryRow(NamedTuple):
    """One delivery of an event: where it goes, and its state when it was written or read."""

    id: str
    event_id: str
    endpoint_id: str
    state: str
    created_at: datetime


StoredEvent = tuple[EventRow, list[DeliveryRow]]
"""An event and its deliveries (by delivery id)."""

_PARKED: Final = DeliveryState.PARKED.value
_EVENTS: Final = cast(Table, Event.__table__)
_DELIVERIES: Final = cast(Table, Delivery.__table__)
_ENDPOINTS: Final = cast(Table, Endpoint.__table__)
_SUBSCRIPTIONS: Final = (
    select(
        _ENDPOINTS.c.id,
        _ENDPOINTS.c.event_types,
        _ENDPOINTS.c.status,
        _ENDPOINTS.c.disabled_reason,
    )
    .where(_ENDPOINTS.c.deleted_at.is_(None))
    .order_by(_ENDPOINTS.c.id)
)
_EVENT_COLUMNS: Final = tuple(_EVENTS.c[name] for name in EventRow._fields)
_DELIVERY_COLUMNS: Final = tuple(_DELIVERIES.c[name] for name in DeliveryRow._fields)
_NEW_DELIVERY_COLUMNS: Final = (
    *DeliveryRow._fields,
    "attempt_number",
    "round_start_attempt",
    "next_attempt_at",
    "updated_at",
    "version",
)


def _insert_as_one_statement() -> Any:
    """PostgreSQL: events and their deliveries in one statement (the events inserted in a
    ``WITH``, the deliveries in the main ``INSERT``), each from ``unnest`` of one array per
    column. One round trip whatever the size of the group, and atomic without a transaction
    (the deliveries' foreign keys are checked at the end of the statement)."""
    events = (
        func.unnest(
            bindparam("event_ids", type_=ARRAY(String)),
            bindparam("event_types", type_=ARRAY(String)),
            bindparam("payloads", type_=ARRAY(Text)),
            bindparam("idempotency_keys", type_=ARRAY(String)),
            bindparam("event_created_at", type_=ARRAY(UtcDateTime)),
            bindparam("trace_contexts", type_=ARRAY(String)),
        )
        .table_valued(*EventRow._fields)
        .render_derived()
    )
    new_events = (
        insert(_EVENTS)
        .from_select(list(EventRow._fields), select(*(events.c[f] for f in EventRow._fields)))
        .cte("new_events")
    )
    deliveries = (
        func.unnest(
            bindparam("delivery_ids", type_=ARRAY(String)),
            bindparam("delivery_event_ids", type_=ARRAY(String)),
            bindparam("endpoint_ids", type_=ARRAY(String)),
            bindparam("states", type_=ARRAY(String)),
            bindparam("delivery_created_at", type_=ARRAY(UtcDateTime)),
        )
        .table_valued(*DeliveryRow._fields)
        .render_derived()
    )
    zero = literal(0, Integer)
    created_at = deliveries.c.created_at
    # A parked delivery has no due time: it waits for its endpoint to recover.
    due_at = case((deliveries.c.state == _PARKED, null()), else_=created_at)
    return (
        insert(_DELIVERIES)
        .from_select(
            list(_NEW_DELIVERY_COLUMNS),
            select(
                *(deliveries.c[f] for f in DeliveryRow._fields),
                zero,
                zero,
                due_at,
                created_at,
                zero,
            ),
        )
        .add_cte(new_events)
    )


_INSERT_AS_ONE: Final = _insert_as_one_statement()
_INSERT_EVENTS: Final = insert(_EVENTS)
_INSERT_DELIVERIES: Final = insert(_DELIVERIES)


async def find_by_idempotency_key(
    session: AsyncSession, *, idempotency_key: str
) -> StoredEvent | None:
    """The event published with this key and its deliveries, or None."""
    found = await find_by_idempotency_keys(
        await session.connection(), idempotency_keys=[idempotency_key]
    )
    return found.get(idempotency_key)


async def find_by_idempotency_keys(
    connection: AsyncConnection, *, idempotency_keys: Collection[str]
) -> dict[str, StoredEvent]:
    """The events published with any of these keys, each with its deliveries, by key."""
    if not idempotency_keys:
        return {}
    events = await connection.execute(
        select(*_EVENT_COLUMNS).where(
            one_of(
                _EVENTS.c.idempotency_key,
                postgresql=connection.dialect.name == "postgresql",
                name="values",
                values=list(idempotency_keys),
            )
        )
    )
    by_id: dict[str, StoredEvent] = {row.id: (EventRow(*row), []) for row in events}
    if not by_id:
        return {}
    deliveries = await connection.execute(
        select(*_DELIVERY_COLUMNS)
        .where(
            one_of(
                _DELIVERIES.c.event_id,
                postgresql=connection.dialect.name == "postgresql",
                name="values",
                values=list(by_id),
            )
        )
        .order_by(_DELIVERIES.c.id)
    )
    for row in deliveries:
        by_id[row.event_id][1].append(DeliveryRow(*row))
    return {
        event.idempotency_key: (event, found)
        for event, found in by_id.values()
        if event.idempotency_key
    }


class Subscription(NamedTuple):
    """An undeleted endpoint that events make deliveries for, and whether they park there."""

    endpoint_id: str
    event_types: list[str]
    parks: bool
    """Disabled for a reason that parks, or recovering: its new deliveries are ``parked``."""


async def subscriptions(connection: AsyncConnection) -> list[Subscription]:
    """Every undeleted endpoint that receives deliveries (``domain.states.receives``: all but
    ``gone`` ones), by id; match an event type against them with ``subscribers``."""
    rows = await connection.execute(_SUBSCRIPTIONS)
    return [
        Subscription(endpoint_id, event_types, parks(status, reason))
        for endpoint_id, event_types, status, reason in rows.tuples()
        if receives(status, reason)
    ]


def subscribers(subscriptions: Sequence[Subscription], event_type: str) -> list[Subscription]:
    """The ``subscriptions`` whose ``event_types`` is empty (all) or has a type or pattern
    matching ``event_type`` (``domain.event_types.subscribed``).

    The filter runs in Python: one portable query per group of events, and the list of
    endpoints is small next to the events flowing through them.
    """
    return [found for found in subscriptions if subscribed(found.event_types, event_type)]


async def insert_events(
    connection: AsyncConnection,
    *,
    events: Sequence[EventRow],
    deliveries: Sequence[DeliveryRow],
) -> None:
    """Insert ``events`` and then ``deliveries``, new ones: no attempt made yet, due at their
    ``created_at`` (``parked`` ones: no due time).

    PostgreSQL: one statement (``_insert_as_one_statement``), atomic on its own, so the caller
    may run it outside a transaction. Elsewhere (SQLite): one ``executemany`` per table, in the
    caller's transaction.
    """
    if not events:
        return
    if connection.dialect.name == "postgresql":
        await connection.execute(
            _INSERT_AS_ONE,
            {
                "event_ids": [e.id for e in events],
                "event_types": [e.event_type for e in events],
                "payloads": [e.payload for e in events],
                "idempotency_keys": [e.idempotency_key for e in events],
                "event_created_at": [e.created_at for e in events],
                "trace_contexts": [e.trace_context for e in events],
                "delivery_ids": [d.id for d in deliveries],
                "delivery_event_ids": [d.event_id for d in deliveries],
                "endpoint_ids": [d.endpoint_id for d in deliveries],
                "states": [d.state for d in deliveries],
                "delivery_created_at": [d.created_at for d in deliveries],
            },
        )
        return
    await connection.execute(_INSERT_EVENTS, [e._asdict() for e in events])
    if deliveries:
        await connection.execute(
            _INSERT_DELIVERIES,
            [
                {
                    **d._asdict(),
                    "attempt_number": 0,
                    "round_start_attempt": 0,
                    "next_attempt_at": None if d.state == _PARKED else d.created_at,
                    "updated_at": d.created_at,
                    "version": 0,
                }
                for d in deliveries
            ],
        )
