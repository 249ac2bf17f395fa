"""Endpoints that come back, one behaviour at a time: parking, probing, the slow-start release,
the parked bounds, enabling by hand and the operator's alerts.

Real runtime (SQLite + SQL queue, PostgreSQL + Redis), the real sender and a loopback receiver
on a ManualClock: the lifecycle is driven round by round (``probe_due``, ``release``,
``bound_parked``) and the worker drains in between. The end-to-end story (26 hours down, 500
events back) is ``tests/integration/test_endpoint_recovery.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import select, update
from structlog.testing import capture_logs

from hookline.domain.states import DisabledReason
from hookline.observability.alerts import Alert, AlertKind, AlertMessage, AlertSummary
from hookline.service.endpoints import Recover
from hookline.service.lifecycle import LifecycleService
from hookline.service.parking import LifecyclePolicy
from hookline.storage.models import Delivery, DeliveryAttempt, Endpoint
from tests import factories
from tests.integration.conftest import Harness

SLOW_START = [1, 2, 4, 8, 16, 32, 50]
"""What the bucket releases second after second with the default settings while every answer
is a 2xx: one token to begin with, the rate doubling with each second's worth of successes
(``RECOVERY_START_RATE`` 1/s) up to ``RECOVERY_MAX_RATE`` (50/s)."""


async def _endpoint(harness: Harness, path: str = "/hook", **options: Any) -> str:
    endpoint = await harness.runtime.endpoints.create(url=harness.receiver.url_for(path), **options)
    harness.clock.advance(0.01)
    return endpoint.id


async def _publish(harness: Harness, count: int, event_type: str = "order.created") -> list[str]:
    """``count`` events, 10 ms apart: their ids, oldest first."""
    published = []
    for _ in range(count):
        published.append((await harness.publish(event_type)).event.id)
        harness.clock.advance(0.01)
    return published


async def _deliveries(harness: Harness, endpoint_id: str) -> dict[str, Delivery]:
    """The endpoint's deliveries by event id."""
    async with harness.runtime.sessions() as session:
        rows = await session.scalars(select(Delivery).where(Delivery.endpoint_id == endpoint_id))
        return {row.event_id: row for row in rows}


async def _states(harness: Harness, endpoint_id: str) -> dict[str, str]:
    """The state of each of the endpoint's deliveries, by event id."""
    return {event: d.state for event, d in (await _deliveries(harness, endpoint_id)).items()}


async def _parked(harness: Harness, endpoint_id: str) -> int:
    counts = await harness.runtime.endpoints.parked_counts(endpoint_ids=[endpoint_id])
    return counts[endpoint_id]


def _sample(harness: Harness, name: str, **labels: str) -> float:
    return harness.runtime.metrics.registry.get_sample_value(name, labels) or 0.0


async def _probe_when_due(harness: Harness, endpoint_id: str) -> tuple[int, int]:
    """Move the clock to the endpoint's next probe and run the probes due."""
    planned = (await harness.endpoint(endpoint_id)).probe_next_at
    assert planned is not None
    harness.clock.set(max(planned, harness.clock.now()))
    return await harness.runtime.lifecycle.probe_due()


async def _probe_until(harness: Harness, endpoint_id: str, status: str) -> int:
    """Probe as the probes fall due until the endpoint is in ``status``; how many probes."""
    for probes in range(1, 20):
        await _probe_when_due(harness, endpoint_id)
        if (await harness.endpoint(endpoint_id)).status == status:
            return probes
    raise AssertionError(f"{endpoint_id} never became {status}")


async def _recovering(harness: Harness, events: int, path: str = "/hook") -> tuple[str, list[str]]:
    """An endpoint enabled by hand with ``events`` parked deliveries (their event ids, oldest
    first): recovering, its bucket started now (one token)."""
    endpoints = harness.runtime.endpoints
    endpoint_id = await _endpoint(harness, path)
    await endpoints.disable(endpoint_id=endpoint_id)
    parked = await _publish(harness, events)
    enabled = await endpoints.enable(endpoint_id=endpoint_id)
    assert enabled.status == "recovering"
    return endpoint_id, parked


async def _release_round(harness: Harness) -> list[str]:
    """One release of the lifecycle, then the worker drains what is due: the event ids that
    arrived (as many as were released)."""
    seen = len(harness.receiver.requests)
    released, _ = await harness.runtime.lifecycle.release()
    await harness.run()
    arrived = [request.headers["webhook-id"] for request in harness.receiver.requests[seen:]]
    assert len(arrived) == released
    return arrived


