"""What only ``RedisQueue`` has: its key layout, its Lua scripts, its client and its failures.

The behaviour every backend shares is in ``test_contract.py``.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from hookline.errors import Unavailable
from hookline.queue import QueueKeys, RedisQueue
from hookline.queue.redis_queue import to_ms

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SCRIPTS = ("claim", "schedule", "release", "extend", "recover")


@pytest.fixture
async def queue(redis_client: aioredis.Redis, redis_prefix: str) -> RedisQueue:
    return RedisQueue(redis_client, keys=QueueKeys(redis_prefix))


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def unreachable() -> AsyncIterator[RedisQueue]:
    queue = RedisQueue.from_url(f"redis://127.0.0.1:{closed_port()}/0", connect_timeout_s=2)
    yield queue
    await queue.close()


def test_keys_share_one_hash_tag_so_scripts_touch_one_cluster_slot() -> None:
    keys = QueueKeys("app:")

    assert keys.due == "app:{queue}:due"
    assert keys.inflight == "app:{queue}:inflight"
    assert key_slot(keys.due.encode()) == key_slot(keys.inflight.encode())
    assert QueueKeys().due == "hookline:{queue}:due"


def test_a_prefix_with_braces_is_refused() -> None:
    # A brace in the prefix would replace our hash tag and split the two keys across slots.
    with pytest.raises(ValueError, match="braces"):
        QueueKeys("tenant{a}:")


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_ships_with_its_header_and_takes_now_from_argv(name: str) -> None:
    source = resources.files("hookline.queue").joinpath("lua", f"{name}.lua").read_text("utf-8")
    header = source.split("\n\n", 1)[0]

    assert header.startswith(f"-- {name}.lua:")
    assert "KEYS[1]" in header
    assert "KEYS[2]" in header
    assert "ARGV" in header
    assert "'TIME'" not in source.upper()  # now_ms comes in ARGV, never redis.call('TIME')
    assert '"TIME"' not in source.upper()


async def test_scores_are_due_times_and_lease_deadlines_in_milliseconds(
    queue: RedisQueue, redis_client: aioredis.Redis
) -> None:
    keys = queue.keys
    await queue.schedule_retry("dlv_a", due_at=T0 + timedelta(milliseconds=1500))

    assert await redis_client.zscore(keys.due, "dlv_a") == to_ms(T0) + 1500
    assert await redis_client.zscore(keys.inflight, "dlv_a") is None

    now = T0 + timedelta(seconds=2)
    assert await queue.get_due_retries(now=now, limit=10, lease_s=30.5) == ["dlv_a"]

    assert await redis_client.zscore(keys.due, "dlv_a") is None
    assert await redis_client.zscore(keys.inflight, "dlv_a") == to_ms(now) + 30_500


def test_to_ms_counts_whole_milliseconds_since_the_epoch_and_refuses_naive_times() -> None:
    assert to_ms(datetime(1970, 1, 1, 0, 0, 1, 2500, tzinfo=UTC)) == 1002
    with pytest.raises(ValueError, match="timezone-aware"):
        to_ms(datetime(2026, 1, 1))


async def test_batches_larger_than_a_script_chunk_move_every_id(
    queue: RedisQueue, redis_client: aioredis.Redis
) -> None:
    # 2,345 ids: several of the scripts' 1,000-argument chunks and of add_missing's batches.
    ids = [f"dlv_{n:05d}" for n in range(2345)]
    await queue.schedule_many([(i, T0 + timedelta(milliseconds=n)) for n, i in enumerate(ids)])

    assert await redis_client.zcard(queue.keys.due) == 2345
    # every id is already due, only the absent one is added (due after all the others)
    late = T0 + timedelta(seconds=3)
    assert await queue.add_missing([(i, late) for i in [*ids, "dlv_absent"]]) == 1
    ids.append("dlv_absent")

    claimed = await queue.get_due_retries(now=T0 + timedelta(hours=1), limit=5000, lease_s=60)

    assert claimed == ids
    assert await redis_client.zcard(queue.keys.due) == 0
    assert await redis_client.zcard(queue.keys.inflight) == 2346

    recovered = await queue.recover_expired(now=T0 + timedelta(hours=2), limit=5000)

    assert recovered == 2346
    assert await redis_client.zcard(queue.keys.due) == 2346
    assert await redis_client.zcard(queue.keys.inflight) == 0


async def test_a_client_that_decodes_responses_gets_the_same_ids(
    redis_url: str, redis_prefix: str
) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    queue = RedisQueue(client, keys=QueueKeys(redis_prefix))
    try:
        await queue.schedule_retry("dlv_text", due_at=T0)
        assert await queue.get_due_retries(now=T0, limit=1, lease_s=5) == ["dlv_text"]
        assert await queue.add_missing([("dlv_text", T0), ("dlv_other", T0)]) == 1
    finally:
        await client.aclose()


async def test_ping_against_a_closed_port_raises_unavailable(unreachable: RedisQueue) -> None:
    with pytest.raises(Unavailable, match="Redis is unreachable") as caught:
        await unreachable.ping()

    assert isinstance(caught.value.__cause__, RedisConnectionError)


async def test_every_operation_maps_a_lost_connection_to_unavailable(
    unreachable: RedisQueue,
) -> None:
    with pytest.raises(Unavailable):
        await unreachable.get_due_retries(now=T0, limit=1, lease_s=5)
    with pytest.raises(Unavailable):
        await unreachable.schedule_retry("dlv_a", due_at=T0)
    with pytest.raises(Unavailable):
        await unreachable.complete_retry(["dlv_a"])
    with pytest.raises(Unavailable):
        await unreachable.add_missing([("dlv_a", T0)])
    with pytest.raises(Unavailable):
        await unreachable.depth()


async def test_close_closes_only_a_client_the_queue_built(
    redis_url: str, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    borrowed = RedisQueue(redis_client, keys=QueueKeys(redis_prefix))
    await borrowed.close()
    assert await redis_client.ping() is True  # still usable by its owner

    owned = RedisQueue.from_url(redis_url, prefix=redis_prefix)
    await owned.ping()
    await owned.close()
    await owned.close()  # idempotent
