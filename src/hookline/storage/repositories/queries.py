"""SQL of the read side: events with their deliveries, delivery lists, attempts.

Lists are keyset-paged newest first (``ORDER BY id DESC``, ``id < :before_id``): ids are
time-ordered, and the primary key index serves the order. Callers ask for one row more than they
show to learn whether another page exists.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hookline.storage.models import Delivery, DeliveryAttempt, Event


async def get_event(session: AsyncSession, *, event_id: str) -> Event | None:
    """The event, or None."""
    return await session.get(Event, event_id)


async def event_deliveries(session: AsyncSession, *, event_id: str) -> list[Delivery]:
    """Every delivery of the event, newest first (one per endpoint it fanned out to)."""
    result = await session.execute(
        select(Delivery).where(Delivery.event_id == event_id).order_by(Delivery.id.desc())
    )
    return list(result.scalars())


async def get_delivery(session: AsyncSession, *, delivery_id: str) -> Delivery | None:
    """The delivery, or None."""
    return await session.get(Delivery, delivery_id)


async def delivery_attempts(session: AsyncSession, *, delivery_id: str) -> list[DeliveryAttempt]:
    """The delivery's attempts, first attempt first."""
    result = await session.execute(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id == delivery_id)
        .order_by(DeliveryAttempt.attempt_number, DeliveryAttempt.id)
    )
    return list(result.scalars())


async def list_deliveries(
    session: AsyncSession,
    *,
    endpoint_id: str | None,
    event_id: str | None,
    state: str | None,
    before_id: str | None,
    limit: int,
) -> list[Delivery]:
    """Up to ``limit`` deliveries matching every given filter, newest first."""
    query = select(Delivery)
    if endpoint_id is not None:
        query = query.where(Delivery.endpoint_id == endpoint_id)
    if event_id is not None:
        query = query.where(Delivery.event_id == event_id)
    if state is not None:
        query = query.where(Delivery.state == state)
    if before_id is not None:
        query = query.where(Delivery.id < before_id)
    result = await session.execute(query.order_by(Delivery.id.desc()).limit(limit))
    return list(result.scalars())
