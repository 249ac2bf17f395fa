"""The retry mechanism end to end through the service and the worker (seed TASK-16).

Real database and queue (SQLite + SQL queue, PostgreSQL + Redis), a real loopback receiver, and a
ManualClock: the clock jumps to each due time instead of anyone sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from hookline.domain.envelope import rfc3339
from hookline.domain.retry_config import RetryConfig
from tests.integration.conftest import Harness

NONE_JITTER = RetryConfig(jitter="none").model_dump(mode="json")  # type: ignore[arg-type]


async def test_a_permanently_failing_endpoint_gets_the_whole_default_schedule(
    harness: Harness,
) -> None:
    # Given an endpoint that always answers 503, with the default config and no jitter
    await harness.add_endpoint(retry_config=NONE_JITTER)
    harness.receiver.on("/hook", statuses=[503])
    t0 = harness.clock.now()

    # When an event is published and every retry runs when due
    [delivery] = (await harness.publish()).deliveries
    final = await harness.run_until_settled(delivery.id)

    # Then attempts came at t0, +120 s, doubling, capped at 7200 s, the last at the window's end
    offsets = [(r.received_at - t0).total_seconds() for r in harness.receiver.requests]
    assert offsets == [0, 120, 360, 840, 1800, 3720, 7560, 14760, 21960, 29160, 36000]
    # and the delivery is a dead letter with every attempt recorded
    assert final.state == "failed"
    assert final.attempt_number == 11
    assert final.next_attempt_at is None
    assert final.completed_at == t0 + timedelta(seconds=36000)
    assert final.last_error is not None
    assert "gave up after 11 attempts" in final.last_error
    attempts = await harness.attempts(delivery.id)
    assert [a.attempt_number for a in attempts] == list(range(1, 12))
    assert {a.status_code for a in attempts} == {503}
    assert all(a.retryable for a in attempts)
    delays = [120, 240, 480, 960, 1920, 3840, 7200, 7200, 7200, 6840, None]
    assert [a.next_delay for a in attempts] == delays
    # and every request carried the same body and webhook-id and a growing webhook-attempt
    assert len({r.body for r in harness.receiver.requests}) == 1
    headers = [r.headers for r in harness.receiver.requests]
    assert {h["webhook-id"] for h in headers} == {delivery.event_id}
    assert [h["webhook-attempt"] for h in headers] == [str(n) for n in range(1, 12)]


async def test_a_success_on_the_third_attempt_ends_succeeded(harness: Harness) -> None:
    # Given an endpoint that fails twice, then answers 200
    endpoint_id = await harness.add_endpoint()
    harness.receiver.on("/hook", statuses=[503, 500, 200])

    # When the event is published and retried
    [delivery] = (await harness.publish()).deliveries
    final = await harness.run_until_settled(delivery.id)

    # Then it succeeded with three attempts, and the endpoint is healthy again
    assert final.state == "succeeded"
    assert final.attempt_number == 3
    assert final.last_status_code == 200
    assert final.last_error is None
    assert [a.status_code for a in await harness.attempts(delivery.id)] == [503, 500, 200]
    endpoint = await harness.endpoint(endpoint_id)
    assert endpoint.failing_since is None
    assert endpoint.last_success_at == final.completed_at


async def test_the_default_first_retry_comes_two_to_three_minutes_later(harness: Harness) -> None:
    await harness.add_endpoint()
    harness.receiver.on("/hook", statuses=[503])
    t0 = harness.clock.now()

    [delivery] = (await harness.publish()).deliveries
    await harness.run()

    retrying = await harness.delivery(delivery.id)
    assert retrying.state == "retrying"
    assert retrying.next_attempt_at is not None
    assert 120 <= (retrying.next_attempt_at - t0).total_seconds() <= 180


async def test_the_receiver_can_verify_every_signature(harness: Harness) -> None:
    # Given an endpoint with a known secret (and the clock at real time: the library checks the
    # timestamp against time.time())
    harness.clock.set(datetime.now(UTC))
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    await harness.add_endpoint(secret=secret, headers={"x-team": "payments"})
    payload = {"order_id": 7, "items": [{"sku": "a", "qty": 2}], "note": "ünïcode"}

    # When an event is delivered
    result = await harness.publish(payload=payload)
    await harness.run()

    # Then the standardwebhooks package verifies what arrived, and the body is the Standard
    # Webhooks envelope around the stored payload bytes
    [request] = harness.receiver.requests
    timestamp = rfc3339(result.event.created_at)
    envelope = {"type": "order.created", "timestamp": timestamp, "data": payload}
    assert request.json() == envelope
    assert request.body == (
        f'{{"type":"order.created","timestamp":"{timestamp}","data":'.encode()
        + result.event.payload.encode()
        + b"}"
    )
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("hookline/")
    assert request.headers["x-team"] == "payments"
    assert request.headers["webhook-id"] == result.event.id
    verified = Webhook(secret).verify(request.body, dict(request.headers))
    assert verified == envelope


async def test_a_raw_endpoint_receives_the_signed_payload_alone(harness: Harness) -> None:
    # Given an endpoint that asked for raw bodies (the clock at real time, as above)
    harness.clock.set(datetime.now(UTC))
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    await harness.add_endpoint(secret=secret, payload_format="raw")
    payload = {"order_id": 7, "note": "ünïcode"}

    # When an event is delivered
    result = await harness.publish(payload=payload)
    await harness.run()

    # Then the body is the stored payload, byte for byte, and its signature verifies
    [request] = harness.receiver.requests
    assert request.body == result.event.payload.encode()
    assert Webhook(secret).verify(request.body, dict(request.headers)) == payload


@pytest.mark.parametrize(("status", "reason"), [(404, "not_found"), (410, "gone")])
async def test_gone_endpoints_are_disabled_at_once(
    harness: Harness, status: int, reason: str
) -> None:
    # Given an endpoint that answers 404/410 and two events waiting for it
    endpoint_id = await harness.add_endpoint()
    harness.receiver.on("/hook", statuses=[status])
    [first] = (await harness.publish()).deliveries
    [second] = (await harness.publish()).deliveries

    # When one attempt is made
    assert await harness.worker(batch_size=1).run_once() == 1

    # Then the endpoint is disabled with the reason, the attempted delivery failed, and nothing
    # more is sent to it
    endpoint = await harness.endpoint(endpoint_id)
    assert (endpoint.status, endpoint.disabled_reason) == ("disabled", reason)
    assert endpoint.disabled_at == harness.clock.now()
    assert (await harness.delivery(first.id)).state == "failed"
    other = await harness.delivery(second.id)
    harness.clock.advance(3600)
    assert await harness.run() == 0
    later = (await harness.publish()).deliveries
    assert len(harness.receiver.requests) == 1
    if reason == "gone":
        # 410: done until an operator acts: the other was cancelled, new events make nothing
        assert (other.state, other.last_error) == ("cancelled", "endpoint_disabled")
        assert later == []
    else:
        # 404: the other waits parked (no due time) for the endpoint to come back, and so do
        # new events
        assert (other.state, other.next_attempt_at, other.last_error) == ("parked", None, None)
        assert [(d.endpoint_id, d.state) for d in later] == [(endpoint_id, "parked")]
        assert (await harness.delivery(second.id)).state == "parked"


async def test_a_client_error_fails_without_retry(harness: Harness) -> None:
    endpoint_id = await harness.add_endpoint()
    harness.receiver.on("/hook", statuses=[400])

    [delivery] = (await harness.publish()).deliveries
    final = await harness.run_until_settled(delivery.id)

    assert final.state == "failed"
    assert final.attempt_number == 1
    assert final.next_attempt_at is None
    [attempt] = await harness.attempts(delivery.id)
    assert (attempt.status_code, attempt.retryable, attempt.next_delay) == (400, False, None)
    assert (await harness.endpoint(endpoint_id)).status == "active"
    assert len(harness.receiver.requests) == 1


async def test_retry_after_moves_the_next_attempt(harness: Harness) -> None:
    # Given an endpoint that answers 429 with Retry-After: 600, then 200
    await harness.add_endpoint(retry_config=NONE_JITTER)
    harness.receiver.on("/hook", statuses=[429, 200], headers={"Retry-After": "600"})
    t0 = harness.clock.now()

    # When the first attempt is made
    [delivery] = (await harness.publish()).deliveries
    await harness.run()

    # Then the next attempt is due 600 s later, not after the computed 120 s
    retrying = await harness.delivery(delivery.id)
    assert retrying.next_attempt_at == t0 + timedelta(seconds=600)
    [attempt] = await harness.attempts(delivery.id)
    assert attempt.next_delay == 600
    # and nothing is attempted before then
    harness.clock.advance(599)
    assert await harness.run() == 0
    harness.clock.advance(1)
    assert (await harness.run_until_settled(delivery.id)).state == "succeeded"


async def test_an_endpoint_failing_for_24_hours_is_disabled(harness: Harness) -> None:
    # Given an endpoint that always fails, one attempt per event
    endpoint_id = await harness.add_endpoint(retry_config={"max_retries": 0})
    harness.receiver.on("/hook", statuses=[503])

    async def deliver_one() -> str:
        await harness.publish()
        await harness.run()
        return (await harness.endpoint(endpoint_id)).status

    # When it has failed for 23 h 59 m it is still active
    assert await deliver_one() == "active"
    harness.clock.advance(23 * 3600 + 59 * 60)
    assert await deliver_one() == "active"

    # When it has failed for 24 h it is disabled as failing
    harness.clock.advance(60)
    assert await deliver_one() == "disabled"
    endpoint = await harness.endpoint(endpoint_id)
    assert endpoint.disabled_reason == "failing"


async def test_one_success_resets_the_24_hour_run(harness: Harness) -> None:
    endpoint_id = await harness.add_endpoint(retry_config={"max_retries": 0})

    async def deliver_one(status: int) -> str:
        harness.receiver.on("/hook", statuses=[status])
        await harness.publish()
        await harness.run()
        return (await harness.endpoint(endpoint_id)).status

    # Given failures since t0 and one success at t0 + 12 h
    t0 = harness.clock.now()
    assert await deliver_one(503) == "active"
    harness.clock.advance(12 * 3600)
    assert await deliver_one(200) == "active"
    assert (await harness.endpoint(endpoint_id)).failing_since is None

    # When failures go on until t0 + 24 h and beyond, the run counts from the first one after it
    harness.clock.advance(12 * 3600)
    assert await deliver_one(503) == "active"
    assert (await harness.endpoint(endpoint_id)).failing_since == t0 + timedelta(hours=24)
    harness.clock.advance(23 * 3600)
    assert await deliver_one(503) == "active"
    harness.clock.advance(3600)
    assert await deliver_one(503) == "disabled"


async def test_a_redirect_is_not_followed(harness: Harness) -> None:
    # Given a receiver that redirects /hook to /elsewhere
    await harness.add_endpoint()
    harness.receiver.on("/hook", statuses=[302], location=harness.receiver.url_for("/elsewhere"))

    [delivery] = (await harness.publish()).deliveries
    final = await harness.run_until_settled(delivery.id)

    # Then exactly one request was made, to /hook, and the attempt failed as a redirect
    assert [r.path for r in harness.receiver.requests] == ["/hook"]
    assert final.state == "failed"
    [attempt] = await harness.attempts(delivery.id)
    assert (attempt.status_code, attempt.error, attempt.retryable) == (302, "redirect", False)


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest", "http://10.0.0.1/hook"])
async def test_private_and_metadata_addresses_are_refused(harness: Harness, url: str) -> None:
    await harness.add_endpoint(url=url)

    [delivery] = (await harness.publish()).deliveries
    final = await harness.run_until_settled(delivery.id)

    assert final.state == "failed"
    [attempt] = await harness.attempts(delivery.id)
    assert (attempt.status_code, attempt.error, attempt.retryable) == (
        None,
        "blocked_address",
        False,
    )
    assert attempt.duration_ms < 1000


async def test_a_manual_retry_starts_a_fresh_round_with_the_same_webhook_id(
    harness: Harness,
) -> None:
    # Given a dead letter after one retry (max_retries 1)
    await harness.add_endpoint(retry_config={"max_retries": 1, "jitter": "none"})
    harness.receiver.on("/hook", statuses=[500, 500, 500, 200])
    [delivery] = (await harness.publish()).deliveries
    assert (await harness.run_until_settled(delivery.id)).state == "failed"

    # When it is retried by hand
    retried = await harness.runtime.dead_letters.retry_delivery(delivery_id=delivery.id)
    assert (retried.state, retried.attempt_number) == ("pending", 2)
    final = await harness.run_until_settled(delivery.id)

    # Then a fresh round ran (attempt 3 failed and was retried once more), counting on from 2
    assert final.state == "succeeded"
    assert final.attempt_number == 4
    ids = {r.headers["webhook-id"] for r in harness.receiver.requests}
    assert ids == {delivery.event_id}
    assert [r.headers["webhook-attempt"] for r in harness.receiver.requests] == ["1", "2", "3", "4"]


async def test_replaying_dead_letters_delivers_them(harness: Harness) -> None:
    # Given two dead letters for an endpoint that has recovered since
    endpoint_id = await harness.add_endpoint(retry_config={"max_retries": 0})
    harness.receiver.on("/hook", statuses=[500])
    deliveries = [(await harness.publish()).deliveries[0] for _ in range(2)]
    await harness.run()
    assert {(await harness.delivery(d.id)).state for d in deliveries} == {"failed"}
    harness.receiver.on("/hook", statuses=[200])

    # When they are replayed
    replayed = await harness.runtime.dead_letters.replay(endpoint_id=endpoint_id)
    await harness.run()

    # Then both are delivered again under their own webhook-id
    assert (replayed.replayed, replayed.skipped) == (2, {})
    assert {(await harness.delivery(d.id)).state for d in deliveries} == {"succeeded"}
    replay_ids = [r.headers["webhook-id"] for r in harness.receiver.requests[2:]]
    assert sorted(replay_ids) == sorted(d.event_id for d in deliveries)
    # and a second replay finds nothing left
    assert (await harness.runtime.dead_letters.replay(endpoint_id=endpoint_id)).replayed == 0
