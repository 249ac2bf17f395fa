"""The delivery guarantees that only real processes can show (issue 4, "Checks that must hold").

Each test starts real ``hookline worker`` processes (the console script, configured only by
environment variables) against the session's PostgreSQL and the shared Redis under a key prefix
of its own, and a loopback receiver in the test process. The test publishes through a runtime
built from the same settings. Worker processes run on the system clock, so this runtime does too:
the due times it writes must mean "now" to the workers. Nothing here sleeps to let time pass;
every wait polls a condition (a log line, a request count, a database state) under a deadline and
fails with what it saw.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Final, cast

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hookline.queue.base import DelayedQueue
from hookline.queue.keys import QueueKeys
from hookline.runtime import Runtime, open_runtime
from hookline.service.delivery import PlannedAttempt
from hookline.service.events import EventService, PublishResult
from hookline.settings import Settings
from hookline.storage.models import Delivery, DeliveryAttempt
from hookline.worker.sweeper import Sweeper
from tests.fixtures.processes import PYCACHE_DIR, STARTUP_TIMEOUT_S
from tests.integration.worker.worker_process import POLL_S, WorkerProcess, warm_bytecode
from tests.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.processes]

HOOK: Final = "/hook"
STARTUP_S: Final = STARTUP_TIMEOUT_S
"""Longest a worker may take from exec to its first claim (imports on a loaded 2-core machine:
load average 5-8 in CI; minutes, not seconds)."""
SETTLE_S: Final = 180.0
"""Longest a test waits for all of its deliveries to finish."""
EXIT_S: Final = 60.0
"""Longest a worker may take to exit once it should (after SIGKILL, or after its grace period:
closing its pools on a loaded machine). A worker that hangs still fails the test."""
MARGIN_S: Final = 30.0
"""On top of the sum of a test's bounded waits (the first one may include compiling the workers'
bytecode, ``STARTUP_S``), so that its own deadlines, which say what they saw, fire before
pytest-timeout does."""
EVENTS: Final = 400
"""Events in the two-process test: enough that both processes claim many batches at once and
their sweepers race the publisher, small enough to settle in well under a minute on a loaded
2-core machine (2,000 took longer than the 90 s pytest timeout there)."""
LOST: Final = 200
"""Deliveries whose Redis queue is lost in the sweeper test: more than a worker claims at once
(``WORKER_BATCH_SIZE``, 100), few enough to deliver quickly on a loaded machine (it was 500)."""
GRACE_S: Final = 30
"""``SHUTDOWN_GRACE_PERIOD`` of the test whose worker must finish its request while stopping:
long enough that the request finishes inside it even on a loaded machine."""
PUBLISH_CONCURRENCY: Final = 20
"""Publishes in flight at once from the test process (its pool holds 10 + 10 connections)."""


# fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pycache_dir() -> Path:
    """Where worker processes keep bytecode; shared by every test process (Python writes each
    file atomically and rewrites stale ones)."""
    warm_bytecode(pycache_dir=PYCACHE_DIR, timeout_s=STARTUP_TIMEOUT_S)
    return PYCACHE_DIR


@pytest.fixture
def queue_backend() -> str:
    """``HOOKLINE_QUEUE_BACKEND``; a test parametrises it to run on both queues."""
    return "redis"


@pytest.fixture
def settings_env(
    pg_engine: AsyncEngine, redis_url: str, redis_prefix: str, tmp_path: Path, queue_backend: str
) -> dict[str, str]:
    """The environment every process of one test shares: emptied tables, a fresh key prefix.

    ``DATABASE_URL`` is given the plain way an operator writes it (``postgresql://``).
    """
    url = pg_engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    return {
        "DATABASE_URL": url,
        "DATABASE_POOL_SIZE": "5",
        "REDIS_URL": redis_url,
        "HOOKLINE_QUEUE_BACKEND": queue_backend,
        "HOOKLINE_REDIS_PREFIX": redis_prefix,
        "HOOKLINE_DATA_DIR": str(tmp_path / "data"),
        "ALLOWED_NETWORKS": "127.0.0.1/32",
        "DELIVERY_CONNECT_TIMEOUT": "2",
        "DELIVERY_TIMEOUT": "15",
        "RETRY_WORKER_POLL_INTERVAL": "0.05",
        "LEASE_DURATION": "10",
        "SWEEPER_INTERVAL": "0.5",
        "SHUTDOWN_GRACE_PERIOD": "5",
        "WORKER_CONCURRENCY": "50",
        "WORKER_ENDPOINT_CONCURRENCY": "50",
        # INFO: "worker.started", "delivery.attempt", "worker.released" are how tests see inside.
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
    }


@pytest.fixture
async def runtime(settings_env: dict[str, str]) -> AsyncIterator[Runtime]:
    """The test process's own runtime on the same settings (system clock, like the workers)."""
    env: dict[str, Any] = dict(settings_env)
    settings = Settings(_env_file=None, **env)
    async with open_runtime(settings) as opened:
        yield opened


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


class Workers:
    """Starts worker processes for one test; the fixture stops every one of them afterwards."""

    def __init__(self, *, settings_env: dict[str, str], pycache_dir: Path, work_dir: Path) -> None:
        self._settings_env = settings_env
        self._pycache_dir = pycache_dir
        self._work_dir = work_dir
        self.started: list[WorkerProcess] = []

    def start(self, name: str, **overrides: str) -> WorkerProcess:
        """``hookline worker`` with the test's settings, ``overrides`` replacing some of them."""
        worker = WorkerProcess.start(
            name,
            settings_env=self._settings_env | overrides,
            pycache_dir=self._pycache_dir,
            work_dir=self._work_dir,
        )
        self.started.append(worker)
        return worker

    async def stop_all(self) -> None:
        """Stop every worker started (even when stopping one of them fails), then report."""
        failures: list[BaseException] = []
        for worker in self.started:
            try:
                await worker.stop(kill_after_s=EXIT_S)
            except Exception as exc:  # keep stopping the others
                failures.append(exc)
        if failures:
            raise failures[0]


@pytest.fixture
async def workers(
    settings_env: dict[str, str], pycache_dir: Path, tmp_path: Path
) -> AsyncIterator[Workers]:
    started = Workers(settings_env=settings_env, pycache_dir=pycache_dir, work_dir=tmp_path)
    try:
        yield started
    finally:
        await started.stop_all()


@pytest.fixture
def queue_keys(redis_prefix: str) -> QueueKeys:
    return QueueKeys(redis_prefix)


# helpers ---------------------------------------------------------------------------------------


async def publish_many(runtime: Runtime, count: int) -> list[PublishResult]:
    """Publish ``count`` events, ``PUBLISH_CONCURRENCY`` at a time."""
    results: list[PublishResult] = []
    for start in range(0, count, PUBLISH_CONCURRENCY):
        chunk = range(start, min(start + PUBLISH_CONCURRENCY, count))
        results += await asyncio.gather(
            *(
                runtime.events.publish(event_type="order.created", payload={"order": n})
                for n in chunk
            )
        )
    return results


async def eventually(
    check: Callable[[], Awaitable[str | None]], *, timeout_s: float, context: Callable[[], str]
) -> None:
    """Poll ``check`` (None: done; a string: what is still wrong) until done or the deadline."""
    deadline = time.monotonic() + timeout_s
    while (problem := await check()) is not None:
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {timeout_s} s: {problem}\n{context()}")
        await asyncio.sleep(POLL_S)


async def state_counts(runtime: Runtime) -> dict[str, int]:
    async with runtime.sessions() as session:
        rows = await session.execute(select(Delivery.state, func.count()).group_by(Delivery.state))
    return dict(rows.tuples().all())


async def wait_all_succeeded(
    runtime: Runtime, count: int, *, workers: list[WorkerProcess], timeout_s: float = SETTLE_S
) -> None:
    """Wait until all ``count`` deliveries succeeded and ``workers`` logged their attempts."""

    async def check() -> str | None:
        counts = await state_counts(runtime)
        if counts != {"succeeded": count}:
            return f"deliveries by state: {counts}"
        # A worker logs an attempt after its settle commits: wait for the lines as well.
        logged = sum(len(w.log_events("delivery.attempt")) for w in workers)
        return None if logged >= count else f"{logged} of {count} attempts logged so far"

    await eventually(
        check, timeout_s=timeout_s, context=lambda: "\n".join(w.describe() for w in workers)
    )


async def all_deliveries(runtime: Runtime) -> list[Delivery]:
    async with runtime.sessions() as session:
        return list((await session.execute(select(Delivery))).scalars())


async def load_delivery(runtime: Runtime, delivery_id: str) -> Delivery:
    async with runtime.sessions() as session:
        found = await session.get(Delivery, delivery_id)
    assert found is not None, f"{delivery_id} is gone"
    return found


async def attempts_of(runtime: Runtime, delivery_id: str) -> list[DeliveryAttempt]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == delivery_id)
            .order_by(DeliveryAttempt.attempt_number)
        )
    return list(rows.scalars())


