"""SQL of endpoints that come back: parking, releasing, bounding and discarding deliveries, and
the endpoints' probe and recovery state.

Every statement is set-based: one per call whatever the number of deliveries it moves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hookline.domain.states import (
    PARKABLE_STATES,
    DeliveryState,
    DisabledReason,
    EndpointStatus,
    values,
)
from hookline.storage.models import Delivery, Endpoint
from hookline.storage.repositories.deliveries import finish_matching

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
    return await _park_matching(session, conditions, now=now)


async def _park_matching(
    session: AsyncSession, conditions: Sequence[ColumnElement[bool]], *, now: datetime
) -> list[str]:
    """Move the deliveries matching ``conditions`` to ``parked`` (no due time, no lease, not
    completed); the ids moved. One statement."""
    result = await session.execute(
        update(Delivery)
        .where(*conditions)
        .values(
            state=PARKED,
            next_attempt_at=None,
            lease_until=None,
            completed_at=None,
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


async def fail_parked(
    session: AsyncSession,
    *,
    now: datetime,
    last_error: str,
    endpoint_id: str | None = None,
    created_before: datetime | None = None,
    delivery_ids: Sequence[str] | None = None,
) -> list[str]:
    """Make parked deliveries dead letters (``failed``, ``last_error``): an endpoint's, those
    parked since before ``created_before``, or these ids. One statement; the ids moved."""
    conditions: list[ColumnElement[bool]] = [Delivery.state == PARKED]
    if endpoint_id is not None:
        conditions.append(Delivery.endpoint_id == endpoint_id)
    if created_before is not None:
        conditions.append(Delivery.created_at < created_before)
    if delivery_ids is not None:
        conditions.append(Delivery.id.in_(list(delivery_ids)))
    return await finish_matching(
        session, conditions, state=DeliveryState.FAILED.value, last_error=last_error, now=now
    )


async def over_parked(session: AsyncSession, *, max_parked: int) -> dict[str, int]:
    """Endpoints holding more than ``max_parked`` parked deliveries, with their counts."""
    rows = await session.execute(
        select(Delivery.endpoint_id, func.count())
        .where(Delivery.state == PARKED)
        .group_by(Delivery.endpoint_id)
        .having(func.count() > max_parked)
    )
    return dict(rows.tuples().all())


async def oldest_parked_ids(
    session: AsyncSession, *, endpoint_id: str, limit: int, newest_kept: int = 0
) -> list[str]:
    """The ids of an endpoint's parked deliveries, oldest first (``created_at``, then id), at
    most ``limit``; with ``newest_kept``, only those beyond the newest ``newest_kept``."""
    if limit <= 0:
        return []
    query = (
        select(Delivery.id)
        .where(Delivery.endpoint_id == endpoint_id, Delivery.state == PARKED)
        .order_by(Delivery.created_at, Delivery.id)
    )
    if newest_kept:
        total = await session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.endpoint_id == endpoint_id, Delivery.state == PARKED)
        )
        limit = min(limit, max(0, int(total or 0) - newest_kept))
        if limit <= 0:
            return []
    return list((await session.execute(query.limit(limit))).scalars())


async def release_parked(
    session: AsyncSession, *, delivery_ids: Sequence[str], now: datetime
) -> list[str]:
    """Move these parked deliveries to ``pending``, due now, with a fresh retry round (the
    budget and the window start again: the time they waited parked is not a retry). The ids
    moved; the caller tells the queue once committed."""
    if not delivery_ids:
        return []
    result = await session.execute(
        update(Delivery)
        .where(Delivery.id.in_(list(delivery_ids)), Delivery.state == PARKED)
        .values(
            state=DeliveryState.PENDING.value,
            next_attempt_at=now,
            lease_until=None,
            first_attempt_at=None,
            round_start_attempt=Delivery.attempt_number,
            updated_at=now,
            version=Delivery.version + 1,
        )
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars())


async def park_unsucceeded(
    session: AsyncSession, *, endpoint_id: str, created_since: datetime, now: datetime
) -> list[str]:
    """Recover-since: the endpoint's deliveries created at or after ``created_since`` that ended
    without success (``failed`` or ``cancelled``) are parked again, to be released with the
    rest. One statement; the ids moved."""
    return await _park_matching(
        session,
        [
            Delivery.endpoint_id == endpoint_id,
            Delivery.created_at >= created_since,
            Delivery.state.in_((DeliveryState.FAILED.value, DeliveryState.CANCELLED.value)),
        ],
        now=now,
    )


async def count_parked(session: AsyncSession, *, endpoint_id: str | None = None) -> int:
    """Parked deliveries of one endpoint, or of all of them."""
    query = select(func.count()).select_from(Delivery).where(Delivery.state == PARKED)
    if endpoint_id is not None:
        query = query.where(Delivery.endpoint_id == endpoint_id)
    return int(await session.scalar(query) or 0)


_E = Endpoint


async def set_endpoint_state(
    session: AsyncSession,
    *,
    endpoint_id: str,
    from_statuses: Sequence[str],
    values: Mapping[str, Any],
    from_reason: str | None = None,
) -> Endpoint | None:
    """Change the endpoint if it is (still) in one of ``from_statuses`` (and disabled for
    ``from_reason``, when given): one conditional ``UPDATE``, so two processes deciding at once
    change it once. The endpoint as changed, or None if it was not in such a state."""
    conditions: list[ColumnElement[bool]] = [
        _E.id == endpoint_id,
        _E.status.in_(list(from_statuses)),
        _E.deleted_at.is_(None),
    ]
    if from_reason is not None:
        conditions.append(_E.disabled_reason == from_reason)
    result = await session.execute(
        update(_E)
        .where(*conditions)
        .values(**values)
        .returning(_E)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return result.scalars().one_or_none()


async def claim_due_probes(
    session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int
) -> list[str]:
    """Endpoints disabled as ``failing``, probing on, whose probe is due (or was never planned),
    claimed by moving their ``probe_next_at`` to ``lease_until`` (so no other process probes
    them meanwhile; the caller sets the real next time after the probe). Their ids."""
    due = (
        select(_E.id)
        .where(
            _E.status == EndpointStatus.DISABLED.value,
            _E.disabled_reason == DisabledReason.FAILING.value,
            _E.probe_enabled.is_(True),
            _E.deleted_at.is_(None),
            or_(_E.probe_next_at.is_(None), _E.probe_next_at <= now),
        )
        .order_by(_E.probe_next_at, _E.id)
        .limit(limit)
    )
    ids = list((await session.execute(due)).scalars())
    if not ids:
        return []
    result = await session.execute(
        update(_E)
        .where(
            _E.id.in_(ids),
            _E.status == EndpointStatus.DISABLED.value,
            or_(_E.probe_next_at.is_(None), _E.probe_next_at <= now),
        )
        .values(probe_next_at=lease_until)
        .returning(_E.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars())


async def recovering_endpoints(session: AsyncSession, *, limit: int) -> list[str]:
    """Ids of endpoints that are recovering, by id."""
    rows = await session.execute(
        select(_E.id)
        .where(_E.status == EndpointStatus.RECOVERING.value, _E.deleted_at.is_(None))
        .order_by(_E.id)
        .limit(limit)
    )
    return list(rows.scalars())
