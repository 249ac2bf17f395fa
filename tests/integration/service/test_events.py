"""Publishing: fan-out, idempotency, payload limit and backpressure."""

from __future__ import annotations

import pytest

from hookline.errors import Backpressure, Conflict, PayloadTooLarge
from hookline.service.events import EventService
from tests.integration.conftest import Harness


async def test_fan_out_goes_to_every_matching_endpoint_that_is_not_gone(harness: Harness) -> None:
    # Given active, disabled (for each reason) and recovering endpoints, matching or not
    everything = await harness.add_endpoint("/all")
    orders = await harness.add_endpoint("/orders", event_types=["order.created"])
    await harness.add_endpoint("/users", event_types=["user.deleted"])
    parking = {
        await harness.add_endpoint(f"/off-{reason}", status="disabled", disabled_reason=reason)
        for reason in ("manual", "failing", "not_found")
    }
    parking.add(await harness.add_endpoint("/recovering", status="recovering"))
    await harness.add_endpoint("/gone", status="disabled", disabled_reason="gone")
    await harness.add_endpoint(
        "/off-users", status="disabled", disabled_reason="manual", event_types=["user.deleted"]
    )

    # When an event is published
    result = await harness.publish("order.created")

    # Then the matching active endpoints get a pending delivery, in the queue; the matching
    # disabled (but not gone) and recovering ones a parked delivery, with no due time and no
    # queue entry; the gone one none
    assert result.created
    assert result.event.id.startswith("evt_")
    assert all(d.id.startswith("dlv_") for d in result.deliveries)
    states = {d.endpoint_id: d.state for d in result.deliveries}
    assert states == {
        everything: "pending",
        orders: "pending",
        **dict.fromkeys(parking, "parked"),
    }
    for parked in (d for d in result.deliveries if d.state == "parked"):
        assert (await harness.delivery(parked.id)).next_attempt_at is None
    assert await harness.runtime.queue.depth() == 2


async def test_an_idempotency_key_returns_the_first_event_and_creates_nothing(
    harness: Harness,
) -> None:
    await harness.add_endpoint()

    first = await harness.publish(idempotency_key="order-42")
    again = await harness.publish(idempotency_key="order-42")

    assert first.created
    assert not again.created
    assert again.event.id == first.event.id
    assert [d.id for d in again.deliveries] == [d.id for d in first.deliveries]
    assert await harness.runtime.queue.depth() == 1


async def test_an_idempotency_key_with_other_content_is_a_conflict_that_creates_nothing(
    harness: Harness,
) -> None:
    await harness.add_endpoint()
    first = await harness.publish(payload={"a": 1, "b": 2}, idempotency_key="order-42")

    same = await harness.publish(payload={"b": 2, "a": 1}, idempotency_key="order-42")
    with pytest.raises(Conflict, match="different payload"):
        await harness.publish(payload={"a": 1, "b": 3}, idempotency_key="order-42")
    with pytest.raises(Conflict, match="different event_type;"):
        await harness.publish("order.paid", payload={"a": 1, "b": 2}, idempotency_key="order-42")

    assert (same.created, same.event.id) == (False, first.event.id)
    assert await harness.runtime.queue.depth() == 1


async def test_a_payload_over_the_limit_is_refused(harness: Harness) -> None:
    limit = harness.runtime.settings.max_payload_bytes
    with pytest.raises(PayloadTooLarge) as refused:
        await harness.publish(payload={"blob": "x" * limit})
    assert refused.value.limit_bytes == limit


async def test_a_full_queue_refuses_instead_of_dropping(harness: Harness) -> None:
    # Given a queue limit of 3 and 3 deliveries queued
    await harness.add_endpoint()
    events = EventService(
        sessions=harness.runtime.sessions,
        queue=harness.runtime.queue,
        clock=harness.clock,
        metrics=harness.runtime.metrics,
        max_payload_bytes=1024,
        queue_max_size=3,
    )
    for _ in range(3):
        await events.publish(event_type="order.created", payload={})

    # When one more is published (after the cached depth has expired), it is refused
    harness.clock.advance(2)
    with pytest.raises(Backpressure) as refused:
        await events.publish(event_type="order.created", payload={})
    assert refused.value.retry_after_s > 0

    # And once the queue drains, publishing works again
    await harness.run()
    harness.clock.advance(2)
    assert (await events.publish(event_type="order.created", payload={})).created
