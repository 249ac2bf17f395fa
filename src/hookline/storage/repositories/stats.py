"""Counts of stored state for the scrape-time gauges: due backlog, dead letters, parked
deliveries, disabled and recovering endpoints.

Four statements, each served by an index (``(state, next_attempt_at)``, ``(state,
completed_at)``, ``status``); the caller caches the result for a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hookline.domain.states import CLAIMABLE_STATES, DeliveryState, EndpointStatus, values
from hookline.storage.models import Delivery, Endpoint


@dataclass(frozen=True, slots=True)
class StoredStats:
    """What the database holds now."""

    due: int
    oldest_due_at: datetime | None
    dead_letters: int
    disabled_endpoints: dict[str, int]
    parked: int = 0
    recovering_endpoints: int = 0


async def stored_stats(session: AsyncSession, *, now: datetime) -> StoredStats:
    """The due-and-unclaimed backlog, stored dead letters, parked deliveries, disabled endpoints
    by reason and recovering endpoints."""
    due, oldest = (
        await session.execute(
            select(func.count(), func.min(Delivery.next_attempt_at))
            .where(Delivery.state.in_(values(CLAIMABLE_STATES)))
            .where(Delivery.next_attempt_at <= now)
        )
    ).one()
    dead = await session.scalar(
        select(func.count()).where(Delivery.state == DeliveryState.FAILED.value)
    )
    parked = await session.scalar(
        select(func.count()).where(Delivery.state == DeliveryState.PARKED.value)
    )
    by_status = (
        await session.execute(
            select(Endpoint.status, Endpoint.disabled_reason, func.count())
            .where(
                Endpoint.status.in_(
                    (EndpointStatus.DISABLED.value, EndpointStatus.RECOVERING.value)
                )
            )
            .where(Endpoint.deleted_at.is_(None))
            .group_by(Endpoint.status, Endpoint.disabled_reason)
        )
    ).all()
    disabled = [(r, n) for status, r, n in by_status if status == EndpointStatus.DISABLED]
    recovering = sum(n for status, _, n in by_status if status == EndpointStatus.RECOVERING)
    return StoredStats(
        due=int(due or 0),
        oldest_due_at=oldest,
        dead_letters=int(dead or 0),
        disabled_endpoints={str(reason or "unknown"): int(count) for reason, count in disabled},
        parked=int(parked or 0),
        recovering_endpoints=int(recovering),
    )