async def queue_position(
    client: aioredis.Redis, keys: QueueKeys, delivery_id: str
) -> tuple[bool, bool]:
    """Whether ``delivery_id`` is in the queue's ``due`` set, and whether it is in ``inflight``."""
    due = await client.zscore(keys.due, delivery_id)
    inflight = await client.zscore(keys.inflight, delivery_id)
    return due is not None, inflight is not None


def webhook_ids(receiver: Receiver) -> Counter[str]:
    return Counter(request.headers["webhook-id"] for request in receiver.requests)


def attempted_ids(worker: WorkerProcess) -> Iterator[str]:
    return (str(event["job_id"]) for event in worker.log_events("delivery.attempt"))


# tests -----------------------------------------------------------------------------------------


@pytest.mark.timeout(3 * STARTUP_S + 2 * SETTLE_S + 2 * EXIT_S + MARGIN_S)
async def test_two_worker_processes_deliver_every_event_exactly_once(
    runtime: Runtime, receiver: Receiver, workers: Workers
) -> None:
    """Two ``hookline worker`` processes on one PostgreSQL and one Redis deliver each of
    ``EVENTS`` (400) events exactly once, none lost, both doing part of the work.

    Sized to finish comfortably on a loaded 2-core machine (it was 2,000 events, which ran past
    its timeout there); every wait is bounded by ``STARTUP_S``/``SETTLE_S`` and fails with the
    workers' log tails.
    """
    # Given one endpoint that answers 200 at once, and two worker processes on one PostgreSQL
    # and one Redis, both running
    await runtime.endpoints.create(url=receiver.url_for(HOOK))
    worker_a, worker_b = workers.start("a"), workers.start("b")
    await worker_a.wait_for_log("worker.started", timeout_s=STARTUP_S)
    await worker_b.wait_for_log("worker.started", timeout_s=STARTUP_S)

    # When EVENTS events are published while they run (their sweepers, every 0.5 s, race the
    # publisher's commit-then-enqueue: see the race tests at the end of this file)
    published = await publish_many(runtime, EVENTS)
    event_ids = {result.event.id for result in published}
    delivery_ids = {d.id for result in published for d in result.deliveries}
    assert len(event_ids) == len(delivery_ids) == EVENTS

    # Then every delivery ends succeeded
    await receiver.wait_for(EVENTS, timeout_s=SETTLE_S)
    await wait_all_succeeded(runtime, EVENTS, workers=[worker_a, worker_b])
    # and the receiver saw every webhook-id, none twice
    seen = webhook_ids(receiver)
    assert set(seen) == event_ids
    assert sorted(i for i, n in seen.items() if n > 1) == []
    assert len(receiver.requests) == EVENTS
    # after exactly one attempt each
    deliveries = await all_deliveries(runtime)
    assert {d.id for d in deliveries} == delivery_ids
    assert Counter(d.attempt_number for d in deliveries) == {1: EVENTS}
    async with runtime.sessions() as session:
        attempt_statuses = Counter(
            (await session.execute(select(DeliveryAttempt.status_code))).scalars()
        )
    assert attempt_statuses == {200: EVENTS}

    # and both processes did part of the work, never the same delivery
    by_a, by_b = set(attempted_ids(worker_a)), set(attempted_ids(worker_b))
    assert by_a, "worker a attempted nothing"
    assert by_b, "worker b attempted nothing"
    assert by_a.isdisjoint(by_b)
    assert by_a | by_b == delivery_ids

    # and both stop cleanly on SIGTERM
    assert await worker_a.stop(kill_after_s=EXIT_S) == 0, worker_a.describe()
    assert await worker_b.stop(kill_after_s=EXIT_S) == 0, worker_b.describe()


