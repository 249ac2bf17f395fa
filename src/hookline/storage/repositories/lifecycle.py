"""SQL of endpoints that come back: parking, releasing, bounding and discarding deliveries, and
the endpoints' probe and recovery state.

Every statement is set-based: one per call whatever the number of deliveries it moves.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hookline.domain.states import PARKABLE_STATES, DeliveryState, values
from hookline.storage.models import Delivery

PARKABLE = values(PARKABLE_STATES)
PARKED = DeliveryState.PARKED.value


async def park_deliveries(
    session: AsyncSession,
    *,
    now: datetime,
    delivery_ids: Sequence[str] | None = None,
    endpoint_id: str | None = None,
    states: Sequence[str] = PARKABLE,
) -> list[str]:
    """Move deliveries (by id or by endpoint) in ``states`` to ``parked``: no due time, no lease,
    no queue entry. Returns the ids moved; their queue entries are the caller's to remove (one
    left behind is harmless: a claim of a parked delivery is given up)."""
    conditions: list[ColumnElement[bool]] = [Delivery.state.in_(states)]
    if delivery_ids is not None:
        conditions.append(Delivery.id.in_(delivery_ids))
    if endpoint_id is not None:
        conditions.append(Delivery.endpoint_id == endpoint_id)
    result = await session.execute(
        update(Delivery)
        .where(*conditions)
        .values(
            state=PARKED,
            next_attempt_at=None,
            lease_until=None,
            updated_at=now,
            version=Delivery.version + 1,
        )
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars())


async def parked_counts(session: AsyncSession, *, endpoint_ids: Sequence[str]) -> dict[str, int]:
    """How many deliveries each endpoint has parked (one grouped statement); absent: none."""
    if not endpoint_ids:
        return {}
    rows = await session.execute(
        select(Delivery.endpoint_id, func.count())
        .where(Delivery.endpoint_id.in_(list(endpoint_ids)), Delivery.state == PARKED)
        .group_by(Delivery.endpoint_id)
    )
    return dict(rows.tuples().all())
