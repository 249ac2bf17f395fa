"""SQL of the delivery engine: load a batch for attempting, mark it, settle it, cancel, re-queue.

Batch-shaped on purpose: a fixed number of statements per batch whatever its size, always inside
the caller's single transaction. The hot-path statements (load, mark, settle, attempts, endpoint
health) are built once at import and run as Core statements on plain rows: no ORM unit of work,
no per-row statement, no statement construction per call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Table,
    Update,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from hookline.domain.states import CLAIMABLE_STATES as _CLAIMABLE
from hookline.domain.states import QUEUED_STATES as _QUEUED
from hookline.domain.states import DeliveryState, EndpointStatus, values
from hookline.storage.models import Delivery, DeliveryAttempt, Endpoint, Event
from hookline.storage.repositories._sql import one_of
from hookline.storage.types import UtcDateTime

QUEUED_STATES = values(_QUEUED)
"""``domain.states.QUEUED_STATES`` as column values."""
CLAIMABLE_STATES = values(_CLAIMABLE)
"""``domain.states.CLAIMABLE_STATES`` as column values."""
ENDPOINT_DISABLED = "endpoint_disabled"
"""``last_error`` of deliveries cancelled because their endpoint was disabled or deleted."""


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """The columns of a claimed delivery that deciding and planning its attempt read."""

    id: str
    state: str
    next_attempt_at: datetime | None
    attempt_number: int
    round_start_attempt: int
    first_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class TargetEndpoint:
    """The columns of an endpoint that building a signed request reads."""

    id: str
    url: str
    status: str
    deleted_at: datetime | None
    headers: dict[str, str]
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    retry_config: dict[str, Any] | None
    trace_propagation: bool | None
    disabled_reason: str | None
    payload_format: str
    """``envelope`` (Standard Webhooks ``{"type", "timestamp", "data"}``) or ``raw``."""
    rate_limit_per_s: float | None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """A delivery with what an attempt needs: its event's payload and its endpoint (plain
    values read by one Core ``SELECT``: no ORM identity map or unit of work on the hot path)."""

    delivery: ClaimedDelivery
    event_id: str
    event_type: str
    event_created_at: datetime
    payload: str
    endpoint: TargetEndpoint
    trace_context: str | None = None
    """The publish's W3C ``traceparent`` (stored only while tracing is on)."""


_D: Final = cast(Table, Delivery.__table__)
_E: Final = cast(Table, Endpoint.__table__)
_EV: Final = cast(Table, Event.__table__)
_A: Final = cast(Table, DeliveryAttempt.__table__)


def _load_for_attempt(*, postgresql: bool) -> Select[Any]:
    return (
        select(
            _D.c.id,
            _D.c.state,
            _D.c.next_attempt_at,
            _D.c.attempt_number,
            _D.c.round_start_attempt,
            _D.c.first_attempt_at,
            _EV.c.id,
            _EV.c.payload,
            _E.c.id,
            _E.c.url,
            _E.c.status,
            _E.c.deleted_at,
            _E.c.headers,
            _E.c.secret,
            _E.c.previous_secret,
            _E.c.previous_secret_expires_at,
            _E.c.retry_config,
            _E.c.trace_propagation,
            _E.c.disabled_reason,
            _E.c.payload_format,
            _E.c.rate_limit_per_s,
            _EV.c.trace_context,
            _EV.c.event_type,
            _EV.c.created_at,
        )
        .join_from(_D, _EV, _EV.c.id == _D.c.event_id)
        .join(_E, _E.c.id == _D.c.endpoint_id)
        .where(one_of(_D.c.id, postgresql=postgresql))
        .order_by(_D.c.id)
    )


_LOAD_FOR_ATTEMPT: Final = {
    postgresql: _load_for_attempt(postgresql=postgresql) for postgresql in (True, False)
}


async def load_for_attempt(
    session: AsyncSession, *, delivery_ids: Sequence[str]
) -> list[AttemptRow]:
    """The deliveries among ``delivery_ids`` that exist, with payload and endpoint, in id order.

    One statement, built once; rows come back as plain values.
    """
    if not delivery_ids:
        return []
    result = await session.execute(
        _LOAD_FOR_ATTEMPT[_is_postgresql(session)], {"ids": list(delivery_ids)}
    )
    return [
        AttemptRow(
            delivery=ClaimedDelivery(*row[0:6]),
            event_id=row[6],
            event_type=row[22],
            event_created_at=row[23],
            payload=row[7],
            endpoint=TargetEndpoint(*row[8:21]),
            trace_context=row[21],
        )
        for row in result.tuples()
    ]


def _mark_delivering(*, postgresql: bool) -> Update:
    return (
        update(_D)
        .where(
            one_of(_D.c.id, postgresql=postgresql),
            _D.c.state.in_(CLAIMABLE_STATES),
            _D.c.next_attempt_at <= bindparam("now", type_=UtcDateTime),
        )
        .values(
            state=DeliveryState.DELIVERING.value,
            version=_D.c.version + 1,
            updated_at=bindparam("now", type_=UtcDateTime),
            lease_until=bindparam("lease_until", type_=UtcDateTime),
            first_attempt_at=func.coalesce(
                _D.c.first_attempt_at, bindparam("now", type_=UtcDateTime)
            ),
        )
        .returning(_D.c.id, _D.c.version)
    )


