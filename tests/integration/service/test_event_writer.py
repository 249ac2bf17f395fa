"""Group commit of publishing (``service.event_writer``), on SQLite and on PostgreSQL + Redis.

The writer is held after a commit by a queue whose ``add_missing`` waits at a gate (the step
after the commit, before anyone is answered), so a test can gather publishes behind it and know
they form one group when it is let go. Writes are counted with SQLAlchemy's cursor events (on
PostgreSQL a group is one statement, on SQLite one transaction); nothing here waits on a clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any, Final, cast

import httpx
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from hookline.api.app import create_app
from hookline.errors import Conflict, Unavailable
from hookline.queue.base import DelayedQueue
from hookline.service import event_writer
from hookline.service.event_writer import EventWriter
from hookline.service.events import EventService, PublishResult
from hookline.storage.models import Delivery, Event
from tests.integration.conftest import Harness

WAIT_TIMEOUT_S: Final = 30.0
"""Bound on every wait for a condition: a bug fails the test instead of hanging it."""
WAIT_POLLS: Final = 30_000
"""Bound on every wait for a condition (polled each millisecond or so)."""
POISON_TYPE: Final = "test.poison"


class GatedQueue:
    """The real queue, except that ``add_missing`` (the publisher's step after its commit)
    waits until ``opened`` is set; ``arrivals`` counts the calls that reached it."""

    def __init__(self, inner: DelayedQueue) -> None:
        self._inner = inner
        self.opened = asyncio.Event()
        self.arrivals = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def add_missing(self, items: list[tuple[str, datetime]]) -> int:
        self.arrivals += 1
        await self.opened.wait()
        return await self._inner.add_missing(items)


def gated_service(harness: Harness, gate: GatedQueue) -> EventService:
    runtime = harness.runtime
    return EventService(
        sessions=runtime.sessions,
        queue=cast(DelayedQueue, gate),
        clock=harness.clock,
        metrics=runtime.metrics,
        max_payload_bytes=runtime.settings.max_payload_bytes,
        queue_max_size=runtime.settings.retry_queue_max_size,
    )


async def until(condition: Callable[[], bool], what: str) -> None:
    """Yield to the event loop until ``condition()`` holds (at most ``WAIT_POLLS`` times)."""
    for _ in range(WAIT_POLLS):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"not reached after {WAIT_POLLS} polls: {what}")


@contextmanager
def counted_event_inserts(engine: AsyncEngine) -> Iterator[list[int]]:
    """A one-item list holding the number of statements (an ``executemany`` counts once) that
    inserted events on ``engine`` meanwhile: one per transaction that wrote events."""
    count = [0]

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "INSERT INTO events" in statement:
            count[0] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
    try:
        yield count
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", on_execute)


async def held_writer(harness: Harness) -> tuple[EventService, GatedQueue, asyncio.Task[Any]]:
    """A service whose writer committed a first event and is held before answering it."""
    gate = GatedQueue(harness.runtime.queue)
    service = gated_service(harness, gate)
    first = asyncio.create_task(service.publish(event_type="order.created", payload={"n": 0}))
    await until(lambda: gate.arrivals == 1, "the first group at the gate")
    return service, gate, first


async def rows(harness: Harness) -> tuple[int, int]:
    """(events, deliveries) stored."""
    async with harness.runtime.sessions() as session:
        events = (await session.execute(select(func.count()).select_from(Event))).scalar_one()
        deliveries = (
            await session.execute(select(func.count()).select_from(Delivery))
        ).scalar_one()
    return events, deliveries


async def gather_outcomes(calls: list[Awaitable[PublishResult]]) -> list[Any]:
    return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), WAIT_TIMEOUT_S)


@asynccontextmanager
async def poisoned_event_type(engine: AsyncEngine) -> AsyncIterator[None]:
    """A trigger that makes the database refuse every event of type ``POISON_TYPE`` (a row it
    will not take, whatever its neighbours); dropped afterwards (PostgreSQL is shared)."""
    if engine.dialect.name == "sqlite":
        create = [
            "CREATE TRIGGER test_poison BEFORE INSERT ON events "
            f"WHEN NEW.event_type = '{POISON_TYPE}' "
            "BEGIN SELECT RAISE(ABORT, 'poisoned event'); END"
        ]
        drop = ["DROP TRIGGER IF EXISTS test_poison"]
    else:
        create = [
            "CREATE OR REPLACE FUNCTION test_poison() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.event_type = '{POISON_TYPE}' THEN RAISE EXCEPTION 'poisoned event'; "
            "END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER test_poison BEFORE INSERT ON events "
            "FOR EACH ROW EXECUTE FUNCTION test_poison()",
        ]
        drop = [
            "DROP TRIGGER IF EXISTS test_poison ON events",
            "DROP FUNCTION IF EXISTS test_poison",
        ]
    async with engine.begin() as conn:
        for statement in create:
            await conn.execute(text(statement))
    try:
        yield
    finally:
        async with engine.begin() as conn:
            for statement in drop:
                await conn.execute(text(statement))


@contextmanager
def outage_on_delivery_insert(engine: AsyncEngine) -> Iterator[list[int]]:
    """The connection drops whenever deliveries are inserted: on SQLite after the group's
    events were, in the middle of its transaction; on PostgreSQL in the middle of the one
    statement that inserts both. Yields the number of drops."""
    drops = [0]

    def drop(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "INSERT INTO deliveries" in statement:
            drops[0] += 1
            raise ConnectionResetError("connection reset (test outage)")

    event.listen(engine.sync_engine, "before_cursor_execute", drop)
    try:
        yield drops
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", drop)


# --- one group, one transaction --------------------------------------------------------------


async def test_concurrent_publishes_are_committed_in_one_transaction(harness: Harness) -> None:
    # Given an endpoint, and a writer held after committing a first event
    await harness.add_endpoint()
    service, gate, first = await held_writer(harness)

    # When 20 events are published meanwhile, and the writer is let go
    with counted_event_inserts(harness.runtime.engine) as inserts:
        publishing = [
            service.publish(event_type="order.created", payload={"n": n}) for n in range(1, 21)
        ]
        batch = asyncio.ensure_future(gather_outcomes(publishing))
        await until(lambda: service.writer.pending == 20 or gate.arrivals == 2, "the 20 queued up")
        gate.opened.set()
        results = await batch
        await first

    # Then they were written by one transaction, and each was answered as created
    assert inserts[0] == 1, f"{inserts[0]} inserts for one group"
    assert all(isinstance(r, PublishResult) and r.created for r in results), results
    assert len({r.event.id for r in results}) == 20
    assert await rows(harness) == (21, 21)
    assert await harness.runtime.queue.depth() == 21


async def test_a_publisher_is_answered_only_after_the_commit_and_the_enqueue(
    harness: Harness,
) -> None:
    # Given a writer held between its commit and its enqueue
    await harness.add_endpoint()
    _service, gate, first = await held_writer(harness)

    # Then the event is stored already, and its publisher is still waiting
    assert await rows(harness) == (1, 1)
    assert not first.done()

    # When the queue has been told, the publisher gets its answer
    gate.opened.set()
    result = await asyncio.wait_for(first, WAIT_TIMEOUT_S)
    assert result.created
    assert await harness.runtime.queue.depth() == 1


# --- idempotency inside one group ------------------------------------------------------------


async def test_the_same_new_key_twice_in_one_group_is_one_event(harness: Harness) -> None:
    # Given a held writer, and three publishes of one new key waiting in the same group:
    # two with the same content, one with other content
    await harness.add_endpoint()
    service, gate, first = await held_writer(harness)
    calls = [
        service.publish(event_type="order.created", payload={"a": 1, "b": 2}, idempotency_key="k"),
        service.publish(event_type="order.created", payload={"b": 2, "a": 1}, idempotency_key="k"),
        service.publish(event_type="order.created", payload={"a": 9}, idempotency_key="k"),
        service.publish(event_type="order.created", payload={"other": True}),
    ]
    batch = asyncio.ensure_future(gather_outcomes(calls))
    await until(lambda: service.writer.pending == 4 or gate.arrivals == 2, "the group queued")

    # When the writer writes them
    gate.opened.set()
    created, repeat, conflict, neighbour = await batch
    await first

    # Then the first is created, the equal one is its repeat, the other content is a conflict
    assert isinstance(created, PublishResult)
    assert created.created
    assert isinstance(repeat, PublishResult)
    assert not repeat.created
    assert repeat.event.id == created.event.id
    assert [d.id for d in repeat.deliveries] == [d.id for d in created.deliveries]
    assert isinstance(conflict, Conflict)
    assert created.event.id in str(conflict)
    assert isinstance(neighbour, PublishResult)
    assert neighbour.created
    # and one event was stored for the key (beside the held one and the neighbour)
    assert await rows(harness) == (3, 3)


async def test_a_stored_key_in_a_group_answers_with_the_stored_event(harness: Harness) -> None:
    await harness.add_endpoint()
    stored = await harness.publish(payload={"n": 1}, idempotency_key="k-stored")

    service, gate, first = await held_writer(harness)
    batch = asyncio.ensure_future(
        gather_outcomes(
            [
                service.publish(
                    event_type="order.created", payload={"n": 1}, idempotency_key="k-stored"
                ),
                service.publish(
                    event_type="order.created", payload={"n": 2}, idempotency_key="k-stored"
                ),
            ]
        )
    )
    await until(
        lambda: service.writer.pending == 2 or gate.arrivals == 2 or batch.done(),
        "the group queued",
    )
    gate.opened.set()
    repeat, conflict = await batch
    await first

    assert isinstance(repeat, PublishResult)
    assert (repeat.created, repeat.event.id) == (False, stored.event.id)
    assert isinstance(conflict, Conflict)
    assert await rows(harness) == (2, 2)


async def test_two_writers_racing_on_one_key_end_with_one_event(harness: Harness) -> None:
    # Given two services (as in two API processes) publishing the same new key at once
    await harness.add_endpoint()
    runtime = harness.runtime
    services = [
        EventService(
            sessions=runtime.sessions,
            queue=runtime.queue,
            clock=harness.clock,
            metrics=runtime.metrics,
            max_payload_bytes=runtime.settings.max_payload_bytes,
            queue_max_size=runtime.settings.retry_queue_max_size,
        )
        for _ in range(2)
    ]

    # When both publish it concurrently
    results = await gather_outcomes(
        [
            s.publish(event_type="order.created", payload={"n": 1}, idempotency_key="k-race")
            for s in services
        ]
    )

    # Then one created it and the other got it back (whoever lost the insert race, if any)
    assert all(isinstance(r, PublishResult) for r in results), results
    assert sorted(r.created for r in results) == [False, True]
    assert len({r.event.id for r in results}) == 1
    assert await rows(harness) == (1, 1)


# --- failures --------------------------------------------------------------------------------


async def test_a_poisoned_event_fails_alone_and_its_group_is_written(harness: Harness) -> None:
    # Given a database that refuses one kind of event, and a held writer
    await harness.add_endpoint()
    async with poisoned_event_type(harness.runtime.engine):
        service, gate, first = await held_writer(harness)
        with capture_logs() as logs:
            calls = [
                service.publish(event_type="order.created", payload={"n": 1}),
                service.publish(event_type=POISON_TYPE, payload={"n": 2}),
                service.publish(event_type="order.created", payload={"n": 3}, idempotency_key="k3"),
            ]
            batch = asyncio.ensure_future(gather_outcomes(calls))
            await until(lambda: service.writer.pending == 3 or gate.arrivals == 2, "queued")

            # When the group containing the poisoned event is written
            gate.opened.set()
            before, poisoned, after = await batch
        await first

    # Then only the poisoned event failed; its neighbours were created and stored
    assert isinstance(before, PublishResult)
    assert before.created
    assert isinstance(after, PublishResult)
    assert after.created
    assert isinstance(poisoned, Exception)
    assert not isinstance(poisoned, Unavailable)
    assert "poisoned event" in str(poisoned)
    assert await rows(harness) == (3, 3)
    assert any(e["event"] == "events.group_failed_writing_alone" for e in logs), logs


async def test_an_outage_in_the_middle_of_a_group_fails_all_and_writes_nothing(
    harness: Harness,
) -> None:
    # Given a database connection that drops while a group's deliveries are inserted
    await harness.add_endpoint()
    with outage_on_delivery_insert(harness.runtime.engine) as drops:
        # When ten events are published at once
        results = await gather_outcomes([harness.publish(payload={"n": n}) for n in range(10)])

    # Then every publisher is told to retry (503), and nothing of the group was stored
    assert drops[0] >= 1
    assert all(isinstance(r, Unavailable) for r in results), results
    assert {str(r) for r in results} == {"database unavailable"}  # no SQL, no payload
    assert await rows(harness) == (0, 0)
    assert await harness.runtime.queue.depth() == 0

    # And once the database is back, publishing works again
    assert (await harness.publish()).created
    assert await rows(harness) == (1, 1)


class _Deadlock(Exception):
    sqlstate = "40P01"  # what asyncpg's DeadlockDetectedError carries


async def test_a_group_chosen_as_a_deadlock_victim_is_written_again_not_refused(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a database that rolls the group back twice to break a deadlock (as it did when a
    # worker's settle held an endpoint row the group's foreign keys needed)
    await harness.add_endpoint()
    original = EventWriter._commit_group
    victims = [_Deadlock("deadlock detected"), _Deadlock("deadlock detected")]

    async def deadlocking(self: EventWriter, group: list[Any], now: datetime) -> Any:
        if victims:
            raise DBAPIError("WITH ... INSERT INTO events", {}, victims.pop())
        return await original(self, group, now)

    monkeypatch.setattr(EventWriter, "_commit_group", deadlocking)

    # When three events are published at once
    results = await gather_outcomes([harness.publish(payload={"n": n}) for n in range(3)])

    # Then every one was created (no 503), once
    assert all(isinstance(r, PublishResult) and r.created for r in results), results
    assert victims == []
    assert await rows(harness) == (3, 3)


async def test_the_writer_survives_its_own_bug_and_backs_off(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a writer whose group write fails once with an unexpected error
    await harness.add_endpoint()
    original = EventWriter._write_group
    failures = iter([RuntimeError("writer bug")])

    async def failing_once(self: EventWriter, group: list[Any]) -> None:
        for error in failures:
            raise error
        await original(self, group)

    monkeypatch.setattr(EventWriter, "_write_group", failing_once)
    monotonic_before = harness.clock.monotonic()

    # When two events are published one after the other
    with capture_logs() as logs:
        with pytest.raises(RuntimeError, match="writer bug"):
            await harness.publish(payload={"n": 1})
        second = await harness.publish(payload={"n": 2})

    # Then the first failed (logged with its traceback), the writer paused, and went on
    assert second.created
    assert harness.clock.monotonic() - monotonic_before >= event_writer.WRITER_BACKOFF_S
    [failed] = [e for e in logs if e["event"] == "events.writer_failed"]
    assert isinstance(failed["exc_info"], RuntimeError)
    assert await rows(harness) == (1, 1)


# --- memory bound, cancellation, shutdown ----------------------------------------------------


async def test_pending_events_are_bounded_and_the_rest_wait_for_room(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given room for 3 pending events, and a held writer
    monkeypatch.setattr(event_writer, "PENDING_MAX_EVENTS", 3)
    monkeypatch.setattr(event_writer, "GROUP_MAX_EVENTS", 3)
    await harness.add_endpoint()
    service, gate, first = await held_writer(harness)
    if harness.deployment.startswith("postgres"):  # a second writer is free there: hold it too
        blocker = asyncio.ensure_future(
            service.publish(event_type="order.created", payload={"n": "blocker"})
        )
        await until(lambda: gate.arrivals == 2, "the second writer at the gate")

    # When ten more are published
    batch = asyncio.ensure_future(
        gather_outcomes(
            [service.publish(event_type="order.created", payload={"n": n}) for n in range(10)]
        )
    )
    await until(lambda: service.writer.pending == 3, "the pending events capped")
    for _ in range(20):
        await asyncio.sleep(0)
        # Then no more than 3 ever wait in the writer's memory
        assert service.writer.pending <= 3

    # And all are written once the writer goes on
    gate.opened.set()
    results = await batch
    await first
    if harness.deployment.startswith("postgres"):
        await blocker
    assert all(isinstance(r, PublishResult) and r.created for r in results), results


async def test_a_publisher_that_gave_up_before_its_group_writes_nothing(
    harness: Harness,
) -> None:
    await harness.add_endpoint()
    service, gate, first = await held_writer(harness)
    if harness.deployment.startswith("postgres"):
        blocker = asyncio.ensure_future(
            service.publish(event_type="order.created", payload={"n": "blocker"})
        )
        await until(lambda: gate.arrivals == 2, "the second writer at the gate")
    given_up = asyncio.ensure_future(service.publish(event_type="order.created", payload={}))
    await until(lambda: service.writer.pending == 1, "queued behind the held writers")

    given_up.cancel()
    gate.opened.set()
    await first
    if harness.deployment.startswith("postgres"):
        await blocker
        assert await rows(harness) == (2, 2)
    else:
        assert await rows(harness) == (1, 1)
    assert given_up.cancelled()


async def test_close_answers_what_is_pending_and_refuses_the_rest(harness: Harness) -> None:
    # Given a held writer with events waiting behind it
    await harness.add_endpoint()
    service, gate, first = await held_writer(harness)
    waiting = asyncio.ensure_future(
        gather_outcomes(
            [service.publish(event_type="order.created", payload={"n": n}) for n in range(3)]
        )
    )
    await until(lambda: service.writer.pending == 3 or gate.arrivals == 2, "queued")

    # When the service closes (the runtime shutting down), the writer is let go
    closing = asyncio.ensure_future(service.close())
    gate.opened.set()
    await asyncio.wait_for(closing, WAIT_TIMEOUT_S)

    # Then everything accepted before was written and answered, and nothing new is taken
    assert all(isinstance(r, PublishResult) and r.created for r in await waiting)
    assert (await first).created
    with pytest.raises(Unavailable, match="shutting down"):
        await service.publish(event_type="order.created", payload={})
    assert await rows(harness) == (4, 4)


# --- SQLite: one writer beside a busy worker -------------------------------------------------


PUBLISHERS: Final = 50
EVENTS_PER_PUBLISHER: Final = 8


@pytest.mark.parametrize("deployment", ["sqlite+sql"], indirect=True)
async def test_fifty_publishers_beside_a_settling_worker_never_get_a_503_on_sqlite(
    harness: Harness,
) -> None:
    # Given the embedded deployment (SQLite) serving the API, with one matching webhook
    await harness.add_endpoint()
    app = create_app(harness.runtime)
    token = harness.runtime.api_tokens[0]
    statuses: list[int] = []
    done = asyncio.Event()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://hookline.test",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:

        async def publisher(n: int) -> None:
            for i in range(EVENTS_PER_PUBLISHER):
                response = await client.post(
                    "/events",
                    json={"event_type": "order.created", "payload": {"p": n, "i": i}},
                )
                statuses.append(response.status_code)

        async def worker() -> int:
            # settles what is due, over and over, while the publishers write (bounded)
            attempts = 0
            for _ in range(10_000):
                attempts += await harness.run()
                if done.is_set():
                    break
                await asyncio.sleep(0)
            return attempts

        # When 50 publishers post at once while the worker delivers and settles
        working = asyncio.ensure_future(worker())
        await asyncio.wait_for(
            asyncio.gather(*(publisher(n) for n in range(PUBLISHERS))), WAIT_TIMEOUT_S * 4
        )
        done.set()
        attempts = await asyncio.wait_for(working, WAIT_TIMEOUT_S * 4)

    # Then every publish was accepted (no 503: nobody waited out the lock) and stored, in far
    # fewer write transactions than events
    total = PUBLISHERS * EVENTS_PER_PUBLISHER
    assert statuses.count(202) == total, sorted(set(statuses))
    assert await rows(harness) == (total, total)
    assert harness.runtime.events.writer.groups_written < total // 4
    # and the worker settled deliveries at the same time as well as after
    assert attempts > 0
    attempts += await harness.run()
    async with harness.runtime.sessions() as session:
        states = dict(
            (await session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)))
            .tuples()
            .all()
        )
    assert states == {"succeeded": total}, states


# --- backpressure check ----------------------------------------------------------------------


class CountingQueue:
    """The real queue, counting the ``depth`` calls (what the backpressure check costs)."""

    def __init__(self, inner: DelayedQueue) -> None:
        self._inner = inner
        self.depth_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def depth(self) -> int:
        self.depth_calls += 1
        return await self._inner.depth()


async def test_concurrent_publishers_measure_the_queue_depth_once(harness: Harness) -> None:
    # Given a service that has not measured the queue yet
    await harness.add_endpoint()
    counting = CountingQueue(harness.runtime.queue)
    runtime = harness.runtime
    service = EventService(
        sessions=runtime.sessions,
        queue=cast(DelayedQueue, counting),
        clock=harness.clock,
        metrics=runtime.metrics,
        max_payload_bytes=runtime.settings.max_payload_bytes,
        queue_max_size=runtime.settings.retry_queue_max_size,
    )

    # When 20 publish at once, and again at once after the measured depth expired
    for _ in range(2):
        results = await gather_outcomes(
            [service.publish(event_type="order.created", payload={"n": n}) for n in range(20)]
        )
        assert all(isinstance(r, PublishResult) for r in results), results
        harness.clock.advance(2)

    # Then the queue was counted once per round, not once per publisher
    assert counting.depth_calls == 2
