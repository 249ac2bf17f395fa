"""EndpointService with the delivery engine, on SQLite + SQL queue and PostgreSQL + Redis:
what disabling, re-enabling, deleting and rotating a secret do to real deliveries."""

from __future__ import annotations

from structlog.testing import capture_logs

from hookline.domain.retry_config import RetryConfig
from hookline.domain.states import DisabledReason
from tests.integration.conftest import Harness
from tests.receiver import RecordedRequest


def signed_by(secret: str, request: RecordedRequest, *, now_s: float) -> bool:
    return request.signed_by(secret, now_s=now_s)


async def test_disable_parks_and_enable_releases_them_through_the_slow_start(
    harness: Harness,
) -> None:
    # Given a webhook with two deliveries waiting
    endpoints = harness.runtime.endpoints
    endpoint = await endpoints.create(url=harness.receiver.url_for("/hook"))
    first = await harness.publish()
    second = await harness.publish()
    ids = [first.deliveries[0].id, second.deliveries[0].id]

    # When it is disabled, the worker sends nothing and the deliveries are parked: no due time
    harness.clock.advance(1)
    disabled = await endpoints.disable(endpoint_id=endpoint.id)
    assert (disabled.status, disabled.disabled_reason) == ("disabled", "manual")
    assert await harness.run() == 0
    assert harness.receiver.requests == []
    for delivery_id in ids:
        parked = await harness.delivery(delivery_id)
        assert (parked.state, parked.next_attempt_at, parked.last_error) == ("parked", None, None)

    # When it is enabled again
    harness.clock.advance(60)
    enabled = await endpoints.enable(endpoint_id=endpoint.id)

    # Then it is recovering: the worker sends nothing until the lifecycle loop releases the
    # parked deliveries, one token to begin with, more after a 2xx
    assert enabled.status == "recovering"
    assert await harness.run() == 0
    lifecycle = harness.runtime.lifecycle
    assert await lifecycle.release() == (1, 0)
    assert await harness.run() == 1
    harness.clock.advance(1)
    assert await lifecycle.release() == (1, 0)
    assert await harness.run() == 1

    # And once nothing is parked it is active; both went out with their own webhook-id
    assert await lifecycle.release() == (0, 1)
    assert (await harness.endpoint(endpoint.id)).status == "active"
    assert [r.headers["webhook-id"] for r in harness.receiver.requests] == [
        first.event.id,
        second.event.id,
    ]
    for delivery_id in ids:
        assert (await harness.delivery(delivery_id)).state == "succeeded"


async def test_a_gone_disable_cancels_and_enable_with_replay_delivers(harness: Harness) -> None:
    # Given a webhook with two deliveries waiting
    endpoints = harness.runtime.endpoints
    endpoint = await endpoints.create(url=harness.receiver.url_for("/hook"))
    first = await harness.publish()
    second = await harness.publish()
    ids = [first.deliveries[0].id, second.deliveries[0].id]

    # When it is disabled as gone, the worker sends nothing and the deliveries are cancelled
    harness.clock.advance(1)
    disabled = await endpoints.disable(endpoint_id=endpoint.id, reason=DisabledReason.GONE)
    assert (disabled.status, disabled.disabled_reason) == ("disabled", "gone")
    assert await harness.run() == 0
    assert harness.receiver.requests == []
    for delivery_id in ids:
        cancelled = await harness.delivery(delivery_id)
        assert (cancelled.state, cancelled.last_error) == ("cancelled", "endpoint_disabled")

    # When it is enabled again with replay_cancelled
    harness.clock.advance(60)
    enabled = await endpoints.enable(endpoint_id=endpoint.id, replay_cancelled=True)

    # Then it is active at once (nothing parked), both are queued again, due now (on Redis only
    # the queue tells the worker), and delivered
    assert enabled.status == "active"
    assert await harness.run() == 2
    assert {r.headers["webhook-id"] for r in harness.receiver.requests} == {
        first.event.id,
        second.event.id,
    }
    for delivery_id in ids:
        assert (await harness.delivery(delivery_id)).state == "succeeded"


async def test_enable_without_replay_leaves_them_cancelled(harness: Harness) -> None:
    endpoints = harness.runtime.endpoints
    endpoint = await endpoints.create(url=harness.receiver.url_for("/hook"))
    published = await harness.publish()
    await endpoints.disable(endpoint_id=endpoint.id, reason=DisabledReason.GONE)

    enabled = await endpoints.enable(endpoint_id=endpoint.id)

    assert enabled.status == "active"
    assert await harness.run() == 0
    assert (await harness.delivery(published.deliveries[0].id)).state == "cancelled"


