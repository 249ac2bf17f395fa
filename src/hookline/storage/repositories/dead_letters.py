"""SQL of dead-letter replay's account: how many dead letters a replay would take, the ones it
leaves behind, and why.

(Re-queueing itself is ``deliveries.requeue``: the same statement serves manual retry and
re-enabling.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hookline.domain.states import DeliveryState, EndpointStatus
from hookline.storage.models import Delivery, Endpoint
from hookline.storage.repositories.deliveries import finished_within


@dataclass(frozen=True, slots=True)
class LeftBehind:
    """How many dead letters of endpoints in one (status, deleted) condition were not replayed."""

    endpoint_status: str
    endpoint_deleted: bool
    count: int


def _dead_letters(
    *,
    endpoint_id: str | None,
    completed_since: datetime | None,
    completed_before: datetime | None,
    completed_until: datetime | None,
    delivery_ids: Sequence[str] | None,
) -> list[ColumnElement[bool]]:
    """Dead letters (``failed``) matching the filters ``deliveries.requeue`` takes for a replay."""
    conditions: list[ColumnElement[bool]] = [
        Delivery.state == DeliveryState.FAILED.value,
        *finished_within(
            endpoint_id=endpoint_id,
            completed_since=completed_since,
            completed_before=completed_before,
            completed_until=completed_until,
        ),
    ]
    if delivery_ids is not None:
        conditions.append(Delivery.id.in_(delivery_ids))
    return conditions


async def count_dead_letters(
    session: AsyncSession,
    *,
    endpoint_id: str | None = None,
    completed_since: datetime | None = None,
    completed_until: datetime | None = None,
    delivery_ids: Sequence[str] | None = None,
) -> int:
    """How many dead letters (``failed``) match the filters of a replay, whatever their
    endpoint's status: what a replay would take."""
    conditions = _dead_letters(
        endpoint_id=endpoint_id,
        completed_since=completed_since,
        completed_before=None,
        completed_until=completed_until,
        delivery_ids=delivery_ids,
    )
    count = await session.scalar(select(func.count()).select_from(Delivery).where(*conditions))
    return int(count or 0)


async def count_left_behind(
    session: AsyncSession,
    *,
    endpoint_id: str | None = None,
    completed_since: datetime | None = None,
    completed_before: datetime | None = None,
    completed_until: datetime | None = None,
    delivery_ids: Sequence[str] | None = None,
) -> list[LeftBehind]:
    """Dead letters (``failed``) matching the filters of a replay whose endpoint is not active
    (disabled, deleted, ...), counted per endpoint status and deleted flag in one grouped query.

    The filters are those ``deliveries.requeue`` takes for a replay; its ``only_active_endpoints``
    condition is negated here, so the two statements split the dead letters between them.
    """
    deleted = Endpoint.deleted_at.is_not(None)
    conditions: list[ColumnElement[bool]] = [
        not_((Endpoint.status == EndpointStatus.ACTIVE.value) & Endpoint.deleted_at.is_(None)),
        *_dead_letters(
            endpoint_id=endpoint_id,
            completed_since=completed_since,
            completed_before=completed_before,
            completed_until=completed_until,
            delivery_ids=delivery_ids,
        ),
    ]
    rows = await session.execute(
        select(Endpoint.status, deleted, func.count())
        .select_from(Delivery)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(*conditions)
        .group_by(Endpoint.status, deleted)
        .order_by(Endpoint.status, deleted)
    )
    return [
        LeftBehind(endpoint_status=status, endpoint_deleted=bool(is_deleted), count=count)
        for status, is_deleted, count in rows.tuples()
    ]
