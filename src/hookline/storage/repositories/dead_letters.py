"""SQL of dead-letter replay's account: the dead letters a replay leaves behind, and why.

(Re-queueing itself is ``deliveries.requeue``: the same statement serves manual retry and
re-enabling.)
"""

from __future__ import annotations

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


async def count_left_behind(
    session: AsyncSession,
    *,
    endpoint_id: str | None = None,
    completed_since: datetime | None = None,
    completed_before: datetime | None = None,
) -> list[LeftBehind]:
    """Dead letters (``failed``) matching the filters of a replay whose endpoint is not active
    (disabled, deleted, ...), counted per endpoint status and deleted flag in one grouped query.

    The filters are those ``deliveries.requeue`` takes for a replay; its ``only_active_endpoints``
    condition is negated here, so the two statements split the dead letters between them.
    """
    deleted = Endpoint.deleted_at.is_not(None)
    conditions: list[ColumnElement[bool]] = [
        Delivery.state == DeliveryState.FAILED.value,
        not_((Endpoint.status == EndpointStatus.ACTIVE.value) & Endpoint.deleted_at.is_(None)),
        *finished_within(
            endpoint_id=endpoint_id,
            completed_since=completed_since,
            completed_before=completed_before,
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
