"""``LocalRateLimiter`` on a ``ManualClock``: the bucket's arithmetic, and its bounded memory.

The contract both backends keep (Redis included) is ``tests/integration/queue/test_rate_limit.py``.
"""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from hookline.clock import ManualClock
from hookline.queue.rate_limit import (
    LOCAL_PRUNE_INTERVAL_MS,
    LocalRateLimiter,
    TokenGrant,
    TokenRequest,
)


def want(rate_per_s: float, count: int, endpoint_id: str = "ep_a") -> TokenRequest:
    return TokenRequest(endpoint_id=endpoint_id, rate_per_s=rate_per_s, count=count)


async def take(limiter: LocalRateLimiter, clock: ManualClock, request: TokenRequest) -> TokenGrant:
    [grant] = await limiter.take([request], now=clock.now())
    return grant


async def test_burst_then_refill_at_two_per_second(clock: ManualClock) -> None:
    limiter = LocalRateLimiter()
    t0 = clock.now()

    # A burst of one second's worth, the rest told when the next token comes
    assert await take(limiter, clock, want(2, 10)) == TokenGrant(2, t0 + timedelta(seconds=0.5))
    # Then one token per half second, however many are asked for
    sent = []
    for _ in range(8):
        clock.advance(0.5)
        sent.append((await take(limiter, clock, want(2, 10))).granted)
    assert sent == [1] * 8
    # And a pause of a minute refills two, not 120
    clock.advance(60)
    assert (await take(limiter, clock, want(2, 10))).granted == 2


async def test_half_a_token_per_second_sends_one_every_two_seconds(clock: ManualClock) -> None:
    limiter = LocalRateLimiter()
    t0 = clock.now()

    granted_at = []
    for step in range(32):  # eight seconds in quarter seconds, one delivery always waiting
        grant = await take(limiter, clock, want(0.5, 1))
        if grant.granted:
            granted_at.append(step / 4)
        else:  # told the time of the next even second
            assert grant.next_token_at == t0 + timedelta(seconds=2 * (step // 8 + 1))
        clock.advance(0.25)

    assert granted_at == [0, 2, 4, 6]


async def test_the_time_of_the_next_token_is_when_a_whole_one_is_back(clock: ManualClock) -> None:
    limiter = LocalRateLimiter()
    await take(limiter, clock, want(3, 3))
    clock.advance(0.2)  # 0.6 token back: 0.4 missing at 3/s = 134 ms (rounded up to the ms)

    grant = await take(limiter, clock, want(3, 1))

    assert grant == TokenGrant(0, clock.now() + timedelta(milliseconds=134))
    clock.set(grant.next_token_at)
    assert (await take(limiter, clock, want(3, 1))).granted == 1


async def test_buckets_that_are_full_again_are_dropped(clock: ManualClock) -> None:
    # Given 1000 endpoints used once (at 10/s: full again 0.1 s later), and one at 0.01/s
    limiter = LocalRateLimiter()
    await limiter.take([want(10, 1, f"ep_{i}") for i in range(1000)], now=clock.now())
    await take(limiter, clock, want(0.01, 1, "ep_slow"))  # full again after 100 s
    assert len(limiter) == 1001

    # When the prune interval has passed, only the slow one, not full yet, is kept
    clock.advance(LOCAL_PRUNE_INTERVAL_MS / 1000)
    assert (await take(limiter, clock, want(10, 0, "ep_new"))).granted == 0
    assert len(limiter) == 2  # ep_slow and ep_new

    # And a dropped bucket answers as the full one it was
    assert (await take(limiter, clock, want(10, 20, "ep_7"))).granted == 10
    assert (await take(limiter, clock, want(0.01, 1, "ep_slow"))).granted == 0


@pytest.mark.parametrize("rate", [0, -1, math.nan, math.inf])
def test_a_rate_must_be_a_positive_number(rate: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        want(rate, 1)


def test_a_count_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="cannot take -1"):
        want(1, -1)