_MARK_DELIVERING: Final = {
    postgresql: _mark_delivering(postgresql=postgresql) for postgresql in (True, False)
}


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
        _MARK_DELIVERING[_is_postgresql(session)],
        {
            "ids": list(delivery_ids),
            "now": now,
            "lease_until": now + timedelta(seconds=lease_s),
        },
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


@dataclass(frozen=True, slots=True)
class SettledOutcome:
    """What one attempt decided for its delivery: written only if ``version`` is still its."""

    delivery_id: str
    version: int
    state: str
    attempt_number: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    completed_at: datetime | None


_SETTLE_POSTGRESQL: Final = text(
    """
    UPDATE deliveries
    SET state = o.state, attempt_number = o.attempt_number,
        last_status_code = o.last_status_code, last_error = o.last_error,
        next_attempt_at = o.next_attempt_at, completed_at = o.completed_at,
        lease_until = NULL, updated_at = :now, version = deliveries.version + 1
    FROM unnest(
        CAST(:ids AS varchar[]), CAST(:versions AS integer[]), CAST(:states AS varchar[]),
        CAST(:attempt_numbers AS integer[]), CAST(:status_codes AS integer[]),
        CAST(:errors AS text[]), CAST(:next_attempts AS timestamptz[]),
        CAST(:completed AS timestamptz[])
    ) AS o(
        id, version, state, attempt_number, last_status_code, last_error, next_attempt_at,
        completed_at
    )
    WHERE deliveries.id = o.id AND deliveries.version = o.version
    RETURNING deliveries.id
    """
).bindparams(bindparam("now", type_=UtcDateTime))
_SETTLE_SQLITE: Final = text(
    """
    UPDATE deliveries
    SET state = o.state, attempt_number = o.attempt_number,
        last_status_code = o.last_status_code, last_error = o.last_error,
        next_attempt_at = o.next_attempt_at, completed_at = o.completed_at,
        lease_until = NULL, updated_at = :now, version = deliveries.version + 1
    FROM (
        SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS version,
               json_extract(value, '$[2]') AS state, json_extract(value, '$[3]') AS attempt_number,
               json_extract(value, '$[4]') AS last_status_code,
               json_extract(value, '$[5]') AS last_error,
               json_extract(value, '$[6]') AS next_attempt_at,
               json_extract(value, '$[7]') AS completed_at
        FROM json_each(:outcomes)
    ) AS o
    WHERE deliveries.id = o.id AND deliveries.version = o.version
    RETURNING deliveries.id
    """
).bindparams(bindparam("now", type_=UtcDateTime))


async def settle_deliveries(
    session: AsyncSession, *, outcomes: Sequence[SettledOutcome], now: datetime
) -> set[str]:
    """Write each delivery's outcome if nobody changed it since its ``version``; returns the ids
    written (an id missing was changed by someone else: its outcome is lost, not written).

    One statement for the whole batch, whatever its size: an ``UPDATE … FROM`` a set of rows
    (``unnest`` of one array per column on PostgreSQL, ``json_each`` of one JSON document on
    SQLite), so the SQL text never changes and is prepared once per connection.
    """
    if not outcomes:
        return set()
    if _is_postgresql(session):
        params: dict[str, Any] = {
            "ids": [o.delivery_id for o in outcomes],
            "versions": [o.version for o in outcomes],
            "states": [o.state for o in outcomes],
            "attempt_numbers": [o.attempt_number for o in outcomes],
            "status_codes": [o.last_status_code for o in outcomes],
            "errors": [o.last_error for o in outcomes],
            "next_attempts": [o.next_attempt_at for o in outcomes],
            "completed": [o.completed_at for o in outcomes],
            "now": now,
        }
        result = await session.execute(_SETTLE_POSTGRESQL, params)
    else:
        document = orjson.dumps(
            [
                (
                    o.delivery_id,
                    o.version,
                    o.state,
                    o.attempt_number,
                    o.last_status_code,
                    o.last_error,
                    sqlite_datetime(o.next_attempt_at),
                    sqlite_datetime(o.completed_at),
                )
                for o in outcomes
            ]
        ).decode()
        result = await session.execute(_SETTLE_SQLITE, {"outcomes": document, "now": now})
    return set(result.scalars())