@pytest.mark.timeout(3 * STARTUP_S + SETTLE_S + 3 * EXIT_S + MARGIN_S)
async def test_a_worker_killed_mid_request_loses_nothing(
    runtime: Runtime,
    receiver: Receiver,
    workers: Workers,
    redis_client: aioredis.Redis,
    queue_keys: QueueKeys,
) -> None:
    # Given an endpoint that holds every request open until told otherwise
    hold = asyncio.Event()
    receiver.on(HOOK, hold=hold)
    await runtime.endpoints.create(url=receiver.url_for(HOOK))
    [delivery] = (await runtime.events.publish(event_type="order.created", payload={})).deliveries
    fast = {"LEASE_DURATION": "2", "SWEEPER_INTERVAL": "0.5"}

    # and worker A in the middle of the request
    worker_a = workers.start("a", **fast)
    [first] = await receiver.wait_for(1, timeout_s=STARTUP_S)

    # When A is killed with SIGKILL while the request is held
    worker_a.send_signal(signal.SIGKILL)
    assert await worker_a.wait_exit(timeout_s=EXIT_S) == -signal.SIGKILL
    # (the claim is still A's: in flight in Redis, `delivering` in the database)
    assert await queue_position(redis_client, queue_keys, delivery.id) == (False, True)
    assert (await load_delivery(runtime, delivery.id)).state == "delivering"
    # and the endpoint answers at once from now on, and worker B starts
    hold.set()
    worker_b = workers.start("b", **fast)

    # Then after A's lease expires, B's sweeper returns the claim and B delivers it again
    [_, second] = await receiver.wait_for(2, timeout_s=STARTUP_S)
    await wait_all_succeeded(runtime, 1, workers=[worker_a, worker_b])
    # with the same webhook-id (at-least-once: the receiver may deduplicate)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.event_id
    assert len(receiver.requests) == 2
    # The killed attempt left no record; B's attempt is the delivery's first recorded one
    final = await load_delivery(runtime, delivery.id)
    assert (final.state, final.attempt_number, final.last_status_code) == ("succeeded", 1, 200)
    assert [(a.attempt_number, a.status_code) for a in await attempts_of(runtime, delivery.id)] == [
        (1, 200)
    ]
    assert [e["recovered_leases"] for e in worker_b.log_events("sweeper.pass")][:1] == [1]
    assert list(attempted_ids(worker_b)) == [delivery.id]
    assert await queue_position(redis_client, queue_keys, delivery.id) == (False, False)


