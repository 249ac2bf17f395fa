"""What only ``SqlQueue`` has: it reads and writes the deliveries rows themselves.

The behaviour every backend shares is in ``test_contract.py``. The database lease the worker
keeps beside a Redis claim (``deliveries.extend_leases``) is tested here too: same rows, same locks.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hookline.clock import ManualClock
from hookline.errors import Unavailable
from hookline.queue import SqlQueue
from hookline.storage.db import create_session_factory
from hookline.storage.models import Delivery
from hookline.storage.repositories import deliveries as repo
from tests.factories import make_delivery, make_endpoint, make_event

pytestmark = pytest.mark.integration

LEASE_S = 30.0
CLAIM_BOUND_S = 10.0  # a claim that waits on a locked row instead of skipping it hangs past this


async def add_rows(engine: AsyncEngine, now: datetime, *states: str) -> list[str]:
    """One delivery per state, all due at ``now``, returned in insertion (= due) order."""
    sessions = create_session_factory(engine)
    async with sessions.begin() as session:
        endpoint = await make_endpoint(session, now=now)
        event = await make_event(session, now=now)
        rows = [
            await make_delivery(
                session,
                event=event,
                endpoint=endpoint,
                now=now,
                state=state,
                next_attempt_at=now - timedelta(seconds=len(states) - n),
            )
            for n, state in enumerate(states)
        ]
    return [row.id for row in rows]


async def read_row(engine: AsyncEngine, delivery_id: str) -> tuple[str, datetime | None, datetime]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(Delivery.state, Delivery.lease_until, Delivery.next_attempt_at).where(
                    Delivery.id == delivery_id
                )
            )
        ).one()
    return row.state, row.lease_until, row.next_attempt_at


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def unreachable() -> AsyncIterator[SqlQueue]:
    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/none")
    yield SqlQueue(engine)
    await engine.dispose()


async def test_a_claim_writes_the_lease_and_leaves_the_state_to_the_service(
    db_engine: AsyncEngine, clock: ManualClock
) -> None:
    queue = SqlQueue(db_engine)
    now = clock.now()
    (delivery_id,) = await add_rows(db_engine, now, "pending")

    assert await queue.get_due_retries(now=now, limit=1, lease_s=LEASE_S) == [delivery_id]
    state, lease_until, _ = await read_row(db_engine, delivery_id)
    assert (state, lease_until) == ("pending", now + timedelta(seconds=LEASE_S))

    retry_at = now + timedelta(minutes=2)
    await queue.schedule_retry(delivery_id, due_at=retry_at)
    assert await read_row(db_engine, delivery_id) == ("pending", None, retry_at)


async def test_only_queued_states_are_claimed_and_a_crashed_attempt_comes_back(
    db_engine: AsyncEngine, clock: ManualClock
) -> None:
    # Given due rows in every state; the "delivering" one belongs to a worker that died
    queue = SqlQueue(db_engine)
    now = clock.now()
    states = ("pending", "retrying", "delivering", "succeeded", "failed", "cancelled")
    ids = dict(zip(states, await add_rows(db_engine, now, *states), strict=True))

    # When a worker claims everything that is due
    claimed = await queue.get_due_retries(now=now, limit=100, lease_s=LEASE_S)

    # Then it gets the three queued states only, oldest first; finished deliveries never return
    assert claimed == [ids["pending"], ids["retrying"], ids["delivering"]]
    assert await queue.depth() == 3


async def test_scheduling_an_id_without_a_row_does_nothing(
    db_engine: AsyncEngine, clock: ManualClock
) -> None:
    queue = SqlQueue(db_engine)
    now = clock.now()

    await queue.schedule_many([("dlv_NOSUCHROW", now)])

    assert await queue.depth() == 0
    assert await queue.get_due_retries(now=now, limit=10, lease_s=LEASE_S) == []


async def test_on_postgres_a_claim_skips_rows_another_transaction_holds(
    pg_engine: AsyncEngine, clock: ManualClock
) -> None:
    queue = SqlQueue(pg_engine)
    now = clock.now()
    ids = await add_rows(pg_engine, now, *["pending"] * 5)

    async with pg_engine.connect() as other_worker:
        # Given another transaction holding row locks on the two oldest rows
        await other_worker.begin()
        locked = ids[:2]
        await other_worker.execute(
            select(Delivery.id).where(Delivery.id.in_(locked)).with_for_update()
        )

        # When this worker claims, it skips them at once instead of waiting for that transaction
        claimed = await asyncio.wait_for(
            queue.get_due_retries(now=now, limit=10, lease_s=LEASE_S), timeout=CLAIM_BOUND_S
        )
        assert claimed == ids[2:]

        await other_worker.rollback()

    # Then, once the locks are gone, the skipped rows are claimable
    assert await queue.get_due_retries(now=now, limit=10, lease_s=LEASE_S) == locked


async def test_an_unreachable_database_raises_unavailable(unreachable: SqlQueue) -> None:
    with pytest.raises(Unavailable) as caught:
        await unreachable.ping()
    assert isinstance(caught.value.__cause__, OSError)

    with pytest.raises(Unavailable, match="database is unreachable"):
        await unreachable.get_due_retries(now=ManualClock().now(), limit=1, lease_s=LEASE_S)
    with pytest.raises(Unavailable, match="database is unreachable"):
        await unreachable.depth()


async def test_on_postgres_extending_leases_skips_rows_a_settle_holds(
    pg_engine: AsyncEngine, clock: ManualClock
) -> None:
    # Given three claimed rows, one of them locked by a settle that is still running (it waits
    # for the other rows next, in its own order: waiting here would be a deadlock)
    queue = SqlQueue(pg_engine)
    now = clock.now()
    ids = await add_rows(pg_engine, now, *["pending"] * 3)
    assert await queue.get_due_retries(now=now, limit=10, lease_s=LEASE_S) == ids
    later = clock.advance(10)

    async with pg_engine.connect() as settle:
        await settle.begin()
        await settle.execute(update(Delivery).where(Delivery.id == ids[1]).values(updated_at=later))

        # When the lease extender runs, it returns at once
        await asyncio.wait_for(
            queue.extend_lease(ids, now=later, lease_s=LEASE_S), timeout=CLAIM_BOUND_S
        )
        await settle.rollback()

    # Then the rows nobody held got the new lease; the held one kept its old lease
    extended = later + timedelta(seconds=LEASE_S)
    leases = [(await read_row(pg_engine, delivery_id))[1] for delivery_id in ids]
    assert leases == [extended, now + timedelta(seconds=LEASE_S), extended]


async def test_on_postgres_the_database_lease_of_a_redis_claim_skips_held_rows(
    pg_engine: AsyncEngine, clock: ManualClock
) -> None:
    # Given three delivering rows (claimed through a queue that keeps its leases elsewhere),
    # one of them locked by a running settle
    now = clock.now()
    ids = await add_rows(pg_engine, now, *["delivering"] * 3)
    sessions = create_session_factory(pg_engine)
    lease_until = now + timedelta(seconds=LEASE_S)

    async with pg_engine.connect() as settle:
        await settle.begin()
        await settle.execute(update(Delivery).where(Delivery.id == ids[0]).values(updated_at=now))

        # When the worker extends the database lease, it returns at once
        async def extend() -> None:
            async with sessions.begin() as session:
                await repo.extend_leases(session, delivery_ids=ids, lease_until=lease_until)

        await asyncio.wait_for(extend(), timeout=CLAIM_BOUND_S)
        await settle.rollback()

    # Then only the rows nobody held were extended
    leases = [(await read_row(pg_engine, delivery_id))[1] for delivery_id in ids]
    assert leases == [None, lease_until, lease_until]