def _is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def sqlite_datetime(value: datetime | None) -> str | None:
    """``value`` as the text SQLAlchemy stores for a ``UtcDateTime`` on SQLite (UTC, no offset)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


_INSERT_ATTEMPTS: Final = insert(_A)


async def insert_attempts(session: AsyncSession, *, rows: Sequence[dict[str, Any]]) -> None:
    """Insert attempt records: one executemany (one multi-row ``INSERT`` on PostgreSQL)."""
    if rows:
        await session.execute(_INSERT_ATTEMPTS, list(rows))


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
    return await finish_matching(
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
        failed += await finish_matching(
            session, conditions, state=DeliveryState.FAILED.value, last_error=problem, now=now
        )
    return failed


async def finish_matching(
    session: AsyncSession,
    conditions: Sequence[ColumnElement[bool]],
    *,
    state: str,
    last_error: str,
    now: datetime,
) -> list[str]:
    """Move the deliveries matching ``conditions`` to a final ``state`` (``last_error`` the
    reason, no due time, no lease); the ids moved. One statement."""
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
    completed_until: datetime | None = None,
) -> list[ColumnElement[bool]]:
    """Deliveries of one endpoint (when given) finished within a window: ``completed_since``
    and ``completed_before`` inclusive, ``completed_until`` exclusive (a list's ``until``). The
    filters a replay (``requeue``), its account of what it skipped and the dead-letter list
    share."""
    conditions: list[ColumnElement[bool]] = []
    if endpoint_id is not None:
        conditions.append(Delivery.endpoint_id == endpoint_id)
    if completed_since is not None:
        conditions.append(Delivery.completed_at >= completed_since)
    if completed_before is not None:
        conditions.append(Delivery.completed_at <= completed_before)
    if completed_until is not None:
        conditions.append(Delivery.completed_at < completed_until)
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
    completed_until: datetime | None = None,
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
            completed_until=completed_until,
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


@dataclass(frozen=True, slots=True)
class EndpointResults:
    """A batch's attempts folded per endpoint: the latest success (None if none), and the
    earliest failure after it (or in the batch, when there was no success)."""

    endpoint_id: str
    last_success_at: datetime | None
    first_failure_at: datetime | None


_LOCK_ENDPOINTS: Final = {
    postgresql: select(_E.c.id)
    .where(one_of(_E.c.id, postgresql=postgresql))
    .order_by(_E.c.id)
    .with_for_update(key_share=True)  # FOR NO KEY UPDATE: an insert's FK check does not wait
    for postgresql in (True, False)
}
_HEALTH_POSTGRESQL: Final = text(
    """
    UPDATE webhook_endpoints
    SET last_success_at = COALESCE(o.last_success_at, webhook_endpoints.last_success_at),
        failing_since = CASE WHEN o.last_success_at IS NOT NULL THEN o.first_failure_at
                        ELSE COALESCE(webhook_endpoints.failing_since, o.first_failure_at) END
    FROM unnest(
        CAST(:ids AS varchar[]), CAST(:successes AS timestamptz[]),
        CAST(:failures AS timestamptz[])
    ) AS o(id, last_success_at, first_failure_at)
    WHERE webhook_endpoints.id = o.id
    RETURNING webhook_endpoints.id, webhook_endpoints.failing_since
    """
).columns(id=String, failing_since=UtcDateTime)
_HEALTH_SQLITE: Final = text(
    """
    UPDATE webhook_endpoints
    SET last_success_at = COALESCE(o.last_success_at, webhook_endpoints.last_success_at),
        failing_since = CASE WHEN o.last_success_at IS NOT NULL THEN o.first_failure_at
                        ELSE COALESCE(webhook_endpoints.failing_since, o.first_failure_at) END
    FROM (
        SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS last_success_at,
               json_extract(value, '$[2]') AS first_failure_at
        FROM json_each(:results)
    ) AS o
    WHERE webhook_endpoints.id = o.id
    RETURNING webhook_endpoints.id, webhook_endpoints.failing_since
    """
).columns(id=String, failing_since=UtcDateTime)


async def record_endpoint_results(
    session: AsyncSession, *, results: Sequence[EndpointResults]
) -> dict[str, datetime | None]:
    """Fold a batch's attempts into its endpoints' health; returns each one's ``failing_since``
    after (endpoints that no longer exist are missing).

    A success sets ``last_success_at`` and ``failing_since`` to the first failure after it (or
    NULL); failures alone keep an existing ``failing_since`` (``COALESCE`` in SQL, so concurrent
    workers agree). Two statements whatever the batch: the endpoint rows are locked first in id
    order, so two workers settling batches for the same endpoints never deadlock, then updated
    in one set-based ``UPDATE``.
    """
    if not results:
        return {}
    ids = sorted(r.endpoint_id for r in results)
    postgresql = _is_postgresql(session)
    await session.execute(_LOCK_ENDPOINTS[postgresql], {"ids": ids})
    if postgresql:
        result = await session.execute(
            _HEALTH_POSTGRESQL,
            {
                "ids": [r.endpoint_id for r in results],
                "successes": [r.last_success_at for r in results],
                "failures": [r.first_failure_at for r in results],
            },
        )
    else:
        document = orjson.dumps(
            [
                (
                    r.endpoint_id,
                    sqlite_datetime(r.last_success_at),
                    sqlite_datetime(r.first_failure_at),
                )
                for r in results
            ]
        ).decode()
        result = await session.execute(_HEALTH_SQLITE, {"results": document})
    return dict(result.tuples().all())


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
