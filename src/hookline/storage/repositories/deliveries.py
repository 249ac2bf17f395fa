"""SQL of the delivery engine: load a batch for attempting, mark it, settle it, cancel, re-queue.

Batch-shaped on purpose: one statement per batch where the database allows it, one statement per
row only where each row gets different values (the settle), always inside the caller's single
transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hookline.domain.states import CLAIMABLE_STATES as _CLAIMABLE
from hookline.domain.states import QUEUED_STATES as _QUEUED
from hookline.domain.states import DeliveryState, EndpointStatus, values
from hookline.storage.models import Delivery, DeliveryAttempt, Endpoint, Event

QUEUED_STATES = values(_QUEUED)
"""``domain.states.QUEUED_STATES`` as column values."""
CLAIMABLE_STATES = values(_CLAIMABLE)
"""``domain.states.CLAIMABLE_STATES`` as column values."""
ENDPOINT_DISABLED = "endpoint_disabled"
"""``last_error`` of deliveries cancelled because their endpoint was disabled or deleted."""


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """A delivery with what an attempt needs: its event's payload and its endpoint."""

    delivery: Delivery
    event_id: str
    payload: str
    endpoint: Endpoint


async def load_for_attempt(
    session: AsyncSession, *, delivery_ids: Sequence[str]
) -> list[AttemptRow]:
    """The deliveries among ``delivery_ids`` that exist, with payload and endpoint, in id order."""
    if not delivery_ids:
        return []
    rows = await session.execute(
        select(Delivery, Event.id, Event.payload, Endpoint)
        .join(Event, Event.id == Delivery.event_id)
        .join(Endpoint, Endpoint.id == Delivery.endpoint_id)
        .where(Delivery.id.in_(delivery_ids))
        .order_by(Delivery.id)
    )
    return [AttemptRow(d, event_id, payload, e) for d, event_id, payload, e in rows.tuples()]


async def mark_delivering(
    session: AsyncSession, *, delivery_ids: Sequence[str], now: datetime, lease_s: float
) -> dict[str, int]:
    """Move due, claimable deliveries to ``delivering``; returns ``{id: new version}``.

    One statement for the batch. An id missing from the answer was changed by someone else
    since it was loaded (or is no longer due): the caller must not attempt it. The row's
    ``lease_until`` records the claim in the database too, so a queue that lost its data (Redis
    restarted empty) is not refilled with deliveries a worker is sending right now.
    """
    if not delivery_ids:
        return {}
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_(delivery_ids),
            Delivery.state.in_(CLAIMABLE_STATES),
            Delivery.next_attempt_at <= now,
        )
        .values(
            state=DeliveryState.DELIVERING.value,
            version=Delivery.version + 1,
            updated_at=now,
            lease_until=now + timedelta(seconds=lease_s),
            first_attempt_at=func.coalesce(Delivery.first_attempt_at, now),
        )
        .returning(Delivery.id, Delivery.version)
        .execution_options(synchronize_session=False)
    )
    return dict(result.tuples().all())


async def extend_leases(
    session: AsyncSession, *, delivery_ids: Sequence[str], lease_until: datetime
) -> None:
    """Move the database lease of deliveries still ``delivering`` to ``lease_until``.

    Rows another transaction has locked are skipped (``FOR UPDATE SKIP LOCKED``): they are being
    settled right now, so their lease no longer matters, and waiting for them while the settle
    waits for a row this statement locked would be a deadlock (PostgreSQL locks an ``IN`` list
    in scan order, the settle in batch order). SQLite has one writer and no row locks.
    """
    if delivery_ids:
        unlocked = (
            select(Delivery.id)
            .where(Delivery.id.in_(delivery_ids), Delivery.state == DeliveryState.DELIVERING.value)
            .with_for_update(skip_locked=True)
        )
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(unlocked.scalar_subquery()))
            .values(lease_until=lease_until)
            .execution_options(synchronize_session=False)
        )