async def test_delete_cancels_and_nothing_is_sent(harness: Harness) -> None:
    endpoints = harness.runtime.endpoints
    endpoint = await endpoints.create(url=harness.receiver.url_for("/hook"))
    published = await harness.publish()

    await endpoints.delete(endpoint_id=endpoint.id)

    assert await harness.run() == 0
    assert harness.receiver.requests == []
    delivery = await harness.delivery(published.deliveries[0].id)
    assert (delivery.state, delivery.last_error) == ("cancelled", "endpoint_deleted")
    assert (await harness.publish()).deliveries == []


async def test_rotation_signs_with_both_secrets_until_the_grace_period_ends(
    harness: Harness,
) -> None:
    # Given a webhook whose secret was just rotated
    endpoints = harness.runtime.endpoints
    endpoint = await endpoints.create(url=harness.receiver.url_for("/hook"))
    old = endpoint.secret
    rotated = await endpoints.rotate_secret(endpoint_id=endpoint.id)
    grace_s = harness.runtime.settings.secret_rotation_grace_s
    assert rotated.secret != old
    assert rotated.previous_secret_expires_at is not None

    # When a delivery goes out during the grace period, either secret verifies it
    await harness.publish()
    assert await harness.run() == 1
    during = harness.receiver.requests[0]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    now_s = harness.clock.now().timestamp()
    assert signed_by(old, during, now_s=now_s)
    assert signed_by(rotated.secret, during, now_s=now_s)

    # When the grace period is over, only the new secret signs
    harness.clock.advance(grace_s)
    assert (await endpoints.get_secret(endpoint_id=endpoint.id)).previous_secret_expires_at is None
    await harness.publish()
    assert await harness.run() == 1
    after = harness.receiver.requests[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    now_s = harness.clock.now().timestamp()
    assert signed_by(rotated.secret, after, now_s=now_s)
    assert not signed_by(old, after, now_s=now_s)


async def test_a_custom_retry_config_drives_the_engine(harness: Harness) -> None:
    # Given a webhook allowed one retry, 10 s after a failure
    endpoints = harness.runtime.endpoints
    endpoint = await endpoints.create(url=harness.receiver.url_for("/down"))
    config = RetryConfig(max_retries=1, base_delay=10, max_delay=10, jitter="none")
    effective = await endpoints.set_retry_config(endpoint_id=endpoint.id, config=config)
    assert (effective.config, effective.source) == (config, "custom")
    harness.receiver.on("/down", statuses=[500])

    # When its delivery fails twice
    published = await harness.publish()
    delivery = await harness.run_until_settled(published.deliveries[0].id)

    # Then it was retried once, after 10 s, and is a dead letter
    attempts = await harness.attempts(delivery.id)
    assert delivery.state == "failed"
    assert [a.next_delay for a in attempts] == [10.0, None]
    back = await endpoints.set_retry_config(endpoint_id=endpoint.id, config=None)
    assert back.source == "default"


async def test_manual_and_automatic_disable_log_the_same_fields(harness: Harness) -> None:
    # Given two webhooks with two deliveries waiting for each: one answers 410 Gone, the other
    # is disabled by hand
    gone = await harness.add_endpoint("/gone")
    by_hand = await harness.add_endpoint("/by-hand")
    harness.receiver.on("/gone", statuses=[410])
    await harness.publish()
    await harness.publish()

    with capture_logs() as logs:
        # When one is disabled through the service (the API's path) and the worker makes one
        # attempt to the other, which disables it
        await harness.runtime.endpoints.disable(endpoint_id=by_hand)
        assert await harness.worker(batch_size=1).run_once() == 1

    # Then both endpoint.disabled lines carry the same fields, one name per fact: the manual
    # disable parked both of its deliveries, the gone one cancelled the one still waiting
    lines = {e["endpoint_id"]: e for e in logs if e["event"] == "endpoint.disabled"}
    manual, automatic = lines[by_hand], lines[gone]
    assert manual.keys() == automatic.keys()
    facts = ("trigger", "reason", "fail_since", "parked_deliveries", "cancelled_deliveries")
    assert set(facts) <= manual.keys()
    assert [manual[key] for key in facts] == ["manual", "manual", None, 2, 0]
    # (the 410 is the first failure of the gone endpoint's run: fail_since is now)
    failed_at = harness.clock.now().isoformat()
    assert [automatic[key] for key in facts] == ["automatic", "gone", failed_at, 0, 1]
    assert type(manual["reason"]) is str  # the value, not the enum member