@pytest.mark.timeout(2 * STARTUP_S + GRACE_S + 3 * EXIT_S + MARGIN_S)
async def test_sigterm_finishes_the_in_flight_request_within_the_grace_period(
    runtime: Runtime,
    receiver: Receiver,
    workers: Workers,
    redis_client: aioredis.Redis,
    queue_keys: QueueKeys,
) -> None:
    # Given a worker with a 30 s grace period whose request the endpoint holds open
    hold = asyncio.Event()
    receiver.on(HOOK, hold=hold)
    await runtime.endpoints.create(url=receiver.url_for(HOOK))
    [delivery] = (await runtime.events.publish(event_type="order.created", payload={})).deliveries
    worker = workers.start("a", SHUTDOWN_GRACE_PERIOD=str(GRACE_S))
    await receiver.wait_for(1, timeout_s=STARTUP_S)

    # When it receives SIGTERM, and the endpoint answers while the worker is stopping
    worker.send_signal(signal.SIGTERM)
    stopping = await worker.wait_for_log("worker.stopping", timeout_s=EXIT_S)
    hold.set()

    # Then the process finishes the attempt and exits 0
    assert stopping["in_flight"] == 1
    assert await worker.wait_exit(timeout_s=GRACE_S + EXIT_S) == 0, worker.describe()
    # and the delivery is succeeded, not abandoned: nothing was released or left in the queue
    final = await load_delivery(runtime, delivery.id)
    assert (final.state, final.attempt_number, final.last_status_code) == ("succeeded", 1, 200)
    assert worker.log_events("worker.released") == []
    assert await queue_position(redis_client, queue_keys, delivery.id) == (False, False)
    assert len(receiver.requests) == 1


