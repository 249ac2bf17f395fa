"""End to end, on a manual clock: an endpoint that is down for 26 hours loses nothing.

The receiver fails every request for "26 hours". The worker retries, the endpoint is disabled
as ``failing`` after 24 hours of failures, the events published meanwhile (500 of them) are
parked, the probes fail while it is down. The receiver comes back; three probes pass; the
endpoint recovers and every parked delivery arrives, with its original ``webhook-id``, never
faster than the slow-start bucket allows. Real database, real queue, real HTTP on 127.0.0.1,
on both deployments.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import func, select

from hookline.storage.models import Delivery, DeliveryAttempt
from tests.integration.conftest import Harness

DOWN_FOR = timedelta(hours=26)
STEP = timedelta(minutes=20)
PARKED_EVENTS = 500


async def _state_counts(harness: Harness, endpoint_id: str) -> Counter[str]:
    async with harness.runtime.sessions() as session:
        rows = await session.execute(
            select(Delivery.state, func.count())
            .where(Delivery.endpoint_id == endpoint_id)
            .group_by(Delivery.state)
        )
    return Counter(dict(rows.tuples().all()))


async def test_an_endpoint_down_for_26_hours_gets_every_event_back_at_the_buckets_pace(
    harness: Harness,
) -> None:
    runtime, clock, receiver = harness.runtime, harness.clock, harness.receiver
    settings = runtime.settings
    lifecycle = runtime.lifecycle
    # Given an endpoint whose receiver fails every request
    receiver.on("/hook", statuses=[500])
    endpoint = await runtime.endpoints.create(url=receiver.url_for("/hook"))
    start = clock.now()

    # When events keep coming while it fails, for 26 hours of the manual clock
    published: list[str] = []
    parked_while_down: list[str] = []
    disabled_at: datetime | None = None
    while clock.now() - start < DOWN_FOR:
        if disabled_at is None:
            published.append((await harness.publish()).event.id)
        await harness.run()
        await lifecycle.run_once()
        state = await harness.endpoint(endpoint.id)
        if disabled_at is None and state.status == "disabled":
            disabled_at = clock.now()
            assert state.disabled_reason == "failing"
            # 500 events published while it is disabled: parked, none sent, none queued
            for _ in range(PARKED_EVENTS):
                result = await harness.publish()
                assert [d.state for d in result.deliveries] == ["parked"]
                parked_while_down.append(result.event.id)
        clock.advance(STEP.total_seconds())

    # Then it was disabled after 24 hours of failures, and nothing was dropped
    assert disabled_at is not None
    assert timedelta(hours=24) <= disabled_at - start < timedelta(hours=24) + 2 * STEP
    counts = await _state_counts(harness, endpoint.id)
    assert counts["parked"] >= PARKED_EVENTS  # plus what was retrying when it was disabled
    assert counts["pending"] == counts["retrying"] == counts["delivering"] == 0
    # the probes ran while it was down, and failed
    async with runtime.sessions() as session:
        probes = (
            await session.execute(
                select(DeliveryAttempt.status_code).where(
                    DeliveryAttempt.endpoint_id == endpoint.id,
                    DeliveryAttempt.trigger == "probe",
                )
            )
        ).scalars()
        failed_probes = list(probes)
    assert failed_probes
    assert set(failed_probes) == {500}
    parked_ids = await _parked_event_ids(harness, endpoint.id)
    assert set(parked_while_down) <= parked_ids

    # When the receiver comes back, the probes pass (three in a row, a minute to an hour apart)
    receiver.on("/hook", statuses=[200])
    came_back = clock.now()
    before = len(receiver.requests_to("/hook"))
    while (await harness.endpoint(endpoint.id)).status == "disabled":
        assert clock.now() - came_back < timedelta(hours=4), "the probes never passed"
        clock.advance(60)
        await lifecycle.run_once()
    assert (await harness.endpoint(endpoint.id)).status == "recovering"
    probes_sent = receiver.requests_to("/hook")[before:]
    assert [r.json()["type"] for r in probes_sent] == ["hookline.probe"] * 3

    # Then every parked delivery arrives, each once, with its event's id as webhook-id, signed
    recovery_start = clock.now()
    arrivals: list[tuple[float, str]] = []
    rates: list[tuple[float, float]] = []
    seen = len(receiver.requests_to("/hook"))
    tick = 0.25
    secret = (await runtime.endpoints.get_secret(endpoint_id=endpoint.id)).secret
    while (await harness.endpoint(endpoint.id)).status == "recovering":
        assert (clock.now() - recovery_start).total_seconds() < 600, "recovery never finished"
        rates.append(
            (_since(clock.now(), recovery_start), await _bucket_rate(harness, endpoint.id))
        )
        await lifecycle.run_once()
        await harness.run()
        for request in receiver.requests_to("/hook")[seen:]:
            arrivals.append(
                (_since(request.received_at, recovery_start), request.headers["webhook-id"])
            )
            assert request.signed_by(secret, now_s=clock.now().timestamp())
        seen = len(receiver.requests_to("/hook"))
        clock.advance(tick)

    delivered = Counter(webhook_id for _, webhook_id in arrivals)
    assert set(delivered) == parked_ids
    assert set(parked_while_down) <= set(delivered)
    assert max(delivered.values()) == 1
    counts = await _state_counts(harness, endpoint.id)
    assert counts["parked"] == 0
    assert (await harness.endpoint(endpoint.id)).status == "active"

    # never faster than the bucket: in any one-second window, at most one second's worth at
    # the highest rate the bucket had in it, plus the burst it may have saved (one second's
    # worth at the rate it had when the window opened)
    recovery = settings.recovery_start_rate, settings.recovery_max_rate
    for start_s, _ in arrivals:
        in_window = sum(1 for t, _ in arrivals if start_s <= t < start_s + 1.0)
        window_rates = [r for t, r in rates if start_s - tick <= t < start_s + 1.0]
        opened = max(1.0, next((r for t, r in reversed(rates) if t <= start_s), recovery[0]))
        assert in_window <= opened + max(window_rates, default=recovery[0]) + 1e-9, (
            start_s,
            in_window,
        )
    # and a slow start: the first second sends no more than the start rate allows
    assert sum(1 for t, _ in arrivals if t < 1.0) <= 2 * recovery[0]
    assert len(arrivals) / max(t for t, _ in arrivals) <= recovery[1] * 1.01


def _since(moment: datetime, start: datetime) -> float:
    return (moment - start).total_seconds()


async def _bucket_rate(harness: Harness, endpoint_id: str) -> float:
    endpoint = await harness.endpoint(endpoint_id)
    state = endpoint.lifecycle or {}
    recovery = state.get("recovery") or {}
    return float(recovery.get("rate", harness.runtime.settings.recovery_start_rate))


async def _parked_event_ids(harness: Harness, endpoint_id: str) -> set[str]:
    async with harness.runtime.sessions() as session:
        rows = await session.execute(
            select(Delivery.event_id).where(
                Delivery.endpoint_id == endpoint_id, Delivery.state == "parked"
            )
        )
    return set(rows.scalars())
