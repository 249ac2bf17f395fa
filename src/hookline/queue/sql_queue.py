"""``SqlQueue``: the ``deliveries`` table itself is the queue (the embedded default).

``next_attempt_at`` is the due time and ``lease_until`` the claim. A delivery is *due* when

    state IN ('pending', 'retrying', 'delivering')
    AND next_attempt_at <= now
    AND (lease_until IS NULL OR lease_until <= now)

so an expired lease is claimable at once (``recover_expired`` only tidies it up), and the queue
can never disagree with the database: ``add_missing`` has nothing to add. Due deliveries are
found through the ``(state, next_attempt_at)`` index.

Claims are one ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING id`` statement. On
PostgreSQL the inner select takes ``FOR UPDATE SKIP LOCKED``, so concurrent workers on any number
of machines each get different rows without waiting for one another. SQLite has no row locks: the
single statement is atomic there (it takes the database's write lock before it reads), and an
``asyncio.Lock`` serialises this process's claims so they queue up in the event loop rather than
in SQLite's busy handler. SQLite is the single-process deployment; run PostgreSQL to scale out.

A delivery id the table does not hold is ignored by every method: scheduling an unknown id does
nothing (the row, written first by the service, is what makes a delivery exist).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Final, cast

from sqlalchemy import ColumnElement, Select, Table, bindparam, func, or_, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from hookline.domain.states import CLAIMABLE_STATES, values
from hookline.errors import Unavailable
from hookline.queue.base import require_aware, require_lease
from hookline.storage.db import ping as ping_database
from hookline.storage.models import Delivery

_CLAIMABLE: Final = values(CLAIMABLE_STATES)
"""The queue holds the deliveries in these states: due (or soon due), or leased (in flight)."""

ID_BATCH: Final = 1000  # ids per IN (...) list: far below PostgreSQL's 32767 bind parameters

_DELIVERIES: Final = cast(Table, Delivery.__table__)


def _batches(ids: Sequence[str]) -> Iterator[list[str]]:
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), ID_BATCH):
        yield unique[start : start + ID_BATCH]


def _is_unreachable(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError | OSError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@contextmanager
def _mapped_errors(action: str) -> Iterator[None]:
    try:
        yield
    except (DBAPIError, PoolTimeoutError, OSError) as exc:
        if not _is_unreachable(exc):
            raise
        raise Unavailable(f"database is unreachable ({action}): {exc}") from exc


class SqlQueue:
    """The ``DelayedQueue`` on the ``deliveries`` table (PostgreSQL or SQLite)."""

    leases_in_database = True

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._skip_locked = engine.dialect.name == "postgresql"
        self._claim_lock = asyncio.Lock()  # SQLite has no SKIP LOCKED: claim one at a time

    async def schedule_retry(self, delivery_id: str, *, due_at: datetime) -> None:
        await self.schedule_many([(delivery_id, due_at)])

    async def schedule_many(self, items: Sequence[tuple[str, datetime]]) -> None:
        if not items:
            return
        t = _DELIVERIES
        statement = (
            update(t)
            .where(t.c.id == bindparam("delivery_id"))
            .values(next_attempt_at=bindparam("due_at"), lease_until=None)
        )
        # Executed in order, so a later pair for the same id wins, as on Redis.
        params = [
            {"delivery_id": delivery_id, "due_at": require_aware(due_at)}
            for delivery_id, due_at in items
        ]
        with _mapped_errors("schedule"):
            async with self._engine.begin() as conn:
                await conn.execute(statement, params)

    async def get_due_retries(self, *, now: datetime, limit: int, lease_s: float) -> list[str]:
        deadline = require_aware(now) + timedelta(seconds=require_lease(lease_s))
        if limit <= 0:
            return []
        t = _DELIVERIES
        candidates = self._lock_rows(
            select(t.c.id).where(self._due(now)).order_by(t.c.next_attempt_at, t.c.id).limit(limit)
        )
        statement = (
            update(t)
            .where(t.c.id.in_(candidates))
            .values(lease_until=deadline)
            .returning(t.c.id, t.c.next_attempt_at)
        )
        with _mapped_errors("claim"):
            async with self._claim_lock, self._engine.begin() as conn:
                rows = (await conn.execute(statement)).all()
        # RETURNING has no order of its own; the contract promises oldest due first.
        return [row.id for row in sorted(rows, key=lambda row: (row.next_attempt_at, row.id))]

    async def extend_lease(
        self, delivery_ids: Sequence[str], *, now: datetime, lease_s: float
    ) -> None:
        deadline = require_aware(now) + timedelta(seconds=require_lease(lease_s))
        t = _DELIVERIES
        with _mapped_errors("extend lease"):
            async with self._engine.begin() as conn:
                for batch in _batches(delivery_ids):
                    # Skip rows a settle holds (see deliveries.extend_leases): no deadlock.
                    unlocked = (
                        select(t.c.id)
                        .where(t.c.id.in_(batch), t.c.lease_until.is_not(None))
                        .with_for_update(skip_locked=True)
                    )
                    await conn.execute(
                        update(t)
                        .where(t.c.id.in_(unlocked.scalar_subquery()))
                        .values(lease_until=deadline)
                    )

    async def complete_retry(self, delivery_ids: Sequence[str]) -> None:
        t = _DELIVERIES
        with _mapped_errors("complete"):
            async with self._engine.begin() as conn:
                for batch in _batches(delivery_ids):
                    await conn.execute(
                        update(t)
                        .where(t.c.id.in_(batch), t.c.lease_until.is_not(None))
                        .values(lease_until=None)
                    )

    async def discard(self, delivery_ids: Sequence[str]) -> None:
        # The deliveries table is the queue: a parked row has no due time and no lease already.
        return

    async def release(self, delivery_ids: Sequence[str], *, due_at: datetime) -> None:
        require_aware(due_at)
        t = _DELIVERIES
        with _mapped_errors("release"):
            async with self._engine.begin() as conn:
                for batch in _batches(delivery_ids):
                    await conn.execute(
                        update(t)
                        .where(t.c.id.in_(batch), t.c.lease_until.is_not(None))
                        .values(next_attempt_at=due_at, lease_until=None)
                    )

    async def recover_expired(self, *, now: datetime, limit: int = 1000) -> int:
        require_aware(now)
        if limit <= 0:
            return 0
        t = _DELIVERIES
        expired = self._lock_rows(
            select(t.c.id)
            .where(t.c.state.in_(_CLAIMABLE), t.c.lease_until <= now)
            .order_by(t.c.lease_until, t.c.id)
            .limit(limit)
        )
        statement = update(t).where(t.c.id.in_(expired)).values(lease_until=None).returning(t.c.id)
        with _mapped_errors("recover"):
            async with self._claim_lock, self._engine.begin() as conn:
                return len((await conn.execute(statement)).all())

    async def add_missing(self, items: Sequence[tuple[str, datetime]]) -> int:
        return 0  # the table is the queue: a committed delivery row cannot be missing from it

    async def next_due(self) -> datetime | None:
        t = _DELIVERIES
        statement = select(func.min(t.c.next_attempt_at)).where(
            t.c.state.in_(_CLAIMABLE), t.c.lease_until.is_(None)
        )
        with _mapped_errors("next due"):
            async with self._engine.connect() as conn:
                return cast(datetime | None, (await conn.execute(statement)).scalar_one())

    async def depth(self) -> int:
        t = _DELIVERIES
        statement = select(func.count()).select_from(t).where(t.c.state.in_(_CLAIMABLE))
        with _mapped_errors("depth"):
            async with self._engine.connect() as conn:
                return int((await conn.execute(statement)).scalar_one())

    async def ping(self) -> None:
        await ping_database(self._engine)

    async def close(self) -> None:
        """Nothing to do: the engine belongs to whoever built it (the runtime disposes it)."""

    @staticmethod
    def _due(now: datetime) -> ColumnElement[bool]:
        t = _DELIVERIES
        return (
            t.c.state.in_(_CLAIMABLE)
            & (t.c.next_attempt_at <= now)
            & or_(t.c.lease_until.is_(None), t.c.lease_until <= now)
        )

    def _lock_rows(self, candidates: Select[tuple[str]]) -> Select[tuple[str]]:
        # PostgreSQL: lock the chosen rows and skip rows another claim holds; a row whose lease a
        # concurrent claim has just committed is re-checked against the WHERE and dropped.
        if self._skip_locked:
            return candidates.with_for_update(skip_locked=True)
        return candidates
