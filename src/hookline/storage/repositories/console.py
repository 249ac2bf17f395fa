"""SQL of the console's overview: what finished, what is retrying and who fails most, lately.

One statement per function, each served by an index of ``storage.models``: finished deliveries
by ``(state, completed_at)``, unfinished ones by the leading ``state`` of ``(state,
next_attempt_at)``, their attempts by ``(delivery_id, attempt_number)``.

``delivery_attempts`` has no index on ``started_at``, so the attempts of a window are reached
through the deliveries that can own them (``_may_have_attempted_since``): an attempt started at
or after ``since`` belongs to a delivery that is unfinished now, or that finished at or after
``since`` (``completed_at`` is stamped on entering a terminal state, after the last attempt, and
again whenever a replayed delivery finishes anew). The cost follows the deliveries of the window
and the backlog, not the size of the tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, distinct, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hookline.storage.models import Delivery, DeliveryAttempt, Endpoint


@dataclass(frozen=True, slots=True)
class FailingEndpointRow:
    """A live endpoint and how many of its attempts failed in the window."""

    endpoint_id: str
    url: str
    description: str
    status: str
    disabled_reason: str | None
    failing_since: datetime | None
    failed_attempts: int


@dataclass(frozen=True, slots=True)
class Presence:
    """Whether anything exists yet: live endpoints, and any delivery stored at all."""

    endpoints: int
    any_delivery: bool


def _may_have_attempted_since(
    since: datetime, *, terminal: Sequence[str], unfinished: Sequence[str]
) -> ColumnElement[bool]:
    return or_(
        and_(Delivery.state.in_(terminal), Delivery.completed_at >= since),
        Delivery.state.in_(unfinished),
    )


def _failed_attempt() -> ColumnElement[bool]:
    code = DeliveryAttempt.status_code
    return or_(code.is_(None), code < 200, code >= 300)  # no answer, or not a 2xx


async def finished_by_bucket(
    session: AsyncSession,
    *,
    states: Sequence[str],
    since: datetime,
    bucket_s: float,
    buckets: int,
) -> dict[str, list[int]]:
    """Deliveries in each of ``states`` that finished in each of ``buckets`` consecutive
    windows of ``bucket_s`` seconds from ``since``, oldest first. The last window has no end,
    so a completion stamped a moment after the caller's ``now`` (another process's clock) still
    counts in it."""
    step = timedelta(seconds=bucket_s)
    columns = []
    for index in range(buckets):
        start = since + index * step
        inside = Delivery.completed_at >= start
        if index < buckets - 1:
            inside = and_(inside, Delivery.completed_at < start + step)
        columns.append(func.count(case((inside, 1))))
    rows = await session.execute(
        select(Delivery.state, *columns)
        .where(Delivery.state.in_(states), Delivery.completed_at >= since)
        .group_by(Delivery.state)
    )
    counts = {state: [0] * buckets for state in states}
    for state, *per_bucket in rows.tuples():
        counts[str(state)] = [int(count) for count in per_bucket]
    return counts


async def retrying_attempted_since(
    session: AsyncSession, *, state: str, since: Sequence[datetime]
) -> list[int]:
    """For each time in ``since``: how many deliveries now in ``state`` (retrying) had an
    attempt at or after it."""
    earliest = min(since)
    columns = [
        func.count(distinct(case((DeliveryAttempt.started_at >= when, Delivery.id))))
        for when in since
    ]
    row = (
        await session.execute(
            select(*columns)
            .select_from(Delivery)
            .join(DeliveryAttempt, DeliveryAttempt.delivery_id == Delivery.id)
            .where(Delivery.state == state, DeliveryAttempt.started_at >= earliest)
        )
    ).one()
    return [int(count) for count in row]


async def most_failing_endpoints(
    session: AsyncSession,
    *,
    since: datetime,
    terminal: Sequence[str],
    unfinished: Sequence[str],
    limit: int,
) -> list[FailingEndpointRow]:
    """Up to ``limit`` live endpoints with the most failed attempts (no response, or one
    outside 2xx) started since ``since``, most first (ties by id); endpoints with none are
    left out."""
    failed = (
        select(Delivery.endpoint_id.label("endpoint_id"), func.count().label("failed"))
        .select_from(Delivery)
        .join(DeliveryAttempt, DeliveryAttempt.delivery_id == Delivery.id)
        .where(
            _may_have_attempted_since(since, terminal=terminal, unfinished=unfinished),
            DeliveryAttempt.started_at >= since,
            _failed_attempt(),
        )
        .group_by(Delivery.endpoint_id)
        .subquery()
    )
    rows = await session.execute(
        select(
            Endpoint.id,
            Endpoint.url,
            Endpoint.description,
            Endpoint.status,
            Endpoint.disabled_reason,
            Endpoint.failing_since,
            failed.c.failed,
        )
        .join(failed, failed.c.endpoint_id == Endpoint.id)
        .where(Endpoint.deleted_at.is_(None))
        .order_by(failed.c.failed.desc(), Endpoint.id)
        .limit(limit)
    )
    return [
        FailingEndpointRow(
            endpoint_id=endpoint_id,
            url=url,
            description=description,
            status=status,
            disabled_reason=reason,
            failing_since=failing_since,
            failed_attempts=int(count),
        )
        for endpoint_id, url, description, status, reason, failing_since, count in rows.tuples()
    ]


async def presence(session: AsyncSession) -> Presence:
    """How many live endpoints there are, and whether any delivery is stored."""
    endpoints = (
        select(func.count())
        .select_from(Endpoint)
        .where(Endpoint.deleted_at.is_(None))
        .scalar_subquery()
    )
    any_delivery = select(Delivery.id).limit(1).exists()
    count, found = (await session.execute(select(endpoints, any_delivery))).one()
    return Presence(endpoints=int(count), any_delivery=bool(found))
