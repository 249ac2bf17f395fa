"""The hot path is batch-shaped: a fixed number of SQL statements per batch, whatever its size,
and the set-based outcome update still checks each row's ``version`` on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, update

from hookline.storage.models import Delivery
from hookline.storage.repositories import deliveries as deliveries_repo
from tests.integration.conftest import Harness


@contextmanager
def _counting_statements(harness: Harness) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    engine = harness.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def _publish(harness: Harness, count: int) -> list[str]:
    return [
        delivery.id
        for n in range(count)
        for delivery in (await harness.publish(payload={"n": n})).deliveries
    ]


async def test_a_batch_of_forty_costs_the_statements_of_a_batch_of_one(harness: Harness) -> None:
    # Given one webhook answering 200 and one answering 503 once, then 200
    await harness.add_endpoint("/ok")
    await harness.add_endpoint("/flaky")
    harness.receiver.on("/flaky", statuses=[503] * 20 + [200] * 100)

    # When one event (two deliveries: one succeeds, one is retried) goes through one batch
    await _publish(harness, 1)
    with _counting_statements(harness) as one:
        assert await harness.worker().run_once() == 2
    # and then twenty events (forty deliveries, half succeeding, half retried) go through one
    # batch
    ids = await _publish(harness, 20)
    with _counting_statements(harness) as forty:
        assert await harness.worker().run_once() == 40

    # Then both batches ran the same statements: nothing is issued per delivery
    assert forty == one, (one, forty)
    # claim and queue updates (SQL queue), load, mark delivering, outcomes, attempts, endpoint
    # health (lock + update): a handful, not one per row
    assert len(forty) <= 10, forty
    states = {(await harness.delivery(i)).state for i in ids}
    assert states == {"succeeded", "retrying"}


async def test_a_row_whose_version_moved_is_not_written_and_counts_as_lost(
    harness: Harness,
) -> None:
    # Given three deliveries prepared and sent in one batch
    await harness.add_endpoint("/hook")
    ids = await _publish(harness, 3)
    delivery = harness.runtime.delivery
    planned = await delivery.prepare(ids)
    results = [await delivery.send(p) for p in planned]
    # and, before their outcomes are written, someone else takes over the second one (its
    # lease expired and another worker claimed it: its version moved on)
    taken = ids[1]
    async with harness.runtime.sessions.begin() as session:
        await session.execute(
            update(Delivery).where(Delivery.id == taken).values(version=Delivery.version + 1)
        )
    before = await harness.delivery(taken)

    # When the batch is settled in one statement
    summary = await delivery.settle(results)

    # Then the two others are written, and the taken one is left exactly as the other owner
    # left it
    assert (summary.succeeded, summary.lost) == (2, 1)
    assert [(await harness.delivery(i)).state for i in (ids[0], ids[2])] == ["succeeded"] * 2
    after = await harness.delivery(taken)
    assert (after.state, after.version, after.attempt_number) == (
        before.state,
        before.version,
        before.attempt_number,
    )


async def test_outcome_values_survive_the_set_based_update(harness: Harness) -> None:
    # Given a webhook that fails once with a message, then succeeds
    await harness.add_endpoint("/hook")
    harness.receiver.on("/hook", statuses=[503, 200])
    [delivery_id] = await _publish(harness, 1)

    # When the first attempt is settled
    await harness.run()

    # Then each column the settle writes holds what was decided, timestamps to the microsecond
    retrying = await harness.delivery(delivery_id)
    assert retrying.state == "retrying"
    assert retrying.attempt_number == 1
    assert retrying.last_status_code == 503
    assert retrying.last_error == "HTTP 503"
    assert retrying.lease_until is None
    assert retrying.completed_at is None
    assert retrying.next_attempt_at is not None
    assert retrying.next_attempt_at > harness.clock.now()
    [attempt] = await harness.attempts(delivery_id)
    assert attempt.next_delay is not None
    assert retrying.next_attempt_at == harness.clock.now() + timedelta(seconds=attempt.next_delay)

    # and once it succeeds the row is finished
    done = await harness.run_until_settled(delivery_id)
    assert (done.state, done.last_error, done.next_attempt_at) == ("succeeded", None, None)
    assert done.completed_at == harness.clock.now()
    endpoint = await harness.endpoint(done.endpoint_id)
    assert (endpoint.failing_since, endpoint.last_success_at) == (None, done.completed_at)


@pytest.mark.parametrize("deployment", ["postgres+redis"], indirect=True)
async def test_a_settle_holding_endpoint_rows_does_not_hold_up_a_publish(
    harness: Harness,
) -> None:
    # Given a settle in progress that has locked its endpoint's row (to fold in its health)
    endpoint_id = await harness.add_endpoint()
    async with harness.runtime.engine.connect() as settle, settle.begin():
        await settle.execute(deliveries_repo._LOCK_ENDPOINTS[True], {"ids": [endpoint_id]})

        # When an event for that endpoint is published meanwhile (its delivery row's foreign
        # key needs a share lock on the same endpoint row)
        published = await asyncio.wait_for(harness.publish(), timeout=20)

    # Then the publish did not wait for the settle (a FOR UPDATE lock made it wait, and
    # deadlock against settles under load)
    assert published.created
    assert [d.endpoint_id for d in published.deliveries] == [endpoint_id]