async def _disabled_by_failures(harness: Harness, path: str) -> tuple[str, datetime, str]:
    """An endpoint the worker disabled as failing after a day of failures, one delivery parked:
    its id, when the failures began, and the parked delivery's event id."""
    endpoint_id = await _endpoint(harness, path)
    harness.receiver.on(path, statuses=[500])
    await _publish(harness, 1)
    fail_since = harness.clock.now()
    assert await harness.run() == 1
    harness.clock.advance(harness.runtime.settings.failure_disable_window_s + 1)
    [parked] = await _publish(harness, 1)
    assert await harness.run() == 2
    endpoint = await harness.endpoint(endpoint_id)
    assert (endpoint.status, endpoint.disabled_reason) == ("disabled", "failing")
    return endpoint_id, fail_since, parked


def _alerts(messages: Sequence[AlertMessage], kind: AlertKind, endpoint_id: str) -> list[Alert]:
    return [
        m for m in messages if isinstance(m, Alert) and m.kind is kind and m.subject == endpoint_id
    ]


# --- parking ------------------------------------------------------------------------------------


async def test_events_for_a_manually_disabled_endpoint_are_parked_not_queued(
    harness: Harness,
) -> None:
    # Given a webhook disabled by hand
    endpoint_id = await _endpoint(harness)
    await harness.runtime.endpoints.disable(endpoint_id=endpoint_id)
    depth = await harness.runtime.queue.depth()

    # When three events match it
    results = [await harness.publish() for _ in range(3)]

    # Then each made one parked delivery, out of the queue, that nobody attempts
    assert [[d.state for d in r.deliveries] for r in results] == [["parked"]] * 3
    assert await harness.runtime.queue.depth() == depth
    harness.clock.advance(3600)
    assert await harness.run() == 0
    assert harness.receiver.requests == []
    assert await harness.runtime.endpoints.parked_counts(endpoint_ids=[endpoint_id]) == {
        endpoint_id: 3
    }
    assert set((await _states(harness, endpoint_id)).values()) == {"parked"}


async def test_a_gone_endpoint_gets_no_delivery_at_all(harness: Harness) -> None:
    # Given a webhook disabled as gone, and another one that is active
    gone = await _endpoint(harness, "/gone")
    active = await _endpoint(harness, "/active")
    await harness.runtime.endpoints.disable(endpoint_id=gone, reason=DisabledReason.GONE)

    # When an event matches both
    result = await harness.publish()

    # Then only the active one has a delivery; the gone one has none, parked or otherwise
    assert [(d.endpoint_id, d.state) for d in result.deliveries] == [(active, "pending")]
    assert await _deliveries(harness, gone) == {}
    assert await _parked(harness, gone) == 0


async def _one_retrying_one_pending(harness: Harness) -> tuple[str, str, str]:
    """A webhook with one delivery retrying and one pending: its id and their event ids."""
    endpoint_id = await _endpoint(harness)
    harness.receiver.on("/hook", statuses=[500, 200])
    [retrying] = await _publish(harness, 1)
    assert await harness.run() == 1
    [pending] = await _publish(harness, 1)
    assert await _states(harness, endpoint_id) == {retrying: "retrying", pending: "pending"}
    return endpoint_id, retrying, pending


async def test_disable_parks_the_queued_deliveries(harness: Harness) -> None:
    # Given a webhook with one delivery retrying and one pending
    endpoint_id, retrying, pending = await _one_retrying_one_pending(harness)

    # When it is disabled by hand
    await harness.runtime.endpoints.disable(endpoint_id=endpoint_id)

    # Then both are parked, and nothing is attempted even once they would have been due
    assert await _states(harness, endpoint_id) == {retrying: "parked", pending: "parked"}
    harness.clock.advance(3600)
    assert await harness.run() == 0
    assert len(harness.receiver.requests) == 1
    assert await _parked(harness, endpoint_id) == 2
    assert await _states(harness, endpoint_id) == {retrying: "parked", pending: "parked"}


async def test_disable_takes_the_parked_deliveries_out_of_the_queue(harness: Harness) -> None:
    # Given a webhook with one delivery retrying and one pending, both in the queue
    depth = await harness.runtime.queue.depth()
    endpoint_id, _, _ = await _one_retrying_one_pending(harness)
    assert await harness.runtime.queue.depth() == depth + 2

    # When it is disabled by hand
    await harness.runtime.endpoints.disable(endpoint_id=endpoint_id)

    # Then the queue holds neither (Redis memory stays flat while it is down)
    assert await harness.runtime.queue.depth() == depth


