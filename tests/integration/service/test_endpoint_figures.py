"""EndpointService calls the console's webhook pages need, on SQLite + SQL queue and PostgreSQL +
Redis: the 24-hour attempt figures of a whole page of endpoints in one grouped statement, and
what enabling an endpoint put back in the queue."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from hookline.domain.states import DisabledReason
from hookline.storage.models import Delivery, Endpoint
from tests import factories
from tests.integration.conftest import Harness


async def _endpoint_with_attempts(harness: Harness, statuses: list[int | None]) -> Endpoint:
    """An endpoint with one delivery per status, each with one attempt started now."""
    async with harness.runtime.sessions.begin() as session:
        endpoint = await factories.make_endpoint(session, now=harness.clock.now())
        for status in statuses:
            event_row = await factories.make_event(session, now=harness.clock.now())
            delivery = await factories.make_delivery(
                session, event=event_row, endpoint=endpoint, now=harness.clock.now()
            )
            await factories.make_attempt(
                session, delivery=delivery, now=harness.clock.now(), status_code=status
            )
    return endpoint


async def test_recent_attempts_counts_a_page_of_endpoints_as_stats_counts_each(
    harness: Harness,
) -> None:
    # Given endpoints with attempts: one a day and a minute ago (outside the window), then
    # mixed answers now (a 2xx, a 500, no answer at all), and one without any attempt
    old = await _endpoint_with_attempts(harness, [200, 500])
    harness.clock.advance(24 * 3600 + 60)
    mixed = await _endpoint_with_attempts(harness, [200, 204, 500, None])
    failing = await _endpoint_with_attempts(harness, [503, 503])
    async with harness.runtime.sessions.begin() as session:
        idle = await factories.make_endpoint(session, now=harness.clock.now())
    unknown = "wh_00000000000000000000000000"
    endpoints = harness.runtime.endpoints
    ids = [old.id, mixed.id, failing.id, idle.id, unknown]

    # When their recent attempts are read in one call
    figures = await endpoints.recent_attempts(endpoint_ids=ids)

    # Then every id has its figures, the same as the per-endpoint stats
    assert list(figures) == ids
    for endpoint_id in ids[:-1]:
        stats = await endpoints.stats(endpoint_id=endpoint_id)
        found = figures[endpoint_id]
        assert (found.total, found.succeeded) == (stats.attempts_total, stats.attempts_succeeded)
        assert found.window_s == stats.window_s
    assert (figures[mixed.id].total, figures[mixed.id].failed) == (4, 2)
    assert figures[mixed.id].failure_rate == 0.5
    assert figures[failing.id].failure_rate == 1.0
    for quiet in (old.id, idle.id, unknown):
        assert (figures[quiet].total, figures[quiet].failure_rate) == (0, None)
    assert await endpoints.recent_attempts(endpoint_ids=[]) == {}


async def test_recent_attempts_is_one_statement_however_many_endpoints(harness: Harness) -> None:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    engine = harness.runtime.engine.sync_engine
    few = [(await _endpoint_with_attempts(harness, [500])).id]
    many = few + [(await _endpoint_with_attempts(harness, [200, 500])).id for _ in range(6)]
    counts = []
    for ids in (few, many):
        statements.clear()
        event.listen(engine, "before_cursor_execute", record)
        try:
            await harness.runtime.endpoints.recent_attempts(endpoint_ids=ids)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        counts.append(len(statements))

    assert counts == [1, 1], statements


async def test_enable_with_outcome_tells_which_deliveries_went_back_in_the_queue(
    harness: Harness,
) -> None:
    # Given an endpoint with two deliveries waiting, disabled as gone (which cancels them)
    endpoints = harness.runtime.endpoints
    endpoint = await endpoints.create(url=harness.receiver.url_for("/hook"))
    published = [await harness.publish(), await harness.publish()]
    waiting = {result.deliveries[0].id for result in published}
    harness.clock.advance(1)
    await endpoints.disable(endpoint_id=endpoint.id, reason=DisabledReason.GONE)

    # When it is enabled with replay
    harness.clock.advance(60)
    outcome = await endpoints.enable_with_outcome(endpoint_id=endpoint.id, replay_cancelled=True)

    # Then the outcome names both (nothing was parked), they are due now, and the worker sends
    # them
    assert (outcome.endpoint.status, outcome.parked) == ("active", 0)
    assert set(outcome.replayed_delivery_ids) == waiting
    for delivery_id in waiting:
        delivery: Delivery = await harness.delivery(delivery_id)
        assert delivery.state == "pending"
        assert delivery.next_attempt_at == harness.clock.now()
    assert await harness.run() == 2

    # Enabling an active endpoint replays nothing; a disable by hand parks what waits, and
    # enabling then replays nothing either: it tells how many wait for the slow start
    again = await endpoints.enable_with_outcome(endpoint_id=endpoint.id, replay_cancelled=True)
    assert again.replayed_delivery_ids == ()
    await harness.publish()
    await endpoints.disable(endpoint_id=endpoint.id)
    harness.clock.advance(5)
    quiet = await endpoints.enable_with_outcome(endpoint_id=endpoint.id, replay_cancelled=False)
    assert (quiet.endpoint.status, quiet.replayed_delivery_ids) == ("recovering", ())
    assert quiet.parked == 1