async def settle_delivery(
    session: AsyncSession, *, delivery_id: str, version: int, values: dict[str, Any]
) -> bool:
    """Write one delivery's outcome if nobody changed it since ``version``; True if written."""
    result = await session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.version == version)
        .values(**values, version=Delivery.version + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def insert_attempts(session: AsyncSession, *, rows: Sequence[dict[str, Any]]) -> None:
    """Insert attempt records in one executemany."""
    if rows:
        await session.execute(insert(DeliveryAttempt), list(rows))


async def cancel_deliveries(
    session: AsyncSession,
    *,
    now: datetime,
    reason: str,
    delivery_ids: Sequence[str] | None = None,
    endpoint_id: str | None = None,
    states: Sequence[str] = QUEUED_STATES,
) -> list[str]:
    """Cancel deliveries by id or by endpoint that are in ``states``; returns the ids cancelled."""
    conditions: list[ColumnElement[bool]] = [Delivery.state.in_(states)]
    if delivery_ids is not None:
        conditions.append(Delivery.id.in_(delivery_ids))
    if endpoint_id is not None:
        conditions.append(Delivery.endpoint_id == endpoint_id)
    return await _finish(
        session, conditions, state=DeliveryState.CANCELLED.value, last_error=reason, now=now
    )


async def fail_deliveries(
    session: AsyncSession,
    *,
    now: datetime,
    problems: Mapping[str, str],
    states: Sequence[str] = CLAIMABLE_STATES,
    version: int | None = None,
) -> list[str]:
    """Make these deliveries dead letters (``failed``) with ``last_error`` = their problem, if
    they are in ``states`` (and at ``version``, when given); returns the ids changed.

    For deliveries that fail alone (a request that cannot be built, an outcome that cannot be
    recorded). One statement per distinct problem, which in practice is one per batch.
    """
    by_problem: dict[str, list[str]] = {}
    for delivery_id, problem in problems.items():
        by_problem.setdefault(problem, []).append(delivery_id)
    failed: list[str] = []
    for problem, delivery_ids in by_problem.items():
        conditions: list[ColumnElement[bool]] = [
            Delivery.id.in_(delivery_ids),
            Delivery.state.in_(states),
        ]
        if version is not None:
            conditions.append(Delivery.version == version)
        failed += await _finish(
            session, conditions, state=DeliveryState.FAILED.value, last_error=problem, now=now
        )
    return failed


async def _finish(
    session: AsyncSession,
    conditions: Sequence[ColumnElement[bool]],
    *,
    state: str,
    last_error: str,
    now: datetime,
) -> list[str]:
    """Move the deliveries matching ``conditions`` to a final ``state``; the ids moved."""
    result = await session.execute(
        update(Delivery)
        .where(*conditions)
        .values(
            state=state,
            next_attempt_at=None,
            lease_until=None,
            completed_at=now,
            updated_at=now,
            last_error=last_error,
            version=Delivery.version + 1,
        )
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars())


def finished_within(
    *,
    endpoint_id: str | None = None,
    completed_since: datetime | None = None,
    completed_before: datetime | None = None,
) -> list[ColumnElement[bool]]:
    """Deliveries of one endpoint (when given) finished within a window (bounds inclusive):
    the filters a replay (``requeue``) and its account of what it skipped share."""
    conditions: list[ColumnElement[bool]] = []
    if endpoint_id is not None:
        conditions.append(Delivery.endpoint_id == endpoint_id)
    if completed_since is not None:
        conditions.append(Delivery.completed_at >= completed_since)
    if completed_before is not None:
        conditions.append(Delivery.completed_at <= completed_before)
    return conditions


async def requeue(
    session: AsyncSession,
    *,
    now: datetime,
    states: Sequence[str],
    delivery_ids: Sequence[str] | None = None,
    endpoint_id: str | None = None,
    completed_since: datetime | None = None,
    completed_before: datetime | None = None,
    last_error: str | None = None,
    only_active_endpoints: bool = False,
    limit: int | None = None,
) -> list[str]:
    """Put finished deliveries back to ``pending``, due now, as a fresh round of retries.

    The attempt counter keeps counting; ``round_start_attempt`` remembers where this round began
    so the retry budget and the window (``first_attempt_at`` cleared) start again.
    """
    conditions: list[ColumnElement[bool]] = [
        Delivery.state.in_(states),
        *finished_within(
            endpoint_id=endpoint_id,
            completed_since=completed_since,
            completed_before=completed_before,
        ),
    ]
    if delivery_ids is not None:
        conditions.append(Delivery.id.in_(delivery_ids))
    if last_error is not None:
        conditions.append(Delivery.last_error == last_error)
    if only_active_endpoints:
        conditions.append(
            exists().where(
                Endpoint.id == Delivery.endpoint_id,
                Endpoint.status == EndpointStatus.ACTIVE.value,
                Endpoint.deleted_at.is_(None),
            )
        )
    chosen = select(Delivery.id).where(and_(*conditions)).order_by(Delivery.id)
    if limit is not None:
        chosen = chosen.limit(limit)
    result = await session.execute(
        update(Delivery)
        .where(Delivery.id.in_(chosen.scalar_subquery()))
        .values(
            state=DeliveryState.PENDING.value,
            next_attempt_at=now,
            lease_until=None,
            completed_at=None,
            first_attempt_at=None,
            round_start_attempt=Delivery.attempt_number,
            updated_at=now,
            version=Delivery.version + 1,
        )
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars())


async def record_endpoint_results(
    session: AsyncSession,
    *,
    endpoint_id: str,
    last_success_at: datetime | None,
    first_failure_at: datetime | None,
) -> datetime | None:
    """Fold a batch's attempts into the endpoint's health; returns its ``failing_since`` after.

    ``last_success_at``: the latest success in the batch (None if none); ``first_failure_at``:
    the earliest failure after that success (or in the batch, when there was none). A failure
    keeps an existing ``failing_since`` (``COALESCE`` in SQL, so concurrent workers agree).
    """
    values: dict[str, Any] = {}
    if last_success_at is not None:
        values["last_success_at"] = last_success_at
        values["failing_since"] = first_failure_at
    elif first_failure_at is not None:
        values["failing_since"] = func.coalesce(Endpoint.failing_since, first_failure_at)
    if not values:
        found = await session.execute(
            select(Endpoint.failing_since).where(Endpoint.id == endpoint_id)
        )
        return found.scalar_one_or_none()
    result = await session.execute(
        update(Endpoint)
        .where(Endpoint.id == endpoint_id)
        .values(**values)
        .returning(Endpoint.failing_since)
        .execution_options(synchronize_session=False)
    )
    return result.scalar_one_or_none()


async def disable_endpoint(
    session: AsyncSession,
    *,
    endpoint_id: str,
    reason: str,
    now: datetime,
) -> bool:
    """Disable an endpoint if it is active; True if this call disabled it.

    One conditional statement, so two workers deciding at once disable it once.
    """
    conditions = [Endpoint.id == endpoint_id, Endpoint.status == EndpointStatus.ACTIVE.value]
    result = await session.execute(
        update(Endpoint)
        .where(*conditions)
        .values(
            status=EndpointStatus.DISABLED.value,
            disabled_reason=reason,
            disabled_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def queued_ids(
    session: AsyncSession,
    *,
    due_before: datetime,
    now: datetime,
    after_id: str | None,
    limit: int,
) -> list[tuple[str, datetime]]:
    """``(id, next_attempt_at)`` of deliveries that belong in the queue, due before then;
    a ``delivering`` one only once its lease has expired (a worker is sending it otherwise).

    Keyset-paged by id so the sweeper walks a large table in bounded chunks.
    """
    query = select(Delivery.id, Delivery.next_attempt_at).where(
        Delivery.state.in_(CLAIMABLE_STATES),
        Delivery.next_attempt_at <= due_before,
        or_(
            Delivery.state != DeliveryState.DELIVERING.value,
            Delivery.lease_until.is_(None),
            Delivery.lease_until <= now,
        ),
    )
    if after_id is not None:
        query = query.where(Delivery.id > after_id)
    result = await session.execute(query.order_by(Delivery.id).limit(limit))
    return [(delivery_id, due) for delivery_id, due in result.tuples() if due is not None]


async def prune_succeeded(session: AsyncSession, *, completed_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` succeeded deliveries (and their attempts) finished before then."""
    chosen = (
        select(Delivery.id)
        .where(
            Delivery.state == DeliveryState.SUCCEEDED.value,
            Delivery.completed_at < completed_before,
        )
        .limit(limit)
    )
    ids = list((await session.execute(chosen)).scalars())
    if not ids:
        return 0
    await session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids)))
    await session.execute(delete(Delivery).where(Delivery.id.in_(ids)))
    return len(ids)


async def prune_orphan_events(
    session: AsyncSession, *, created_before: datetime, limit: int
) -> int:
    """Delete up to ``limit`` events older than the cutoff that no delivery refers to any more."""
    chosen = (
        select(Event.id)
        .where(
            Event.created_at < created_before,
            ~exists().where(Delivery.event_id == Event.id),
        )
        .limit(limit)
    )
    ids = list((await session.execute(chosen)).scalars())
    if ids:
        await session.execute(delete(Event).where(Event.id.in_(ids)))
    return len(ids)


async def get_delivery(session: AsyncSession, *, delivery_id: str) -> Delivery | None:
    return await session.get(Delivery, delivery_id)


async def get_endpoint(session: AsyncSession, *, endpoint_id: str) -> Endpoint | None:
    return await session.get(Endpoint, endpoint_id)