async def test_disable_as_gone_cancels_the_queued_deliveries(harness: Harness) -> None:
    # Given a webhook with one delivery retrying and one pending
    depth = await harness.runtime.queue.depth()
    endpoint_id, retrying, pending = await _one_retrying_one_pending(harness)

    # When it is disabled as gone
    await harness.runtime.endpoints.disable(endpoint_id=endpoint_id, reason=DisabledReason.GONE)

    # Then both are cancelled (not parked), never attempted, and leave the queue
    found = await _deliveries(harness, endpoint_id)
    assert {e: (d.state, d.last_error) for e, d in found.items()} == {
        retrying: ("cancelled", "endpoint_disabled"),
        pending: ("cancelled", "endpoint_disabled"),
    }
    assert await _parked(harness, endpoint_id) == 0
    harness.clock.advance(3600)
    assert await harness.run() == 0
    assert len(harness.receiver.requests) == 1
    assert await harness.runtime.queue.depth() == depth


async def test_a_recovering_endpoint_that_answers_410_cancels_its_parked_backlog(
    harness: Harness,
) -> None:
    # Given a recovering webhook with three parked deliveries, whose receiver is now gone
    endpoint_id, parked = await _recovering(harness, 3)
    harness.receiver.on("/hook", statuses=[410])

    # When the first one is released and answered 410
    assert await _release_round(harness) == parked[:1]

    # Then it is disabled as gone, and nothing waits parked for it any more: the one attempted
    # is a dead letter, the two others are cancelled
    endpoint = await harness.endpoint(endpoint_id)
    assert (endpoint.status, endpoint.disabled_reason) == ("disabled", "gone")
    states = await _states(harness, endpoint_id)
    assert [states[event_id] for event_id in parked] == ["failed", "cancelled", "cancelled"]
    assert await _parked(harness, endpoint_id) == 0


# --- probes -------------------------------------------------------------------------------------


async def test_the_first_probe_comes_between_three_quarters_of_and_the_min_interval(
    harness: Harness,
) -> None:
    # Given a webhook disabled as failing
    min_s = harness.runtime.settings.probe_min_interval_s
    endpoint_id = await _endpoint(harness)
    harness.receiver.on("/hook", statuses=[500])
    await harness.runtime.endpoints.disable(endpoint_id=endpoint_id, reason=DisabledReason.FAILING)
    disabled_at = harness.clock.now()
    planned = (await harness.endpoint(endpoint_id)).probe_next_at
    assert planned is not None
    assert (
        disabled_at + timedelta(seconds=0.75 * min_s)
        <= planned
        <= disabled_at + timedelta(seconds=min_s)
    )

    # When the lifecycle looks just before three quarters of PROBE_MIN_INTERVAL, nothing is sent
    harness.clock.set(disabled_at + timedelta(seconds=0.75 * min_s - 0.5))
    assert await harness.runtime.lifecycle.probe_due() == (0, 0)
    assert harness.receiver.requests == []

    # Then at PROBE_MIN_INTERVAL it has been probed once
    harness.clock.set(disabled_at + timedelta(seconds=min_s))
    assert await harness.runtime.lifecycle.probe_due() == (1, 0)
    assert len(harness.receiver.requests) == 1
    assert await harness.runtime.lifecycle.probe_due() == (0, 0)


async def test_a_failed_probe_doubles_the_interval(harness: Harness) -> None:
    # Given a webhook disabled as failing whose first probe just failed
    min_s = harness.runtime.settings.probe_min_interval_s
    endpoint_id = await _endpoint(harness)
    harness.receiver.on("/hook", statuses=[500])
    await harness.runtime.endpoints.disable(endpoint_id=endpoint_id, reason=DisabledReason.FAILING)
    assert await _probe_when_due(harness, endpoint_id) == (1, 0)
    failed_at = harness.clock.now()

    # When the lifecycle looks just before 0.75 * 2 * PROBE_MIN_INTERVAL, nothing is sent
    harness.clock.set(failed_at + timedelta(seconds=1.5 * min_s - 0.5))
    assert await harness.runtime.lifecycle.probe_due() == (0, 0)
    assert len(harness.receiver.requests) == 1

    # Then by 2 * PROBE_MIN_INTERVAL the second probe went out
    harness.clock.set(failed_at + timedelta(seconds=2 * min_s))
    assert await harness.runtime.lifecycle.probe_due() == (1, 0)
    assert len(harness.receiver.requests) == 2
    assert (await harness.endpoint(endpoint_id)).status == "disabled"


