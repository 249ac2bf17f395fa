"""The ``DelayedQueue`` contract, one suite run against every backend on real servers.

``queue`` is parametrised over ``redis`` (a real Redis under this test's key prefix),
``sql-sqlite`` (a migrated SQLite file) and ``sql-postgres`` (the session's PostgreSQL). Every
backend gets the same delivery rows, inserted with ``tests/factories.py`` (for Redis into a SQLite
database beside it), so each test reads the same on all three. Time is a ``ManualClock``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import redis.asyncio as aioredis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from hookline.clock import ManualClock
from hookline.queue import DelayedQueue, QueueKeys, RedisQueue, SqlQueue
from hookline.storage.db import create_engine, create_session_factory
from hookline.storage.models import Delivery
from tests.factories import make_delivery, make_endpoint, make_event

pytestmark = pytest.mark.integration

BACKENDS = ["redis", "sql-sqlite", "sql-postgres"]
LEASE_S = 30.0
CONCURRENT_CALLERS = 20
CONCURRENT_IDS = 500


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


@dataclass
class Backend:
    """One queue under test, the database its delivery rows live in, and how to add rivals."""

    name: str
    queue: DelayedQueue
    rows: AsyncEngine
    rivals: Callable[[int], AbstractAsyncContextManager[list[DelayedQueue]]]

    @property
    def holds_its_own_index(self) -> bool:
        """Redis keeps ids apart from the database; the SQL queue is the table itself."""
        return self.name == "redis"

    async def add(
        self, due_times: Sequence[datetime], *, schedule: bool = True, now: datetime
    ) -> list[str]:
        """Insert one pending delivery row per due time and (by default) schedule each."""
        sessions = create_session_factory(self.rows)
        async with sessions.begin() as session:
            endpoint = await make_endpoint(session, now=now)
            event = await make_event(session, now=now)
            deliveries = [
                await make_delivery(
                    session, event=event, endpoint=endpoint, now=now, next_attempt_at=due_at
                )
                for due_at in due_times
            ]
        ids = [delivery.id for delivery in deliveries]
        if schedule:
            await self.queue.schedule_many(list(zip(ids, due_times, strict=True)))
        return ids

    async def commit_outcome(
        self,
        ids: Sequence[str],
        *,
        state: str,
        now: datetime,
        next_attempt_at: datetime | None = None,
    ) -> None:
        """What the service commits before it settles the claims in the queue."""
        final = state in {"succeeded", "failed", "cancelled"}
        async with self.rows.begin() as conn:
            await conn.execute(
                update(Delivery)
                .where(Delivery.id.in_(ids))
                .values(
                    state=state,
                    next_attempt_at=next_attempt_at,
                    completed_at=now if final else None,
                    updated_at=now,
                )
            )


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    name: str = request.param
    if name == "redis":
        client: aioredis.Redis = request.getfixturevalue("redis_client")
        keys = QueueKeys(request.getfixturevalue("redis_prefix"))

        @asynccontextmanager
        async def redis_rivals(count: int) -> AsyncIterator[list[DelayedQueue]]:
            # One client: its pool opens a connection per concurrent command.
            yield [RedisQueue(client, keys=keys) for _ in range(count)]

        rows: AsyncEngine = request.getfixturevalue("sqlite_engine")
        return Backend(name, RedisQueue(client, keys=keys), rows, redis_rivals)

    if name == "sql-sqlite":
        engine: AsyncEngine = request.getfixturevalue("sqlite_engine")
        queue = SqlQueue(engine)

        @asynccontextmanager
        async def sqlite_rivals(count: int) -> AsyncIterator[list[DelayedQueue]]:
            # SQLite is the single-process deployment: rivals are tasks sharing one queue.
            yield [queue] * count

        return Backend(name, queue, engine, sqlite_rivals)

    engine = request.getfixturevalue("pg_engine")
    url: str = request.getfixturevalue("migrated_pg_url")

    @asynccontextmanager
    async def pg_rivals(count: int) -> AsyncIterator[list[DelayedQueue]]:
        # Separate workers: a connection each, so PostgreSQL's SKIP LOCKED does the sorting out.
        rival_engines = [create_engine(url, pool_size=1) for _ in range(count)]
        try:
            yield [SqlQueue(rival) for rival in rival_engines]
        finally:
            for rival in rival_engines:
                await rival.dispose()

    return Backend(name, SqlQueue(engine), engine, pg_rivals)


@pytest.fixture
def queue(backend: Backend) -> DelayedQueue:
    return backend.queue


# --- claiming ---------------------------------------------------------------------------------


async def test_claims_only_ids_whose_due_time_has_come(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    # Given three ids due by now (one exactly now) and two due in a minute
    now = clock.now()
    due = await backend.add([now - seconds(2), now - seconds(1), now], now=now)
    await backend.add([now + seconds(60), now + seconds(61)], now=now)

    # When a worker claims with room for all of them
    claimed = await queue.get_due_retries(now=now, limit=10, lease_s=LEASE_S)

    # Then it gets exactly the due ones, and nothing else is due yet
    assert claimed == due
    assert await queue.get_due_retries(now=now, limit=10, lease_s=LEASE_S) == []


async def test_claims_oldest_due_first_and_never_more_than_limit(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    now = clock.now()
    due_times = [now - seconds(offset) for offset in (3, 5, 1, 4, 2)]
    ids = await backend.add(due_times, now=now)
    oldest_first = [i for _, i in sorted(zip(due_times, ids, strict=True))]

    first = await queue.get_due_retries(now=now, limit=2, lease_s=LEASE_S)
    rest = await queue.get_due_retries(now=now, limit=10, lease_s=LEASE_S)

    assert first == oldest_first[:2]
    assert rest == oldest_first[2:]


async def test_a_limit_of_zero_claims_nothing(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    now = clock.now()
    ids = await backend.add([now], now=now)

    assert await queue.get_due_retries(now=now, limit=0, lease_s=LEASE_S) == []
    assert await queue.get_due_retries(now=now, limit=1, lease_s=LEASE_S) == ids


async def test_a_claimed_id_is_not_claimed_again_while_its_lease_runs(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    now = clock.now()
    ids = await backend.add([now], now=now)
    assert await queue.get_due_retries(now=now, limit=10, lease_s=LEASE_S) == ids

    almost = now + seconds(LEASE_S) - timedelta(milliseconds=1)

    assert await queue.recover_expired(now=almost) == 0
    assert await queue.get_due_retries(now=almost, limit=10, lease_s=LEASE_S) == []


async def test_the_lease_starts_at_claim_time_not_at_the_due_time(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    # Given an id that has been due for an hour (far longer than a lease)
    ids = await backend.add([clock.now() - timedelta(hours=1)], now=clock.now())

    # When it is claimed now with a 30 s lease
    assert await queue.get_due_retries(now=clock.now(), limit=1, lease_s=LEASE_S) == ids

    # Then it stays claimed for 30 s from now ...
    clock.advance(LEASE_S - 1)
    assert await queue.recover_expired(now=clock.now()) == 0
    assert await queue.get_due_retries(now=clock.now(), limit=1, lease_s=LEASE_S) == []

    # ... and not a moment longer
    clock.advance(1)
    assert await queue.recover_expired(now=clock.now()) == 1
    assert await queue.get_due_retries(now=clock.now(), limit=1, lease_s=LEASE_S) == ids


# --- leases that run out ----------------------------------------------------------------------


async def test_recover_expired_makes_a_dead_workers_claims_due_again(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    # Given a worker that claimed three ids and then died mid-request
    now = clock.now()
    ids = await backend.add([now - seconds(3), now - seconds(2), now - seconds(1)], now=now)
    assert await queue.get_due_retries(now=now, limit=10, lease_s=10) == ids

    # When the leases have run out and the sweeper recovers them, a few at a time
    later = clock.advance(11)
    recovered = [await queue.recover_expired(now=later, limit=2) for _ in range(3)]

    # Then every one of them is claimable by another worker: nothing is lost
    assert recovered == [2, 1, 0]
    assert sorted(await queue.get_due_retries(now=later, limit=10, lease_s=10)) == sorted(ids)


async def test_extend_lease_keeps_a_long_request_claimed(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    now = clock.now()
    ids = await backend.add([now], now=now)
    assert await queue.get_due_retries(now=now, limit=1, lease_s=10) == ids

    # The request is still running after 8 s: the worker extends the lease by 10 s from then.
    await queue.extend_lease(ids, now=clock.advance(8), lease_s=10)

    clock.advance(9)  # 17 s after the claim: the original lease would have ended at 10 s
    assert await queue.recover_expired(now=clock.now()) == 0
    assert await queue.get_due_retries(now=clock.now(), limit=1, lease_s=10) == []

    clock.advance(1)  # 18 s: the extended lease has ended
    assert await queue.recover_expired(now=clock.now()) == 1


async def test_extend_lease_does_not_resurrect_a_lost_claim(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    now = clock.now()
    ids = await backend.add([now], now=now)
    assert await queue.get_due_retries(now=now, limit=1, lease_s=10) == ids
    later = clock.advance(11)
    assert await queue.recover_expired(now=later) == 1

    # The stalled worker wakes up and tries to extend the claim it has lost
    await queue.extend_lease(ids, now=later, lease_s=60)

    # The id stays due for anyone, and only due (not in flight as well)
    assert await queue.depth() == 1
    assert await queue.get_due_retries(now=later, limit=1, lease_s=10) == ids
    assert await queue.depth() == 1


# --- settling claims --------------------------------------------------------------------------


async def test_complete_retry_forgets_a_claim_after_its_outcome_is_committed(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    now = clock.now()
    done, other = await backend.add([now - seconds(1), now], now=now)
    assert await queue.get_due_retries(now=now, limit=10, lease_s=LEASE_S) == [done, other]

    await backend.commit_outcome([done], state="succeeded", now=now)
    await queue.complete_retry([done])
    await queue.extend_lease([done], now=now, lease_s=LEASE_S)  # a late extend changes nothing

    # Long after every lease: only the other (still in-flight) claim comes back.
    far = clock.advance(3600)
    assert await queue.recover_expired(now=far) == 1
    assert await queue.get_due_retries(now=far, limit=10, lease_s=LEASE_S) == [other]
    assert await queue.depth() == 1


async def test_release_makes_unstarted_claims_due_again_at_the_given_time(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    # Given a worker shutting down with two claims it never started (leases of a minute)
    now = clock.now()
    ids = await backend.add([now - seconds(1), now], now=now)
    assert await queue.get_due_retries(now=now, limit=10, lease_s=60) == ids

    # When it releases them, due 5 s from now
    await queue.release(ids, due_at=now + seconds(5))

    # Then they are due at that time, long before their leases would have ended
    assert await queue.get_due_retries(now=clock.advance(4), limit=10, lease_s=60) == []
    claimed = await queue.get_due_retries(now=clock.advance(1), limit=10, lease_s=60)
    assert sorted(claimed) == sorted(ids)


async def test_release_leaves_an_id_that_is_no_longer_in_flight_alone(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    now = clock.now()
    ids = await backend.add([now], now=now)
    assert await queue.get_due_retries(now=now, limit=1, lease_s=LEASE_S) == ids
    await queue.schedule_retry(ids[0], due_at=now + seconds(100))

    await queue.release(ids, due_at=now)  # a late release must not undo the newer due time

    assert await queue.get_due_retries(now=clock.advance(99), limit=1, lease_s=LEASE_S) == []
    assert await queue.get_due_retries(now=clock.advance(1), limit=1, lease_s=LEASE_S) == ids


# --- scheduling -------------------------------------------------------------------------------


async def test_schedule_retry_moves_an_in_flight_id_back_to_due(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    # Given a claimed id with a minute-long lease
    now = clock.now()
    ids = await backend.add([now], now=now)
    assert await queue.get_due_retries(now=now, limit=1, lease_s=60) == ids

    # When its attempt fails and it is scheduled to retry in 30 s
    retry_at = now + seconds(30)
    await backend.commit_outcome(ids, state="retrying", now=now, next_attempt_at=retry_at)
    await queue.schedule_retry(ids[0], due_at=retry_at)

    # Then it is due in 30 s (not when the lease ends), and no longer a claim to recover
    assert await queue.get_due_retries(now=clock.advance(29), limit=1, lease_s=60) == []
    assert await queue.recover_expired(now=now + seconds(61)) == 0
    assert await queue.get_due_retries(now=clock.advance(1), limit=1, lease_s=60) == ids


async def test_schedule_is_an_idempotent_upsert_where_the_last_due_time_wins(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    now = clock.now()
    earlier, later = await backend.add([now + seconds(50), now + seconds(50)], now=now)

    await queue.schedule_retry(earlier, due_at=now + seconds(10))
    await queue.schedule_retry(earlier, due_at=now + seconds(5))  # moved earlier
    await queue.schedule_many([(later, now + seconds(1)), (later, now + seconds(20))])

    assert await queue.depth() == 2
    assert await queue.get_due_retries(now=now + seconds(5), limit=10, lease_s=LEASE_S) == [earlier]
    assert await queue.get_due_retries(now=now + seconds(19), limit=10, lease_s=LEASE_S) == []
    assert await queue.get_due_retries(now=now + seconds(20), limit=10, lease_s=LEASE_S) == [later]


async def test_schedule_many_sets_every_due_time_in_one_call(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    now = clock.now()
    ids = await backend.add([now + seconds(100)] * 4, now=now, schedule=False)
    due_times = [now + seconds(offset) for offset in (4, 1, 3, 2)]

    await queue.schedule_many(list(zip(ids, due_times, strict=True)))

    claimed = await queue.get_due_retries(now=now + seconds(4), limit=10, lease_s=LEASE_S)
    assert claimed == [i for _, i in sorted(zip(due_times, ids, strict=True))]


# --- inspection -------------------------------------------------------------------------------


async def test_add_missing_adds_only_ids_the_queue_holds_neither_due_nor_in_flight(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    now = clock.now()
    due, claimed = await backend.add([now + seconds(60), now], now=now)
    assert await queue.get_due_retries(now=now, limit=10, lease_s=LEASE_S) == [claimed]
    (lost,) = await backend.add([now], now=now, schedule=False)  # a crash before enqueue

    added = await queue.add_missing([(due, now), (claimed, now), (lost, now), (lost, now)])

    # Redis holds its own index and can lose ids; the SQL queue is the table and cannot.
    assert added == (1 if backend.holds_its_own_index else 0)
    # the lost id is due now; the due one kept its time; the claim was not doubled
    later = now + seconds(1)
    assert await queue.get_due_retries(now=later, limit=10, lease_s=LEASE_S) == [lost]
    assert await queue.depth() == 3
    at_its_time = await queue.get_due_retries(now=now + seconds(60), limit=10, lease_s=LEASE_S)
    assert due in at_its_time


async def test_next_due_is_the_earliest_waiting_due_time_not_a_claimed_one(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    # Given nothing waits, then three ids: two due already, one in 90 s (to the millisecond)
    now = clock.now()
    assert await queue.next_due() is None
    later = now + timedelta(seconds=90, milliseconds=250)
    await backend.add([now - seconds(2), now, later], now=now)
    assert await queue.next_due() == now - seconds(2)

    # When the two due ones are claimed
    assert len(await queue.get_due_retries(now=now, limit=10, lease_s=LEASE_S)) == 2

    # Then the next due time is the one still waiting, not a claim's
    assert await queue.next_due() == later


async def test_depth_counts_due_and_in_flight_ids(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    now = clock.now()
    assert await queue.depth() == 0

    ids = await backend.add([now - seconds(1), now, now + seconds(60)], now=now)
    assert await queue.depth() == 3

    claimed = await queue.get_due_retries(now=now, limit=10, lease_s=LEASE_S)
    assert claimed == ids[:2]
    assert await queue.depth() == 3  # in flight still counts

    await backend.commit_outcome(claimed, state="failed", now=now)
    await queue.complete_retry(claimed)
    assert await queue.depth() == 1


async def test_ping_answers_and_close_is_safe(queue: DelayedQueue) -> None:
    await queue.ping()
    await queue.close()
    await queue.close()


async def test_empty_batches_do_nothing(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    now = clock.now()
    await queue.schedule_many([])
    await queue.extend_lease([], now=now, lease_s=LEASE_S)
    await queue.complete_retry([])
    await queue.release([], due_at=now)

    assert await queue.add_missing([]) == 0
    assert await queue.depth() == 0


async def test_naive_times_and_non_positive_leases_are_refused(
    queue: DelayedQueue, clock: ManualClock
) -> None:
    naive = clock.now().replace(tzinfo=None)

    with pytest.raises(ValueError, match="timezone-aware"):
        await queue.schedule_retry("dlv_x", due_at=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        await queue.get_due_retries(now=naive, limit=1, lease_s=LEASE_S)
    with pytest.raises(ValueError, match="lease_s"):
        await queue.get_due_retries(now=clock.now(), limit=1, lease_s=0)


# --- concurrency ------------------------------------------------------------------------------


async def test_concurrent_claimers_get_every_due_id_exactly_once(
    backend: Backend, clock: ManualClock
) -> None:
    # Given 500 due ids
    now = clock.now()
    rng = random.Random(20260101)
    due_times = [now - timedelta(milliseconds=rng.randrange(10_000)) for _ in range(CONCURRENT_IDS)]
    ids = await backend.add(due_times, now=now)

    # When 20 workers claim small batches at the same time until nothing is left
    async def drain(rival: DelayedQueue) -> list[str]:
        mine: list[str] = []
        for _ in range(CONCURRENT_IDS):  # bounded: each round claims at least one id or stops
            batch = await rival.get_due_retries(now=now, limit=7, lease_s=LEASE_S)
            if not batch:
                break
            mine.extend(batch)
        return mine

    async with backend.rivals(CONCURRENT_CALLERS) as rivals:
        per_worker = await asyncio.gather(*(drain(rival) for rival in rivals))

    # Then every id was claimed by exactly one worker, once
    everything = [i for batch in per_worker for i in batch]
    assert len(everything) == CONCURRENT_IDS
    assert set(everything) == set(ids)
    assert sum(1 for batch in per_worker if batch) > 1  # the work really was shared
    assert await backend.queue.depth() == CONCURRENT_IDS  # all in flight, none dropped


async def test_leases_in_database_says_whether_a_claim_is_in_the_deliveries_table(
    backend: Backend, queue: DelayedQueue, clock: ManualClock
) -> None:
    # Given a due delivery, claimed
    now = clock.now()
    [delivery_id] = await backend.add([now], now=now)
    assert await queue.get_due_retries(now=now, limit=1, lease_s=LEASE_S) == [delivery_id]

    # Then the row's lease_until holds the claim exactly when the queue says it does (the
    # worker records the lease in the database itself only when it does not)
    async with backend.rows.connect() as conn:
        lease_until = (
            await conn.execute(select(Delivery.lease_until).where(Delivery.id == delivery_id))
        ).scalar_one()
    assert queue.leases_in_database is (lease_until is not None)
    assert queue.leases_in_database is not backend.holds_its_own_index
