"""SQL of the endpoint use cases: load, list, and the 24-hour figures of one endpoint (or of a
page of them at once).

A soft-deleted endpoint (``deleted_at`` set) is invisible here: every read filters it out, so the
service answers "not found" for it exactly as for an id that never existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hookline.storage.models import Delivery, DeliveryAttempt, Endpoint


@dataclass(frozen=True, slots=True)
class AttemptCounts:
    """Attempts of one endpoint's deliveries in a window: all of them and the 2xx ones."""

    total: int
    succeeded: int


def add_endpoint(session: AsyncSession, *, endpoint: Endpoint) -> None:
    """Stage a new endpoint row (written at the caller's flush or commit)."""
    session.add(endpoint)


async def get_endpoint(
    session: AsyncSession, *, endpoint_id: str, for_update: bool = False
) -> Endpoint | None:
    """The endpoint unless it does not exist or is deleted.

    ``for_update`` locks the row until the transaction ends (PostgreSQL; SQLite has one writer
    anyway), so a change and the deliveries it cancels or re-queues agree with each other.
    """
    query = select(Endpoint).where(Endpoint.id == endpoint_id, Endpoint.deleted_at.is_(None))
    if for_update:
        query = query.with_for_update()
    result = await session.execute(query)
    return result.scalar_one_or_none()


async def list_endpoints(
    session: AsyncSession, *, status: str | None, before_id: str | None, limit: int
) -> list[Endpoint]:
    """Up to ``limit`` live endpoints, newest first, older than ``before_id`` when given."""
    query = select(Endpoint).where(Endpoint.deleted_at.is_(None))
    if status is not None:
        query = query.where(Endpoint.status == status)
    if before_id is not None:
        query = query.where(Endpoint.id < before_id)
    result = await session.execute(query.order_by(Endpoint.id.desc()).limit(limit))
    return list(result.scalars())


async def delivery_state_counts(
    session: AsyncSession, *, endpoint_id: str, created_since: datetime
) -> dict[str, int]:
    """How many of the endpoint's deliveries created since then are in each state."""
    result = await session.execute(
        select(Delivery.state, func.count())
        .where(Delivery.endpoint_id == endpoint_id, Delivery.created_at >= created_since)
        .group_by(Delivery.state)
    )
    return {str(state): int(count) for state, count in result.all()}


async def attempt_counts(
    session: AsyncSession, *, endpoint_id: str, started_since: datetime
) -> AttemptCounts:
    """Attempts made for the endpoint since then, and how many of them got a 2xx."""
    result = await session.execute(
        select(func.count(), func.coalesce(func.sum(_succeeded()), 0))
        .select_from(DeliveryAttempt)
        .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
        .where(Delivery.endpoint_id == endpoint_id, DeliveryAttempt.started_at >= started_since)
    )
    total, ok = result.one()
    return AttemptCounts(total=int(total), succeeded=int(ok))


async def attempt_counts_by_endpoint(
    session: AsyncSession, *, endpoint_ids: Sequence[str], started_since: datetime
) -> dict[str, AttemptCounts]:
    """``attempt_counts`` of each of ``endpoint_ids`` in one grouped statement (a list page's
    figures); an endpoint without attempts in the window is absent from the result."""
    if not endpoint_ids:
        return {}
    result = await session.execute(
        select(Delivery.endpoint_id, func.count(), func.coalesce(func.sum(_succeeded()), 0))
        .select_from(DeliveryAttempt)
        .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
        .where(
            Delivery.endpoint_id.in_(list(endpoint_ids)),
            DeliveryAttempt.started_at >= started_since,
        )
        .group_by(Delivery.endpoint_id)
    )
    return {
        str(endpoint_id): AttemptCounts(total=int(total), succeeded=int(ok))
        for endpoint_id, total, ok in result.all()
    }


def _succeeded() -> ColumnElement[int]:
    """1 for an attempt answered with a 2xx, else 0 (summed: the attempts that succeeded)."""
    return case(
        (and_(DeliveryAttempt.status_code >= 200, DeliveryAttempt.status_code < 300), 1),
        else_=0,
    )