async def test_the_probe_interval_stops_growing_at_the_max_interval(harness: Harness) -> None:
    # Given a webhook disabled as failing whose probes all fail
    settings = harness.runtime.settings
    min_s, max_s = settings.probe_min_interval_s, settings.probe_max_interval_s
    endpoint_id = await _endpoint(harness)
    harness.receiver.on("/hook", statuses=[500])
    await harness.runtime.endpoints.disable(endpoint_id=endpoint_id, reason=DisabledReason.FAILING)

    # When ten probes have failed, each sent when due
    gaps: list[float] = []
    for _ in range(10):
        assert await _probe_when_due(harness, endpoint_id) == (1, 0)
        planned = (await harness.endpoint(endpoint_id)).probe_next_at
        assert planned is not None
        gaps.append((planned - harness.clock.now()).total_seconds())

    # Then the n-th pause is min * 2^n (jittered up to 25 % shorter), never more than the max
    expected = [min(max_s, min_s * 2**n) for n in range(1, 11)]
    assert expected[-5:] == [max_s] * 5  # the defaults reach the cap well within ten probes
    for gap, interval in zip(gaps, expected, strict=True):
        assert 0.75 * interval <= gap <= interval, (gaps, expected)
    state = (await harness.endpoint(endpoint_id)).lifecycle or {}
    assert state["probe"]["interval_s"] == max_s
    assert len(harness.receiver.requests) == 10


async def test_a_probe_is_a_signed_hookline_probe_recorded_as_an_attempt(harness: Harness) -> None:
    # Given a webhook disabled as failing
    endpoint_id = await _endpoint(harness)
    await harness.runtime.endpoints.disable(endpoint_id=endpoint_id, reason=DisabledReason.FAILING)
    secret = (await harness.runtime.endpoints.get_secret(endpoint_id=endpoint_id)).secret

    # When its probe falls due
    assert await _probe_when_due(harness, endpoint_id) == (1, 0)

    # Then the request is signed like a delivery, with a msg_ id of its own and type hookline.probe
    [request] = harness.receiver.requests
    message_id = request.headers["webhook-id"]
    assert message_id.startswith("msg_")
    assert request.signed_by(secret, now_s=harness.clock.now().timestamp())
    body = json.loads(request.body)
    assert body["type"] == "hookline.probe"
    assert (body["data"]["webhook_id"], body["data"]["trigger"]) == (endpoint_id, "probe")
    # and it is recorded as the webhook's attempt, trigger probe, outside any delivery
    async with harness.runtime.sessions() as session:
        [attempt] = await session.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.endpoint_id == endpoint_id)
        )
    assert (attempt.trigger, attempt.delivery_id, attempt.status_code) == ("probe", None, 200)


async def test_a_webhook_with_probing_off_is_never_probed(harness: Harness) -> None:
    # Given a webhook with probe_enabled false, disabled as failing
    max_s = harness.runtime.settings.probe_max_interval_s
    endpoint_id = await _endpoint(harness, probe_enabled=False)
    await harness.runtime.endpoints.disable(endpoint_id=endpoint_id, reason=DisabledReason.FAILING)

    # When the lifecycle runs over many max intervals
    for _ in range(5):
        harness.clock.advance(max_s)
        await harness.runtime.lifecycle.run_once()

    # Then it was never probed and is still disabled
    assert harness.receiver.requests == []
    assert (await harness.endpoint(endpoint_id)).status == "disabled"


async def test_a_webhook_disabled_by_hand_is_never_probed_automatically(harness: Harness) -> None:
    # Given a webhook disabled by hand
    max_s = harness.runtime.settings.probe_max_interval_s
    endpoint_id = await _endpoint(harness)
    await harness.runtime.endpoints.disable(endpoint_id=endpoint_id)

    # When the lifecycle runs over many max intervals
    for _ in range(5):
        harness.clock.advance(max_s)
        await harness.runtime.lifecycle.run_once()

    # Then it was never probed and is still disabled
    assert harness.receiver.requests == []
    assert (await harness.endpoint(endpoint_id)).status == "disabled"


async def test_only_k_successful_probes_in_a_row_bring_it_back(harness: Harness) -> None:
    # Given a webhook disabled as failing with a delivery parked, answering probes 2xx, 2xx,
    # 500, then 2xx
    assert harness.runtime.settings.probe_successes == 3
    endpoint_id = await _endpoint(harness)
    await harness.runtime.endpoints.disable(endpoint_id=endpoint_id, reason=DisabledReason.FAILING)
    await _publish(harness, 1)
    harness.receiver.on("/hook", statuses=[200, 200, 500, 200, 200, 200])

    # When six probes go out as they fall due
    statuses = []
    for _ in range(6):
        await _probe_when_due(harness, endpoint_id)
        statuses.append((await harness.endpoint(endpoint_id)).status)

    # Then only the third success after the failure made it recovering
    assert statuses == ["disabled"] * 5 + ["recovering"]
    assert len(harness.receiver.requests) == 6


# --- the slow start -----------------------------------------------------------------------------


