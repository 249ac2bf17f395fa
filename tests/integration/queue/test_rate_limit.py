"""The ``RateLimiter`` contract, one suite against both backends, and what only Redis has.

``limiter`` is parametrised over ``local`` (``LocalRateLimiter``) and ``redis``
(``RedisRateLimiter`` on a real Redis under this test's key prefix). Time is a ``ManualClock``:
the Lua script takes ``now`` from its arguments, so both backends answer the same to the
millisecond.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from importlib import resources

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from hookline.clock import ManualClock
from hookline.errors import Unavailable
from hookline.queue import QueueKeys
from hookline.queue.rate_limit import (
    BUCKET_MIN_IDLE_MS,
    LocalRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    TokenGrant,
    TokenRequest,
)

pytestmark = pytest.mark.integration

BACKENDS = ["local", "redis"]


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def want(endpoint_id: str, rate_per_s: float, count: int) -> TokenRequest:
    return TokenRequest(endpoint_id=endpoint_id, rate_per_s=rate_per_s, count=count)


@pytest.fixture(params=BACKENDS)
def limiter(request: pytest.FixtureRequest) -> RateLimiter:
    if request.param == "local":
        return LocalRateLimiter()
    client: aioredis.Redis = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("redis_prefix")
    return RedisRateLimiter(client, keys=QueueKeys(prefix))


async def take_one(
    limiter: RateLimiter, clock: ManualClock, rate_per_s: float, count: int, endpoint: str = "ep_a"
) -> TokenGrant:
    [grant] = await limiter.take([want(endpoint, rate_per_s, count)], now=clock.now())
    return grant


# the contract ----------------------------------------------------------------------------------


async def test_a_new_bucket_grants_one_seconds_worth_at_once(
    limiter: RateLimiter, clock: ManualClock
) -> None:
    t0 = clock.now()

    grant = await take_one(limiter, clock, 2, 5)

    assert grant == TokenGrant(granted=2, next_token_at=t0 + seconds(0.5))


async def test_it_refills_at_its_rate_up_to_one_seconds_worth(
    limiter: RateLimiter, clock: ManualClock
) -> None:
    # Given a bucket of 2/s emptied at t0
    assert (await take_one(limiter, clock, 2, 2)).granted == 2

    # When half a second passes, one token is back; the next is half a second further
    clock.advance(0.5)
    assert await take_one(limiter, clock, 2, 3) == TokenGrant(
        granted=1, next_token_at=clock.now() + seconds(0.5)
    )

    # And a long pause refills it to one second's worth, never more
    clock.advance(10)
    assert (await take_one(limiter, clock, 2, 5)).granted == 2


async def test_a_rate_under_one_per_second_holds_one_whole_token(
    limiter: RateLimiter, clock: ManualClock
) -> None:
    t0 = clock.now()
    assert await take_one(limiter, clock, 0.5, 3) == TokenGrant(
        granted=1, next_token_at=t0 + seconds(2)
    )

    clock.advance(1.999)
    assert await take_one(limiter, clock, 0.5, 1) == TokenGrant(
        granted=0, next_token_at=t0 + seconds(2)
    )

    clock.advance(0.001)
    assert (await take_one(limiter, clock, 0.5, 2)).granted == 1


async def test_the_wait_counts_the_part_of_a_token_already_refilled(
    limiter: RateLimiter, clock: ManualClock
) -> None:
    # 4/s emptied, then 0.1 s refills 0.4 token: the whole one is 0.15 s away
    await take_one(limiter, clock, 4, 4)
    clock.advance(0.1)

    assert await take_one(limiter, clock, 4, 1) == TokenGrant(
        granted=0, next_token_at=clock.now() + seconds(0.15)
    )


async def test_a_fractional_rate_above_one_keeps_its_fraction(
    limiter: RateLimiter, clock: ManualClock
) -> None:
    # 2.5/s holds 2.5 tokens: 2 go, half a token is left, and 0.2 s later there is one
    assert (await take_one(limiter, clock, 2.5, 3)).granted == 2
    clock.advance(0.2)

    assert (await take_one(limiter, clock, 2.5, 3)).granted == 1


async def test_one_call_answers_for_each_endpoint_in_order_and_buckets_are_apart(
    limiter: RateLimiter, clock: ManualClock
) -> None:
    now = clock.now()

    grants = await limiter.take(
        [want("ep_a", 1, 3), want("ep_b", 10, 3), want("ep_c", 2, 0)], now=now
    )

    assert grants == [
        TokenGrant(granted=1, next_token_at=now + seconds(1)),
        TokenGrant(granted=3, next_token_at=now),
        TokenGrant(granted=0, next_token_at=now),  # nothing asked, nothing taken
    ]
    assert (await take_one(limiter, clock, 2, 5, endpoint="ep_c")).granted == 2
    assert (await take_one(limiter, clock, 10, 20, endpoint="ep_b")).granted == 7
    assert await limiter.take([], now=now) == []


async def test_an_endpoint_named_twice_takes_from_its_bucket_twice(
    limiter: RateLimiter, clock: ManualClock
) -> None:
    grants = await limiter.take([want("ep_a", 3, 2), want("ep_a", 3, 2)], now=clock.now())

    assert [g.granted for g in grants] == [2, 1]


async def test_a_caller_whose_clock_is_behind_refills_nothing(
    limiter: RateLimiter, clock: ManualClock
) -> None:
    # Given a bucket emptied at t0 + 1 s by a worker whose clock is ahead
    t0 = clock.now()
    await limiter.take([want("ep_a", 1, 1)], now=t0 + seconds(1))

    # When a worker whose clock says t0 asks, then the first one asks again at t0 + 1.5 s
    behind = await limiter.take([want("ep_a", 1, 1)], now=t0)
    ahead = await limiter.take([want("ep_a", 1, 1)], now=t0 + seconds(1.5))

    # Then the earlier clock neither got a token nor moved the bucket's time back
    assert behind[0].granted == 0
    assert ahead[0].granted == 0


async def test_concurrent_callers_never_share_a_token(
    limiter: RateLimiter, clock: ManualClock
) -> None:
    now = clock.now()

    grants = await asyncio.gather(*(limiter.take([want("ep_a", 5, 1)], now=now) for _ in range(20)))

    assert sum(g.granted for [g] in grants) == 5


# what only Redis has ---------------------------------------------------------------------------


@pytest.fixture
def keys(redis_prefix: str) -> QueueKeys:
    return QueueKeys(redis_prefix)


async def test_two_workers_share_one_bucket(
    redis_url: str, keys: QueueKeys, clock: ManualClock
) -> None:
    # Given two workers, each with its own connection, limiting one endpoint to 2/s
    first_client, second_client = aioredis.from_url(redis_url), aioredis.from_url(redis_url)
    try:
        first = RedisRateLimiter(first_client, keys=keys)
        second = RedisRateLimiter(second_client, keys=keys)

        # When the first takes the burst, the second gets nothing until the next token
        assert (await take_one(first, clock, 2, 2)).granted == 2
        assert await take_one(second, clock, 2, 2) == TokenGrant(
            granted=0, next_token_at=clock.now() + seconds(0.5)
        )

        # Then each token goes to one of them only
        clock.advance(0.5)
        assert (await take_one(second, clock, 2, 2)).granted == 1
        assert (await take_one(first, clock, 2, 2)).granted == 0
    finally:
        await first_client.aclose()
        await second_client.aclose()


async def test_buckets_live_under_the_prefix_in_one_slot_and_expire_when_unused(
    redis_client: aioredis.Redis, keys: QueueKeys, clock: ManualClock
) -> None:
    limiter = RedisRateLimiter(redis_client, keys=keys)

    await limiter.take([want("ep_a", 2, 1), want("ep_b", 0.001, 1)], now=clock.now())

    bucket_a, bucket_b = keys.rate_bucket("ep_a"), keys.rate_bucket("ep_b")
    assert bucket_a == f"{keys.prefix}{{rate}}:ep_a"
    assert key_slot(bucket_a.encode()) == key_slot(bucket_b.encode())
    assert set(await redis_client.hkeys(bucket_a)) == {b"tokens", b"ts"}
    # Kept a minute at least, and for as long as an empty bucket takes to fill up (1000 s here)
    assert 0 < await redis_client.pttl(bucket_a) <= BUCKET_MIN_IDLE_MS
    assert BUCKET_MIN_IDLE_MS < await redis_client.pttl(bucket_b) <= 1_000_000


async def test_a_missing_bucket_is_a_full_one(
    redis_client: aioredis.Redis, keys: QueueKeys, clock: ManualClock
) -> None:
    limiter = RedisRateLimiter(redis_client, keys=keys)
    await take_one(limiter, clock, 3, 3)

    await redis_client.delete(keys.rate_bucket("ep_a"))  # expired

    assert (await take_one(limiter, clock, 3, 5)).granted == 3


async def test_another_prefix_has_buckets_of_its_own(
    redis_client: aioredis.Redis, keys: QueueKeys, clock: ManualClock
) -> None:
    ours = RedisRateLimiter(redis_client, keys=keys)
    theirs = RedisRateLimiter(redis_client, keys=QueueKeys(f"{keys.prefix}other:"))

    assert (await take_one(ours, clock, 1, 1)).granted == 1
    assert (await take_one(theirs, clock, 1, 1)).granted == 1


def test_the_script_ships_with_its_header_and_takes_now_from_argv() -> None:
    source = resources.files("hookline.queue").joinpath("lua", "rate_limit.lua").read_text("utf-8")
    header = source.split("\n\n", 1)[0]

    assert header.startswith("-- rate_limit.lua:")
    assert "KEYS[i]" in header
    assert "ARGV[1]      now_ms" in header
    assert "'TIME'" not in source.upper()
    assert '"TIME"' not in source.upper()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def unreachable() -> AsyncIterator[RedisRateLimiter]:
    client = aioredis.from_url(f"redis://127.0.0.1:{closed_port()}/0", socket_connect_timeout=2)
    yield RedisRateLimiter(client, keys=QueueKeys())
    await client.aclose()


async def test_an_unreachable_redis_is_unavailable(
    unreachable: RedisRateLimiter, clock: ManualClock
) -> None:
    with pytest.raises(Unavailable, match="Redis is unreachable") as caught:
        await take_one(unreachable, clock, 1, 1)

    assert isinstance(caught.value.__cause__, RedisConnectionError)
