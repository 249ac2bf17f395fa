"""SQL of publishing: idempotency look-up, subscriber matching, event + fan-out insert."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hookline.domain.event_types import subscribed
from hookline.domain.states import EndpointStatus
from hookline.storage.models import Delivery, Endpoint, Event


async def find_by_idempotency_key(
    session: AsyncSession, *, idempotency_key: str
) -> tuple[Event, list[Delivery]] | None:
    """The event published with this key and its deliveries, or None."""
    event = (
        await session.execute(select(Event).where(Event.idempotency_key == idempotency_key))
    ).scalar_one_or_none()
    if event is None:
        return None
    deliveries = (
        await session.execute(
            select(Delivery).where(Delivery.event_id == event.id).order_by(Delivery.id)
        )
    ).scalars()
    return event, list(deliveries)


async def subscribed_endpoint_ids(session: AsyncSession, *, event_type: str) -> list[str]:
    """Active endpoints whose ``event_types`` is empty (all) or has a type or pattern matching
    ``event_type`` (``domain.event_types.subscribed``).

    The filter runs in Python over (id, event_types) pairs: one portable query, and the list of
    endpoints is small next to the events flowing through them.
    """
    rows = await session.execute(
        select(Endpoint.id, Endpoint.event_types)
        .where(Endpoint.status == EndpointStatus.ACTIVE.value, Endpoint.deleted_at.is_(None))
        .order_by(Endpoint.id)
    )
    return [
        endpoint_id
        for endpoint_id, event_types in rows.tuples()
        if subscribed(event_types, event_type)
    ]


async def add_event(session: AsyncSession, *, event: Event, deliveries: Sequence[Delivery]) -> None:
    """Insert the event, then its deliveries (the models declare no relationships, so the
    order that the foreign keys need is given here)."""
    session.add(event)
    await session.flush()
    session.add_all(deliveries)