async def test_the_slow_start_releases_oldest_first_doubling_every_second(
    harness: Harness,
) -> None:
    # Given a webhook disabled as failing with 120 parked deliveries, created in the reverse
    # order of their ids (so "oldest" can only mean created_at)
    runtime, clock = harness.runtime, harness.clock
    endpoint_id = await _endpoint(harness)
    await runtime.endpoints.disable(endpoint_id=endpoint_id, reason=DisabledReason.FAILING)
    published = await _publish(harness, 120)
    base = clock.now()
    async with runtime.sessions.begin() as session:
        for age_s, event_id in enumerate(published):
            await session.execute(
                update(Delivery)
                .where(Delivery.event_id == event_id)
                .values(created_at=base - timedelta(seconds=age_s + 1))
            )
    oldest_first = published[::-1]
    # whose three probes pass
    assert await _probe_until(harness, endpoint_id, "recovering") == 3
    seen = len(harness.receiver.requests)

    # When the lifecycle releases once a second, the receiver answering 200 and the worker
    # draining in between, until the webhook is no longer recovering
    rounds: list[list[str]] = []
    with capture_logs() as logs:
        while (await harness.endpoint(endpoint_id)).status == "recovering":
            assert len(rounds) < 20, rounds
            rounds.append(await _release_round(harness))
            clock.advance(1)

    # Then the bucket released 1, 2, 4, ... per second up to the max rate, then the rest
    assert [len(r) for r in rounds] == [*SLOW_START, 7, 0]
    # oldest first
    bounds = [0]
    for released in rounds:
        bounds.append(bounds[-1] + len(released))
    assert [set(r) for r in rounds] == [set(oldest_first[a:b]) for a, b in pairwise(bounds)]
    assert len(harness.receiver.requests) - seen == 120
    # and, none left parked, it is active: logged and counted
    endpoint = await harness.endpoint(endpoint_id)
    assert (endpoint.status, endpoint.lifecycle) == ("active", None)
    assert await _parked(harness, endpoint_id) == 0
    assert set((await _states(harness, endpoint_id)).values()) == {"succeeded"}
    [active] = [entry for entry in logs if entry["event"] == "endpoint.active"]
    assert (active["endpoint_id"], active["trigger"]) == (endpoint_id, "automatic")
    transitions = "webhook_endpoint_transitions_total"
    assert _sample(harness, transitions, to="recovering", trigger="automatic") == 1
    assert _sample(harness, transitions, to="active", trigger="automatic") == 1


async def test_a_failure_halves_the_release_rate(harness: Harness) -> None:
    # Given a recovering webhook with ten parked deliveries, whose first release succeeded (the
    # rate doubled to 2/s)
    endpoint_id, _ = await _recovering(harness, 10)
    assert len(await _release_round(harness)) == 1
    harness.clock.advance(1)

    # When the next release (two) fails
    harness.receiver.on("/hook", statuses=[500])
    assert len(await _release_round(harness)) == 2
    harness.clock.advance(1)

    # Then the rate is back to 1/s: one released the second after, not two
    state = (await harness.endpoint(endpoint_id)).lifecycle or {}
    assert state["recovery"]["rate"] == 1.0
    harness.receiver.on("/hook", statuses=[200])
    assert len(await _release_round(harness)) == 1
    assert (await harness.endpoint(endpoint_id)).status == "recovering"


async def _fail_until_reparked(harness: Harness) -> tuple[str, list[str]]:
    """A recovering webhook with ten parked deliveries whose released ones fail, one a second,
    until it is parked again: its id and the event ids. It is still recovering after each of
    the first ``RECOVERY_MAX_FAILURES - 1`` failures."""
    max_failures = harness.runtime.settings.recovery_max_failures
    endpoint_id, published = await _recovering(harness, 10)
    harness.receiver.on("/hook", statuses=[500])
    for _ in range(max_failures - 1):
        assert len(await _release_round(harness)) == 1
        assert (await harness.endpoint(endpoint_id)).status == "recovering"
        harness.clock.advance(1)
    assert len(await _release_round(harness)) == 1
    return endpoint_id, published


async def test_max_failures_in_a_row_park_the_webhook_again(harness: Harness) -> None:
    # Given a recovering webhook with ten parked deliveries, whose receiver fails again
    min_s = harness.runtime.settings.probe_min_interval_s

    # When the released ones fail one after the other, one a second
    with capture_logs() as logs:
        endpoint_id, published = await _fail_until_reparked(harness)
    reparked_at = harness.clock.now()

    # Then the failure that made RECOVERY_MAX_FAILURES in a row disabled it as failing again
    endpoint = await harness.endpoint(endpoint_id)
    assert (endpoint.status, endpoint.disabled_reason) == ("disabled", "failing")
    # with every delivery parked again (those retrying too), none attempted any more
    assert await _states(harness, endpoint_id) == dict.fromkeys(published, "parked")
    # and a new probe planned, at the shortest interval
    assert endpoint.probe_next_at is not None
    assert (
        reparked_at + timedelta(seconds=0.75 * min_s)
        <= endpoint.probe_next_at
        <= reparked_at + timedelta(seconds=min_s)
    )
    [disabled] = [
        entry
        for entry in logs
        if entry["event"] == "endpoint.disabled" and entry["trigger"] == "automatic"
    ]
    assert disabled["reason"] == "failing"
    transitions = "webhook_endpoint_transitions_total"
    assert _sample(harness, transitions, to="disabled", trigger="automatic") == 1
    harness.clock.advance(3600)
    sent = len(harness.receiver.requests)
    assert await harness.run() == 0
    assert len(harness.receiver.requests) == sent


