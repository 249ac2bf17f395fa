"""Per-endpoint ``rate_limit_per_s`` in the worker, on both deployments, with a ``ManualClock``.

The limit is set on the endpoint row directly (the API field is tested with the API). On
``postgres+redis`` the worker's limiter is the shared ``RedisRateLimiter``; on ``sqlite+sql`` the
in-process ``LocalRateLimiter``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select

from hookline.errors import Unavailable
from hookline.queue.rate_limit import (
    LocalRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    TokenGrant,
    TokenRequest,
)
from hookline.storage.models import Delivery
from hookline.worker.retry_worker import RetryWorker
from hookline.worker.throttle import LIMITER_DOWN_DEFER_S
from tests.integration.conftest import Harness


def worker(
    harness: Harness, *, rate_limiter: RateLimiter | None = None, endpoint_concurrency: int = 100
) -> RetryWorker:
    return RetryWorker(
        delivery=harness.runtime.delivery,
        queue=harness.runtime.queue,
        clock=harness.clock,
        batch_size=100,
        concurrency=100,
        endpoint_concurrency=endpoint_concurrency,
        lease_s=60,
        poll_interval_s=1,
        shutdown_grace_s=1,
        rate_limiter=rate_limiter or harness.runtime.rate_limiter,
        metrics=harness.runtime.metrics,
    )


class CountingLimiter:
    """A ``LocalRateLimiter`` that records its calls, and fails while ``down`` is set."""

    def __init__(self) -> None:
        self.calls: list[list[TokenRequest]] = []
        self.down = False
        self._limiter = LocalRateLimiter()

    async def take(self, requests: Sequence[TokenRequest], *, now: datetime) -> list[TokenGrant]:
        self.calls.append(list(requests))
        if self.down:
            raise Unavailable("Redis is unreachable (rate limit): connection refused")
        return await self._limiter.take(requests, now=now)


async def states(harness: Harness, endpoint_id: str) -> Counter[str]:
    async with harness.runtime.sessions() as session:
        rows = await session.execute(
            select(Delivery.state, Delivery.attempt_number).where(
                Delivery.endpoint_id == endpoint_id
            )
        )
    found: Counter[str] = Counter()
    for state, attempt_number in rows.tuples():
        found[f"{state}/{attempt_number}"] += 1
    return found


def rate_limited(harness: Harness, endpoint_id: str) -> float:
    value = harness.runtime.metrics.registry.get_sample_value(
        "webhook_rate_limited_total", {"endpoint_id": endpoint_id}
    )
    return value or 0.0


async def test_the_runtime_picks_the_limiter_beside_its_queue(harness: Harness) -> None:
    expected = RedisRateLimiter if harness.deployment.endswith("+redis") else LocalRateLimiter
    assert isinstance(harness.runtime.rate_limiter, expected)


async def test_a_limited_endpoint_gets_its_rate_and_an_unlimited_one_all_at_once(
    harness: Harness,
) -> None:
    # Given an endpoint limited to 2 requests/s and an unlimited one, both subscribed to all
    limited = await harness.add_endpoint("/limited", rate_limit_per_s=2.0)
    unlimited = await harness.add_endpoint("/unlimited")
    for n in range(10):
        await harness.publish(payload={"n": n})
    the_worker = worker(harness)
    t0 = harness.clock.now()

    # When one batch runs, the unlimited endpoint gets all ten and the limited one its burst
    assert await the_worker.run_once() == 12
    assert len(harness.receiver.requests_to("/unlimited")) == 10
    assert len(harness.receiver.requests_to("/limited")) == 2
    assert the_worker.claimed == 0
    assert the_worker._sending == 0  # the claims put back freed their slots, once each

    # And as the clock moves on in half seconds, the rest follows at the rate
    for _ in range(20):
        harness.clock.advance(0.5)
        await the_worker.drain()

    # Then at any time, the limited endpoint has had no more than burst + rate x elapsed...
    arrivals = [r.received_at for r in harness.receiver.requests_to("/limited")]
    assert len(arrivals) == 10
    for count, arrived in enumerate(sorted(arrivals), start=1):
        assert count <= 2 + 2 * (arrived - t0).total_seconds()
    # ...which, past the first second's burst, is 2 per second at most
    per_second = Counter(int((arrived - t0).total_seconds()) for arrived in arrivals)
    assert per_second[0] <= 4
    assert all(count <= 2 for second, count in per_second.items() if second > 0)
    # And nothing was lost, failed or attempted twice: waiting counted no attempt
    assert await states(harness, limited) == Counter({"succeeded/1": 10})
    assert await states(harness, unlimited) == Counter({"succeeded/1": 10})
    assert rate_limited(harness, limited) >= 8
    assert rate_limited(harness, unlimited) == 0


async def test_what_waits_for_a_token_comes_back_one_per_token_not_all_at_once(
    harness: Harness,
) -> None:
    # Given ten deliveries to an endpoint at 2/s, of which one batch sent the burst of two
    await harness.add_endpoint(rate_limit_per_s=2.0)
    for _ in range(10):
        await harness.publish()
    t0 = harness.clock.now()
    assert await worker(harness).run_once() == 2

    # Then the eight put back fall due one every half second, as the tokens come
    queue = harness.runtime.queue
    for k in range(1, 9):
        harness.clock.set(t0 + timedelta(seconds=0.5 * k))
        assert len(await queue.get_due_retries(now=harness.clock.now(), limit=100, lease_s=60)) == 1


async def test_a_batch_asks_the_limiter_once_and_not_at_all_without_limits(
    harness: Harness,
) -> None:
    # Given two limited endpoints and an unlimited one
    limiter = CountingLimiter()
    the_worker = worker(harness, rate_limiter=limiter)
    unlimited = await harness.add_endpoint("/unlimited")
    await harness.publish()

    # When a batch holds only unlimited deliveries, the limiter is not asked
    assert await the_worker.run_once() == 1
    assert limiter.calls == []

    # When a batch holds three deliveries to each of two limited endpoints, it is asked once
    first = await harness.add_endpoint("/first", rate_limit_per_s=1.0)
    second = await harness.add_endpoint("/second", rate_limit_per_s=10.0)
    for _ in range(3):
        await harness.publish()
    assert await the_worker.run_once() == 3 + 1 + 3
    assert [
        sorted((r.endpoint_id, r.rate_per_s, r.count) for r in call) for call in limiter.calls
    ] == [sorted([(first, 1.0, 3), (second, 10.0, 3)])]
    assert await states(harness, unlimited) == Counter({"succeeded/1": 4})


async def test_claims_of_an_endpoint_with_no_token_yet_are_not_even_prepared(
    harness: Harness,
) -> None:
    # Given an endpoint at 1/s that has just spent its token, two more waiting for theirs
    limiter = CountingLimiter()
    the_worker = worker(harness, rate_limiter=limiter)
    endpoint_id = await harness.add_endpoint(rate_limit_per_s=1.0)
    for _ in range(3):
        await harness.publish()
    assert await the_worker.run_once() == 1
    calls = len(limiter.calls)

    # When one more is published within that second and claimed at once
    published = await harness.publish()
    [late] = published.deliveries
    assert await the_worker.run_once() == 0

    # Then it went back untouched (not marked delivering, no limiter call)...
    assert (await harness.delivery(late.id)).state == "pending"
    assert len(limiter.calls) == calls
    # ...due after the two that were waiting already: one per second, the late one last
    sent = []
    for _ in range(3):
        harness.clock.advance(1)
        sent.append(await the_worker.drain())
    assert sent == [1, 1, 1]
    assert harness.receiver.requests[-1].headers["webhook-id"] == published.event.id
    assert await states(harness, endpoint_id) == Counter({"succeeded/1": 4})


async def test_a_limiter_that_cannot_answer_holds_the_limited_ones_back_briefly(
    harness: Harness,
) -> None:
    # Given a limiter whose Redis is down, a limited endpoint and an unlimited one
    limiter = CountingLimiter()
    limiter.down = True
    the_worker = worker(harness, rate_limiter=limiter)
    limited = await harness.add_endpoint("/limited", rate_limit_per_s=5.0)
    unlimited = await harness.add_endpoint("/unlimited")
    await harness.publish()

    # When a batch runs, the unlimited delivery goes; the limited one is neither sent nor failed
    assert await the_worker.run_once() == 1
    assert [r.path for r in harness.receiver.requests] == ["/unlimited"]
    assert await states(harness, limited) != Counter({"succeeded/1": 1})
    assert not any(key.startswith("failed") for key in await states(harness, limited))
    assert the_worker._sending == 0

    # Then it comes back LIMITER_DOWN_DEFER_S later, and goes once the limiter answers
    assert await the_worker.drain() == 0
    limiter.down = False
    harness.clock.advance(LIMITER_DOWN_DEFER_S)
    assert await the_worker.drain() == 1
    assert await states(harness, limited) == Counter({"succeeded/1": 1})
    assert await states(harness, unlimited) == Counter({"succeeded/1": 1})


async def test_a_limited_endpoint_at_its_cap_loses_nothing(harness: Harness) -> None:
    # Given a limited endpoint with one slot, and four deliveries to it
    endpoint_id = await harness.add_endpoint(rate_limit_per_s=10.0)
    for _ in range(4):
        await harness.publish()
    the_worker = worker(harness, endpoint_concurrency=1)

    # When batches run as the clock moves, the cap and the rate both turn claims away
    made = []
    for _ in range(8):
        made.append(await the_worker.drain())
        harness.clock.advance(1)
        assert the_worker._sending == 0

    # Then every delivery was sent once, with one attempt
    assert sum(made) == 4
    assert await states(harness, endpoint_id) == Counter({"succeeded/1": 4})