@pytest.mark.timeout(3 * STARTUP_S + SETTLE_S + 3 * EXIT_S + MARGIN_S)
async def test_sigterm_releases_a_request_that_outlasts_the_grace_period(
    runtime: Runtime,
    receiver: Receiver,
    workers: Workers,
    redis_client: aioredis.Redis,
    queue_keys: QueueKeys,
) -> None:
    # Given a worker with a 1 s grace period whose request the endpoint holds open
    hold = asyncio.Event()
    receiver.on(HOOK, hold=hold)
    await runtime.endpoints.create(url=receiver.url_for(HOOK))
    [delivery] = (await runtime.events.publish(event_type="order.created", payload={})).deliveries
    worker_a = workers.start("a", SHUTDOWN_GRACE_PERIOD="1")
    [first] = await receiver.wait_for(1, timeout_s=STARTUP_S)

    # When it receives SIGTERM and the endpoint keeps holding past the grace period
    worker_a.send_signal(signal.SIGTERM)
    sent_at = time.monotonic()
    code = await worker_a.wait_exit(timeout_s=1 + EXIT_S)
    took_s = time.monotonic() - sent_at

    # Then the process gives up after the grace period (the endpoint would hold it forever),
    # exits 0 and releases the claim
    assert code == 0, worker_a.describe()
    assert 1.0 <= took_s < 1 + EXIT_S
    assert [e["deliveries"] for e in worker_a.log_events("worker.released")] == [1]
    assert await queue_position(redis_client, queue_keys, delivery.id) == (True, False)
    assert (await load_delivery(runtime, delivery.id)).attempt_number == 0

    # When the endpoint answers again and a second worker starts
    hold.set()
    worker_b = workers.start("b")

    # Then the second worker delivers it, with the same webhook-id
    [_, second] = await receiver.wait_for(2, timeout_s=STARTUP_S)
    await wait_all_succeeded(runtime, 1, workers=[worker_a, worker_b])
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.event_id
    final = await load_delivery(runtime, delivery.id)
    assert (final.state, final.attempt_number, final.last_status_code) == ("succeeded", 1, 200)
    assert list(attempted_ids(worker_b)) == [delivery.id]
    assert len(receiver.requests) == 2


@pytest.mark.timeout(2 * STARTUP_S + 2 * SETTLE_S + EXIT_S + MARGIN_S)
async def test_one_sweeper_pass_rebuilds_a_lost_redis_queue(
    runtime: Runtime,
    receiver: Receiver,
    workers: Workers,
    redis_client: aioredis.Redis,
    redis_prefix: str,
) -> None:
    # Given LOST deliveries published while no worker runs
    await runtime.endpoints.create(url=receiver.url_for(HOOK))
    published = await publish_many(runtime, LOST)
    delivery_ids = {d.id for result in published for d in result.deliveries}
    assert len(delivery_ids) == LOST
    assert await runtime.queue.depth() == LOST

    # When Redis loses every key of this queue (only our prefix: the server is shared)
    keys = [key async for key in redis_client.scan_iter(match=f"{redis_prefix}*", count=500)]
    assert keys
    await redis_client.delete(*keys)
    assert await runtime.queue.depth() == 0
    # and one sweeper pass runs
    report = await Sweeper.from_runtime(runtime).run_once()

    # Then it put all of them back
    assert (report.recovered_leases, report.requeued_missing) == (0, LOST)
    assert await runtime.queue.depth() == LOST

    # and a worker delivers every one of them, once
    worker = workers.start("a")
    await receiver.wait_for(LOST, timeout_s=STARTUP_S + SETTLE_S)
    await wait_all_succeeded(runtime, LOST, workers=[worker])
    assert set(attempted_ids(worker)) == delivery_ids
    seen = webhook_ids(receiver)
    assert set(seen) == {result.event.id for result in published}
    assert max(seen.values()) == 1
    assert await runtime.queue.depth() == 0


# the race the two-process test exposed, pinned down in one process ------------------------------
#
# ``schedule_many`` is an upsert that also takes an id out of flight (Redis: ``schedule.lua``
# ZREMs it from ``inflight``; SQL: ``lease_until = NULL``). Two writers call it for a delivery
# that may already be claimed: the publisher, after its commit, and the sweeper, after
# ``find_missing``. When a claim lands between the commit (or ``find_missing``) and that call, the
# claimed delivery becomes due again while its first attempt is in flight, a second worker claims
# it, ``prepare`` accepts it (``delivering`` is claimable, for expired leases), and the endpoint
# gets the same webhook twice; the first worker's settle is then "lost".

GATE_TIMEOUT_S: Final = 10.0


class GatedQueue:
    """A real queue whose calls that make ids due wait until ``opened`` is set.

    It lets a test stop a writer (the publisher, the sweeper) just before it enqueues, as a slow
    process would, and claim in that gap. Reads, claims and completions pass straight through.
    """

    PASS_THROUGH: Final = frozenset(
        {
            "depth",
            "find_missing",
            "ping",
            "close",
            "recover_expired",
            "get_due_retries",
            "extend_lease",
            "complete_retry",
        }
    )

    def __init__(self, inner: DelayedQueue) -> None:
        self._inner = inner
        self.waiting = asyncio.Event()
        self.opened = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if name in self.PASS_THROUGH or not callable(target):
            return target

        async def gated(*args: Any, **kwargs: Any) -> Any:
            self.waiting.set()
            async with asyncio.timeout(GATE_TIMEOUT_S):
                await self.opened.wait()
            return await target(*args, **kwargs)

        return gated