async def test_a_repark_takes_the_deliveries_out_of_the_queue(harness: Harness) -> None:
    # Given a recovering webhook with ten parked deliveries, whose receiver fails again
    depth = await harness.runtime.queue.depth()

    # When the released ones fail until it is parked again
    endpoint_id, _ = await _fail_until_reparked(harness)

    # Then those that were retrying left the queue with the rest
    assert (await harness.endpoint(endpoint_id)).status == "disabled"
    assert await harness.runtime.queue.depth() == depth


async def test_retry_after_pauses_the_release(harness: Harness) -> None:
    # Given a recovering webhook with five parked deliveries
    endpoint_id, _ = await _recovering(harness, 5)
    started = harness.clock.now()

    # When the first one released is answered 429 with Retry-After: 30
    harness.receiver.on("/hook", statuses=[429], headers={"Retry-After": "30"})
    assert len(await _release_round(harness)) == 1
    harness.receiver.on("/hook", statuses=[200])

    # Then nothing is released for 30 seconds
    for after_s in (1, 10, 29.5):
        harness.clock.set(started + timedelta(seconds=after_s))
        assert await harness.runtime.lifecycle.release() == (0, 0), after_s
    # and the release goes on after that
    harness.clock.set(started + timedelta(seconds=31))
    assert await harness.runtime.lifecycle.release() == (1, 0)
    assert (await harness.endpoint(endpoint_id)).status == "recovering"


async def test_live_events_during_recovery_park_behind_the_backlog(harness: Harness) -> None:
    # Given a recovering webhook with three parked deliveries
    endpoint_id, old = await _recovering(harness, 3)

    # When two more events match it while it recovers
    results = [await harness.publish() for _ in range(2)]
    new = [result.event.id for result in results]

    # Then they are parked, not queued
    assert [[d.state for d in r.deliveries] for r in results] == [["parked"]] * 2
    assert await harness.run() == 0
    # and they arrive after the older ones, as the bucket allows
    rounds: list[list[str]] = []
    while (await harness.endpoint(endpoint_id)).status == "recovering":
        assert len(rounds) < 10, rounds
        rounds.append(await _release_round(harness))
        harness.clock.advance(1)
    assert [set(r) for r in rounds] == [{old[0]}, {old[1], old[2]}, set(new), set()]
    # and once it is active, events are queued again
    [after] = (await harness.publish()).deliveries
    assert after.state == "pending"


# --- bounds -------------------------------------------------------------------------------------


def _bounded(harness: Harness) -> LifecycleService:
    """A lifecycle over the harness's runtime keeping at most 3 parked deliveries per webhook,
    for at most an hour."""
    runtime = harness.runtime
    return LifecycleService(
        sessions=runtime.sessions,
        queue=runtime.queue,
        clock=harness.clock,
        sends=runtime.endpoint_sends,
        metrics=runtime.metrics,
        policy=LifecyclePolicy(parked_max=3, parked_max_age_s=3600),
    )


async def test_parked_deliveries_beyond_the_count_bound_become_dead_letters_oldest_first(
    harness: Harness,
) -> None:
    # Given PARKED_MAX_PER_ENDPOINT 3, a webhook with five parked deliveries and another
    # with three
    lifecycle = _bounded(harness)
    over = await _endpoint(harness, "/over", event_types=["order.created"])
    within = await _endpoint(harness, "/within", event_types=["invoice.paid"])
    for endpoint_id in (over, within):
        await harness.runtime.endpoints.disable(endpoint_id=endpoint_id)
    published = await _publish(harness, 5)
    kept = await _publish(harness, 3, "invoice.paid")

    # When the bounds are enforced
    overflowed = await lifecycle.bound_parked()

    # Then the two oldest of the first webhook are dead letters (parked_overflow)
    assert overflowed == 2
    found = await _deliveries(harness, over)
    assert [(found[e].state, found[e].last_error) for e in published] == [
        ("failed", "parked_overflow"),
        ("failed", "parked_overflow"),
        ("parked", None),
        ("parked", None),
        ("parked", None),
    ]
    assert found[published[0]].completed_at == harness.clock.now()
    # the other webhook keeps its three, and the metric counts the two
    assert await _states(harness, within) == dict.fromkeys(kept, "parked")
    assert _sample(harness, "webhook_dead_letter_total", reason="parked_overflow") == 2
    assert await lifecycle.bound_parked() == 0


