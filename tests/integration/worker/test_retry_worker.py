"""RetryWorker and Sweeper behaviour that the end-to-end scenarios do not pin down."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from hookline.storage.models import Delivery, DeliveryAttempt, Event
from hookline.worker.retry_worker import BUSY_POLL_S, MIN_IDLE_WAIT_S, RetryWorker
from tests.integration.conftest import Harness


async def test_an_endpoint_at_its_cap_gets_its_extra_deliveries_back_later(
    harness: Harness,
) -> None:
    # Given five deliveries to one endpoint and a per-endpoint cap of 2
    await harness.add_endpoint()
    ids = [(await harness.publish()).deliveries[0].id for _ in range(5)]
    worker = harness.worker(endpoint_concurrency=2)

    # When one batch runs, two are attempted and three are put back (for when a slot should be
    # free: here at once, the endpoint's sends take no time on this clock)
    assert await worker.run_once() == 2
    assert worker.claimed == 0
    assert await worker.run_once() == 0
    harness.clock.advance(1)
    assert await worker.run_once() == 2
    harness.clock.advance(1)
    assert await worker.run_once() == 1

    # Then every delivery succeeded exactly once
    assert {(await harness.delivery(i)).state for i in ids} == {"succeeded"}
    assert len(harness.receiver.requests) == 5


async def test_a_stale_queue_entry_is_completed_without_an_attempt(harness: Harness) -> None:
    # Given a delivery the database already finished while the queue still holds it
    await harness.add_endpoint()
    [delivery] = (await harness.publish()).deliveries
    async with harness.runtime.sessions.begin() as session:
        await session.execute(
            update(Delivery).where(Delivery.id == delivery.id).values(state="succeeded")
        )

    # When the worker claims it, nothing is sent and the queue forgets it
    assert await harness.run() == 0
    assert harness.receiver.requests == []
    assert await harness.runtime.queue.depth() == 0


@pytest.mark.parametrize("deployment", ["postgres+redis"], indirect=True)  # SQL: table is queue
async def test_a_claim_that_is_early_by_the_database_goes_back_to_its_due_time(
    harness: Harness,
) -> None:
    # Given the queue says due now but the database says due in 5 minutes (a crash between
    # committing a retry and rescheduling it)
    await harness.add_endpoint()
    [delivery] = (await harness.publish()).deliveries
    due = harness.clock.now() + timedelta(minutes=5)
    async with harness.runtime.sessions.begin() as session:
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id)
            .values(state="retrying", next_attempt_at=due)
        )
    await harness.runtime.queue.schedule_retry(delivery.id, due_at=harness.clock.now())

    # When it is claimed now, nothing is sent; at the database's due time it is
    assert await harness.run() == 0
    harness.clock.set(due)
    assert await harness.run() == 1
    assert (await harness.delivery(delivery.id)).state == "succeeded"


async def test_a_claim_whose_worker_died_is_recovered_after_its_lease(harness: Harness) -> None:
    # Given a delivery claimed by a worker that then died (claimed, never settled)
    await harness.add_endpoint()
    [delivery] = (await harness.publish()).deliveries
    now = harness.clock.now()
    assert await harness.runtime.queue.get_due_retries(now=now, limit=10, lease_s=60) == [
        delivery.id
    ]
    assert await harness.run() == 0  # still leased

    # When the lease has expired and the sweeper has run
    harness.clock.advance(61)
    report = await harness.sweeper.run_once()

    # Then another worker delivers it
    assert report.recovered_leases in (0, 1)  # SqlQueue: an expired lease is claimable anyway
    assert await harness.run() == 1
    assert (await harness.delivery(delivery.id)).state == "succeeded"


async def test_the_sweeper_puts_back_what_the_queue_lost(harness: Harness) -> None:
    # Given 20 published deliveries and a queue that lost them (Redis restarted empty)
    await harness.add_endpoint()
    ids = [(await harness.publish()).deliveries[0].id for _ in range(20)]
    await harness.runtime.queue.complete_retry(ids)  # no-op on SQL: the table is the queue
    if harness.deployment.endswith("+redis"):
        client = harness.runtime.queue._client  # type: ignore[attr-defined]
        keys = harness.runtime.queue.keys  # type: ignore[attr-defined]
        await client.delete(keys.due, keys.inflight)
        assert await harness.runtime.queue.depth() == 0

    # When the sweeper runs once
    report = await harness.sweeper.run_once()

    # Then everything is back (on Redis: re-queued) and gets delivered
    expected = 20 if harness.deployment.endswith("+redis") else 0
    assert report.requeued_missing == expected
    assert await harness.run() == 20
    assert {(await harness.delivery(i)).state for i in ids} == {"succeeded"}


async def test_old_succeeded_deliveries_are_pruned(harness: Harness) -> None:
    # Given one delivery that succeeded and one that failed, 31 days ago
    await harness.add_endpoint(retry_config={"max_retries": 0})
    harness.receiver.on("/hook", statuses=[200, 500])
    [ok] = (await harness.publish()).deliveries
    await harness.run()
    [bad] = (await harness.publish()).deliveries
    await harness.run()
    harness.clock.advance(31 * 86400)

    # When the sweeper runs
    report = await harness.sweeper.run_once()

    # Then the succeeded one is gone with its attempts and its event; the dead letter stays
    assert (report.pruned_deliveries, report.pruned_events) == (1, 1)
    async with harness.runtime.sessions() as session:
        assert await session.get(Delivery, ok.id) is None
        assert await session.get(Event, ok.event_id) is None
        attempts = await session.scalar(
            select(func.count())
            .select_from(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == ok.id)
        )
        assert attempts == 0
    assert (await harness.delivery(bad.id)).state == "failed"


async def test_run_delivers_until_stopped_and_then_exits(harness: Harness) -> None:
    # Given a worker loop running
    await harness.add_endpoint()
    worker = harness.worker()
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    # When events are published, they arrive without anyone calling run_once
    for _ in range(3):
        await harness.publish()
    await harness.receiver.wait_for(3, timeout_s=10)

    # Then stopping ends the loop with nothing left claimed
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert worker.claimed == 0


@pytest.mark.parametrize("deployment", ["postgres+redis"], indirect=True)
async def test_redis_restarted_empty_does_not_requeue_what_a_worker_is_sending(
    harness: Harness, redis_client: Any, redis_prefix: str
) -> None:
    # Given a delivery a worker has claimed and marked delivering (its request in flight)
    await harness.add_endpoint()
    [delivery] = (await harness.publish()).deliveries
    claimed = await harness.runtime.queue.get_due_retries(
        now=harness.clock.now(), limit=10, lease_s=60
    )
    assert claimed == [delivery.id]
    assert [p.delivery_id for p in await harness.runtime.delivery.prepare(claimed)] == claimed

    # When Redis loses every key (restarted empty) and the sweeper rebuilds the queue
    keys = [key async for key in redis_client.scan_iter(match=f"{redis_prefix}*")]
    assert keys
    await redis_client.delete(*keys)
    report = await harness.sweeper.run_once()

    # Then the delivery in flight is not queued again (a second worker would send it twice)...
    assert report.requeued_missing == 0
    assert await harness.runtime.queue.depth() == 0

    # ...but once its lease has expired (the worker died with it), it is
    harness.clock.advance(61)
    assert (await harness.sweeper.run_once()).requeued_missing == 1
    assert await harness.run() == 1
    assert (await harness.delivery(delivery.id)).state == "succeeded"


async def test_an_idle_worker_waits_until_the_next_delivery_falls_due(harness: Harness) -> None:
    # Given a worker whose poll interval is long
    worker = RetryWorker(
        delivery=harness.runtime.delivery,
        queue=harness.runtime.queue,
        clock=harness.clock,
        batch_size=10,
        concurrency=10,
        endpoint_concurrency=10,
        lease_s=60,
        poll_interval_s=30,
        shutdown_grace_s=1,
    )
    # With nothing waiting, it waits a whole poll interval (a publish is due at once)
    assert await worker._idle_wait_s() == 30

    # When one delivery waits, due in 1.5 s
    await harness.add_endpoint()
    [delivery] = (await harness.publish()).deliveries
    due = harness.clock.now() + timedelta(milliseconds=1500)
    async with harness.runtime.sessions.begin() as session:
        await session.execute(
            update(Delivery).where(Delivery.id == delivery.id).values(next_attempt_at=due)
        )
    await harness.runtime.queue.schedule_retry(delivery.id, due_at=due)

    # Then it waits until then, not a poll interval
    assert await worker._idle_wait_s() == 1.5
    # and once that time has passed, only the shortest pause
    harness.clock.advance(2)
    assert await worker._idle_wait_s() == MIN_IDLE_WAIT_S
    # After a claim that found work (a steady stream of publishes), it polls again soon
    now = harness.clock.now()
    assert await harness.runtime.queue.get_due_retries(now=now, limit=10, lease_s=60) == [
        delivery.id
    ]
    assert await worker._idle_wait_s() == 30
    assert await worker._idle_wait_s(found_work=True) == BUSY_POLL_S


async def test_claims_an_endpoint_has_no_slot_for_come_back_spread_over_its_send_time(
    harness: Harness,
) -> None:
    # Given five claimed deliveries to one endpoint with two slots, whose sends take 2 s
    endpoint_id = await harness.add_endpoint()
    ids = [(await harness.publish(payload={"n": n})).deliveries[0].id for n in range(5)]
    worker = harness.worker(endpoint_concurrency=2)
    assert sorted(await worker._claim(10)) == sorted(ids)
    worker._send_time_s[endpoint_id] = 2.0

    # When the worker puts them back because the endpoint is busy
    await worker._defer([(delivery_id, endpoint_id) for delivery_id in ids])

    # Then they are no longer claimed, and fall due two at a time, one send time apart
    assert worker.claimed == 0
    queue, start = harness.runtime.queue, harness.clock.now()

    async def due_at(seconds: float) -> list[str]:
        return await queue.get_due_retries(
            now=start + timedelta(seconds=seconds), limit=10, lease_s=60
        )

    assert await due_at(1.9) == []
    assert sorted(await due_at(2.0)) == sorted(ids[:2])
    assert await due_at(3.9) == []
    assert sorted(await due_at(4.0)) == sorted(ids[2:4])
    assert await due_at(6.0) == ids[4:]


async def test_a_busy_endpoints_claims_are_put_back_untouched(harness: Harness) -> None:
    # Given three deliveries to an endpoint with one slot, already taken by a send in flight
    endpoint_id = await harness.add_endpoint()
    ids = [(await harness.publish(payload={"n": n})).deliveries[0].id for n in range(3)]
    worker = harness.worker(endpoint_concurrency=1)
    worker._endpoint_in_flight[endpoint_id] = 1
    before = {i: await harness.delivery(i) for i in ids}

    # When a batch holding them is launched
    assert await worker._launch(await worker._claim(10)) == []

    # Then none was marked delivering or changed at all: they wait in the queue as they were
    for delivery_id in ids:
        after = await harness.delivery(delivery_id)
        assert (after.state, after.version) == (
            before[delivery_id].state,
            before[delivery_id].version,
        )
    assert worker.claimed == 0
    assert harness.receiver.requests == []


async def test_a_claim_that_comes_back_to_the_worker_holding_it_is_not_sent_twice(
    harness: Harness,
) -> None:
    # Given a delivery this worker has claimed and still holds (being sent, say)
    await harness.add_endpoint()
    [delivery] = (await harness.publish()).deliveries
    worker = harness.worker()
    assert await worker._claim(10) == [delivery.id]

    # When its lease lapses (an extension that waited too long) and it is due again
    harness.clock.advance(61)
    await harness.runtime.queue.recover_expired(now=harness.clock.now())

    # Then the worker's next claim does not take it again: it is still the one holding it
    assert await worker._claim(10) == []
    assert worker.claimed == 1
