"""Counts of stored state for the scrape-time gauges: due backlog, dead letters, disabled endpoints.

Three statements, each served by an index (``(state, next_attempt_at)``, ``(state,
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


async def stored_stats(session: AsyncSession, *, now: datetime) -> StoredStats:
    """The due-and-unclaimed backlog, stored dead letters and disabled endpoints by reason."""
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
    disabled = (
        await session.execute(
            select(Endpoint.disabled_reason, func.count())
            .where(Endpoint.status == EndpointStatus.DISABLED.value)
            .where(Endpoint.deleted_at.is_(None))
            .group_by(Endpoint.disabled_reason)
        )
    ).all()
    return StoredStats(
        due=int(due or 0),
        oldest_due_at=oldest,
        dead_letters=int(dead or 0),
        disabled_endpoints={str(reason or "unknown"): int(count) for reason, count in disabled},
    )