async def test_parked_deliveries_older_than_the_age_bound_become_dead_letters(
    harness: Harness,
) -> None:
    # Given PARKED_MAX_AGE one hour, a webhook with two deliveries parked a second apart
    lifecycle = _bounded(harness)
    endpoint_id = await _endpoint(harness)
    await harness.runtime.endpoints.disable(endpoint_id=endpoint_id)
    first_at = harness.clock.now()
    [first] = await _publish(harness, 1)
    harness.clock.set(first_at + timedelta(seconds=1))
    [second] = await _publish(harness, 1)

    # When the bounds are enforced within the hour, nothing happens
    harness.clock.set(first_at + timedelta(seconds=3599))
    assert await lifecycle.bound_parked() == 0
    assert await _parked(harness, endpoint_id) == 2

    # Then past the hour of the first only it is a dead letter; past both, both are
    harness.clock.set(first_at + timedelta(seconds=3600.5))
    assert await lifecycle.bound_parked() == 1
    assert await _states(harness, endpoint_id) == {first: "failed", second: "parked"}
    harness.clock.set(first_at + timedelta(seconds=3602))
    assert await lifecycle.bound_parked() == 1
    found = await _deliveries(harness, endpoint_id)
    assert {(d.state, d.last_error) for d in found.values()} == {("failed", "parked_overflow")}
    assert _sample(harness, "webhook_dead_letter_total", reason="parked_overflow") == 2


# --- by hand ------------------------------------------------------------------------------------


async def test_enable_recovering_nothing_discards_the_parked_deliveries(harness: Harness) -> None:
    # Given a webhook disabled by hand with two parked deliveries
    endpoints = harness.runtime.endpoints
    endpoint_id = await _endpoint(harness)
    await endpoints.disable(endpoint_id=endpoint_id)
    published = await _publish(harness, 2)

    # When it is enabled with recover none
    outcome = await endpoints.enable_with_outcome(
        endpoint_id=endpoint_id, recover=Recover(mode="none")
    )

    # Then it is active at once and the parked ones are dead letters (discarded), never sent
    assert (outcome.endpoint.status, outcome.discarded, outcome.parked) == ("active", 2, 0)
    found = await _deliveries(harness, endpoint_id)
    assert {e: (d.state, d.last_error) for e, d in found.items()} == dict.fromkeys(
        published, ("failed", "discarded")
    )
    assert await harness.run() == 0
    assert harness.receiver.requests == []
    assert _sample(harness, "webhook_dead_letter_total", reason="discarded") == 2


async def test_enable_since_parks_again_what_ended_without_success_since_then(
    harness: Harness,
) -> None:
    # Given a webhook with deliveries that failed before T, and failed, were cancelled or
    # succeeded at or after T
    endpoints = harness.runtime.endpoints
    endpoint_id = await _endpoint(harness)
    since = harness.clock.now()
    created = {
        "failed_before": ("failed", since - timedelta(seconds=1)),
        "failed_at": ("failed", since),
        "cancelled_after": ("cancelled", since + timedelta(seconds=1)),
        "succeeded_after": ("succeeded", since + timedelta(seconds=2)),
    }
    names: dict[str, str] = {}
    async with harness.runtime.sessions.begin() as session:
        endpoint = await session.get(Endpoint, endpoint_id)
        assert endpoint is not None
        for name, (state, created_at) in created.items():
            event = await factories.make_event(session, now=created_at)
            await factories.make_delivery(
                session,
                event=event,
                endpoint=endpoint,
                now=created_at,
                state=state,
                next_attempt_at=None,
                completed_at=created_at,
                attempt_number=1,
            )
            names[event.id] = name
    harness.clock.advance(10)
    await endpoints.disable(endpoint_id=endpoint_id)

    # When it is enabled with recover since:T
    outcome = await endpoints.enable_with_outcome(
        endpoint_id=endpoint_id, recover=Recover(mode="since", since=since)
    )

    # Then what failed or was cancelled at or after T is parked again, and it is recovering
    states = {names[e]: s for e, s in (await _states(harness, endpoint_id)).items()}
    assert states == {
        "failed_before": "failed",
        "failed_at": "parked",
        "cancelled_after": "parked",
        "succeeded_after": "succeeded",
    }
    assert (outcome.endpoint.status, outcome.parked) == ("recovering", 2)
    # and the slow start sends them
    harness.clock.advance(1)
    assert len(await _release_round(harness)) == 1