async def reached_gate_or_done(gate: GatedQueue, task: asyncio.Task[Any]) -> None:
    """Wait until ``task`` is held at ``gate`` or has finished without reaching it."""
    waiting = asyncio.ensure_future(gate.waiting.wait())
    try:
        done, _ = await asyncio.wait(
            {waiting, task}, timeout=GATE_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        waiting.cancel()
    assert done, f"neither held at the gate nor finished within {GATE_TIMEOUT_S} s"


async def claim_and_prepare(runtime: Runtime) -> list[PlannedAttempt]:
    """What a worker does before it sends: claim what is due, move it to ``delivering``."""
    ids = await runtime.queue.get_due_retries(now=runtime.clock.now(), limit=10, lease_s=60)
    return await runtime.delivery.prepare(ids)


def gated_events(runtime: Runtime, gate: GatedQueue) -> EventService:
    settings = runtime.settings
    return EventService(
        sessions=runtime.sessions,
        queue=cast(DelayedQueue, gate),
        clock=runtime.clock,
        metrics=runtime.metrics,
        max_payload_bytes=settings.max_payload_bytes,
        queue_max_size=settings.retry_queue_max_size,
    )


@pytest.mark.parametrize("queue_backend", ["redis", "sql"])
async def test_a_late_enqueue_by_the_publisher_does_not_hand_out_a_claimed_delivery_again(
    runtime: Runtime, receiver: Receiver
) -> None:
    # Given a publisher that committed its delivery and has not enqueued it yet
    await runtime.endpoints.create(url=receiver.url_for(HOOK))
    gate = GatedQueue(runtime.queue)
    publishing = asyncio.create_task(
        gated_events(runtime, gate).publish(event_type="order.created", payload={})
    )
    try:
        await reached_gate_or_done(gate, publishing)
        # and, in that gap, a sweeper pass and a worker that claims the delivery
        await Sweeper.from_runtime(runtime).run_once()
        first = await claim_and_prepare(runtime)

        # When the publisher's enqueue lands, and another worker claims
        gate.opened.set()
        [delivery] = (await publishing).deliveries
        second = await claim_and_prepare(runtime)
    finally:
        gate.opened.set()
        await asyncio.gather(publishing, return_exceptions=True)

    # Then the delivery was handed out for one attempt, not two at once
    handed_out = [p.delivery_id for p in first + second]
    assert handed_out == [delivery.id], f"claimed and prepared {len(handed_out)} times"


async def test_a_late_requeue_by_the_sweeper_does_not_hand_out_a_claimed_delivery_again(
    runtime: Runtime, receiver: Receiver
) -> None:
    # Given a publisher that committed its delivery and has not enqueued it yet
    await runtime.endpoints.create(url=receiver.url_for(HOOK))
    publish_gate, sweep_gate = GatedQueue(runtime.queue), GatedQueue(runtime.queue)
    publishing = asyncio.create_task(
        gated_events(runtime, publish_gate).publish(event_type="order.created", payload={})
    )
    sweeper = Sweeper(
        sessions=runtime.sessions,
        queue=cast(DelayedQueue, sweep_gate),
        clock=runtime.clock,
        metrics=runtime.metrics,
        interval_s=runtime.settings.sweeper_interval_s,
        retention_days=runtime.settings.retention_days,
    )
    sweeping: asyncio.Task[Any] | None = None
    try:
        await reached_gate_or_done(publish_gate, publishing)
        # and a sweeper pass that found it missing from the queue and is about to put it back
        sweeping = asyncio.create_task(sweeper.run_once())
        await reached_gate_or_done(sweep_gate, sweeping)

        # When the publisher's enqueue lands and a worker claims the delivery
        publish_gate.opened.set()
        [delivery] = (await publishing).deliveries
        first = await claim_and_prepare(runtime)
        # and then the sweeper's requeue lands, and another worker claims
        sweep_gate.opened.set()
        await sweeping
        second = await claim_and_prepare(runtime)
    finally:
        publish_gate.opened.set()
        sweep_gate.opened.set()
        await asyncio.gather(publishing, *([sweeping] if sweeping else []), return_exceptions=True)

    # Then the delivery was handed out for one attempt, not two at once
    handed_out = [p.delivery_id for p in first + second]
    assert handed_out == [delivery.id], f"claimed and prepared {len(handed_out)} times"