async def test_deleting_a_webhook_cancels_its_parked_deliveries(harness: Harness) -> None:
    # Given a webhook disabled by hand with two parked deliveries
    endpoints = harness.runtime.endpoints
    endpoint_id = await _endpoint(harness)
    await endpoints.disable(endpoint_id=endpoint_id)
    published = await _publish(harness, 2)

    # When it is deleted
    await endpoints.delete(endpoint_id=endpoint_id)

    # Then they are cancelled, not left parked
    found = await _deliveries(harness, endpoint_id)
    assert {e: (d.state, d.last_error) for e, d in found.items()} == dict.fromkeys(
        published, ("cancelled", "endpoint_deleted")
    )
    assert await harness.runtime.endpoints.parked_counts(endpoint_ids=[endpoint_id]) == {
        endpoint_id: 0
    }


# --- alerts -------------------------------------------------------------------------------------


async def test_a_failing_disable_is_alerted_with_when_the_failures_began(harness: Harness) -> None:
    # Given a webhook whose receiver has failed for a day
    await harness.runtime.alerts.flush()

    # When the worker disables it as failing
    endpoint_id, fail_since, _ = await _disabled_by_failures(harness, "/down")

    # Then the alert says so, with when the failures began
    [alert] = _alerts(
        await harness.runtime.alerts.flush(), AlertKind.ENDPOINT_DISABLED, endpoint_id
    )
    assert alert.fields["reason"] == "failing"
    assert alert.fields["trigger"] == "automatic"
    assert alert.fields["fail_since"] == fail_since.isoformat()
    assert alert.fields["parked_deliveries"] == 1


async def test_a_recovery_is_alerted_when_the_probes_pass(harness: Harness) -> None:
    # Given a webhook the worker disabled as failing, with one delivery parked
    alerts = harness.runtime.alerts
    endpoint_id, fail_since, _ = await _disabled_by_failures(harness, "/down")
    await alerts.flush()

    # When its receiver is back and three probes pass
    harness.receiver.on("/down", statuses=[200])
    await _probe_until(harness, endpoint_id, "recovering")

    # Then the alert says it is recovering, automatically, with when the failures began
    [recovering] = _alerts(await alerts.flush(), AlertKind.ENDPOINT_RECOVERY, endpoint_id)
    assert recovering.fields["status"] == "recovering"
    assert recovering.fields["trigger"] == "automatic"
    assert recovering.fields["fail_since"] == fail_since.isoformat()
    assert recovering.fields["parked_deliveries"] == 1


async def test_the_end_of_a_recovery_is_alerted_with_when_the_failures_began(
    harness: Harness,
) -> None:
    # Given a webhook the worker disabled as failing, whose probes passed (recovering, with
    # one delivery parked), and whose recovering alert went out
    alerts = harness.runtime.alerts
    endpoint_id, fail_since, parked = await _disabled_by_failures(harness, "/down")
    harness.receiver.on("/down", statuses=[200])
    await _probe_until(harness, endpoint_id, "recovering")
    await alerts.flush()

    # When, past the alert interval, its backlog is sent and it is active
    harness.clock.advance(harness.runtime.settings.alert_min_interval_s + 1)
    assert await _release_round(harness) == [parked]
    with capture_logs() as logs:
        assert await harness.runtime.lifecycle.release() == (0, 1)

    # Then that is alerted and logged too, with when the failures began
    [active] = _alerts(await alerts.flush(), AlertKind.ENDPOINT_RECOVERY, endpoint_id)
    assert (active.fields["status"], active.fields["trigger"]) == ("active", "automatic")
    [line] = [entry for entry in logs if entry["event"] == "endpoint.active"]
    assert line["fail_since"] == fail_since.isoformat()
    assert active.fields["fail_since"] == fail_since.isoformat()


async def test_a_quick_recovery_summarised_later_is_not_called_a_disable(
    harness: Harness,
) -> None:
    # Given a webhook enabled by hand that becomes active within ALERT_MIN_INTERVAL of its
    # recovering alert (the second alert of the kind is only counted, summarised later)
    alerts = harness.runtime.alerts
    endpoint_id, _ = await _recovering(harness, 1)
    assert _alerts(await alerts.flush(), AlertKind.ENDPOINT_RECOVERY, endpoint_id)
    await _release_round(harness)
    assert await harness.runtime.lifecycle.release() == (0, 1)
    assert not _alerts(await alerts.flush(), AlertKind.ENDPOINT_RECOVERY, endpoint_id)

    # When the interval ends
    harness.clock.advance(harness.runtime.settings.alert_min_interval_s + 1)
    summaries = [m for m in await alerts.flush() if isinstance(m, AlertSummary)]

    # Then the summary counts one more recovery of that webhook, and says it is one
    [summary] = summaries
    assert (summary.kind, summary.subject, summary.count) == (
        AlertKind.ENDPOINT_RECOVERY,
        endpoint_id,
        1,
    )
    assert "disable" not in summary.title, summary.title
