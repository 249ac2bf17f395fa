"""``RedisQueue``: due times in two Redis sorted sets, every move between them one Lua script.

The key layout is in ``hookline.queue.keys``; the scripts are ``queue/lua/*.lua``, each opening
with its KEYS and ARGV. Times travel as whole milliseconds since the Unix epoch, computed from the
caller's ``now`` (the scripts never ask Redis for the time), so tests drive the queue with a
``ManualClock`` and workers on machines with a skewed Redis clock still agree.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Final, Self

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hookline.errors import Unavailable
from hookline.queue.base import require_aware, require_lease
from hookline.queue.keys import QueueKeys

ADD_MISSING_BATCH: Final = 500  # pairs per add_missing script call: bounds one script run
DEFAULT_CONNECT_TIMEOUT_S: Final = 5.0  # fail readiness fast instead of hanging a probe
DEFAULT_SOCKET_TIMEOUT_S: Final = 10.0  # a script is ms of work: 10 s means Redis is gone

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
# Errors that mean "Redis cannot be reached right now" (ReadOnlyError: a failover is under way).
_UNREACHABLE: Final = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)


def to_ms(when: datetime) -> int:
    """``when`` as whole milliseconds since the Unix epoch (the queue's score unit)."""
    return (require_aware(when) - _EPOCH) // _ONE_MS


def _lease_ms(lease_s: float) -> int:
    return max(1, round(require_lease(lease_s) * 1000))


def _as_str(member: bytes | str) -> str:
    return member.decode() if isinstance(member, bytes) else member


@functools.cache
def script_source(name: str) -> str:
    """The text of ``queue/lua/{name}.lua``, read from the installed package."""
    return resources.files("hookline.queue").joinpath("lua", f"{name}.lua").read_text("utf-8")


@contextmanager
def mapped_errors(action: str) -> Iterator[None]:
    """Redis being unreachable, as ``Unavailable`` naming ``action`` (the queue and the rate
    limiter share it)."""
    try:
        yield
    except _UNREACHABLE as exc:
        raise Unavailable(f"Redis is unreachable ({action}): {exc}") from exc


class RedisQueue:
    """The ``DelayedQueue`` on Redis (or Redis Cluster: both keys share one hash tag)."""

    leases_in_database = False

    def __init__(
        self, client: aioredis.Redis, *, keys: QueueKeys, owns_client: bool = False
    ) -> None:
        self._client = client
        self._keys = keys
        self._key_pair = [keys.due, keys.inflight]
        self._owns_client = owns_client
        self._closed = False
        self._claim = client.register_script(script_source("claim"))
        self._schedule = client.register_script(script_source("schedule"))
        self._release = client.register_script(script_source("release"))
        self._extend = client.register_script(script_source("extend"))
        self._recover = client.register_script(script_source("recover"))
        self._add_missing = client.register_script(script_source("add_missing"))

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "hookline:",
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        socket_timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S,
    ) -> Self:
        """A queue with its own client for ``url``; ``close()`` closes that client."""
        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=connect_timeout_s, socket_timeout=socket_timeout_s
        )
        return cls(client, keys=QueueKeys(prefix), owns_client=True)

    @property
    def client(self) -> aioredis.Redis:
        """The Redis client (tracing instruments it)."""
        return self._client

    @property
    def keys(self) -> QueueKeys:
        return self._keys

    async def schedule_retry(self, delivery_id: str, *, due_at: datetime) -> None:
        await self.schedule_many([(delivery_id, due_at)])

    async def schedule_many(self, items: Sequence[tuple[str, datetime]]) -> None:
        if not items:
            return
        args: list[str | int] = []
        for delivery_id, due_at in items:
            args += [to_ms(due_at), delivery_id]
        with mapped_errors("schedule"):
            await self._schedule(keys=self._key_pair, args=args)

    async def get_due_retries(self, *, now: datetime, limit: int, lease_s: float) -> list[str]:
        now_ms = to_ms(now)
        deadline_ms = now_ms + _lease_ms(lease_s)
        if limit <= 0:
            return []
        with mapped_errors("claim"):
            claimed: list[bytes | str] = await self._claim(
                keys=self._key_pair, args=[now_ms, limit, deadline_ms]
            )
        return [_as_str(member) for member in claimed]

    async def extend_lease(
        self, delivery_ids: Sequence[str], *, now: datetime, lease_s: float
    ) -> None:
        deadline_ms = to_ms(now) + _lease_ms(lease_s)
        if not delivery_ids:
            return
        with mapped_errors("extend lease"):
            await self._extend(keys=self._key_pair, args=[deadline_ms, *delivery_ids])

    async def next_due(self) -> datetime | None:
        with mapped_errors("next due"):
            first: list[Any] = await self._client.zrange(self._keys.due, 0, 0, withscores=True)
        if not first:
            return None
        _member, score = first[0]  # [(member, score)]
        return _EPOCH + int(score) * _ONE_MS

    async def complete_retry(self, delivery_ids: Sequence[str]) -> None:
        if not delivery_ids:
            return
        with mapped_errors("complete"):
            await self._client.zrem(self._keys.inflight, *delivery_ids)

    async def discard(self, delivery_ids: Sequence[str]) -> None:
        if not delivery_ids:
            return
        with mapped_errors("discard"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zrem(self._keys.due, *delivery_ids)
                pipe.zrem(self._keys.inflight, *delivery_ids)
                await pipe.execute()

    async def release(self, delivery_ids: Sequence[str], *, due_at: datetime) -> None:
        due_ms = to_ms(due_at)
        if not delivery_ids:
            return
        with mapped_errors("release"):
            await self._release(keys=self._key_pair, args=[due_ms, *delivery_ids])

    async def recover_expired(self, *, now: datetime, limit: int = 1000) -> int:
        now_ms = to_ms(now)
        if limit <= 0:
            return 0
        with mapped_errors("recover"):
            recovered: int = await self._recover(keys=self._key_pair, args=[now_ms, limit])
        return int(recovered)

    async def add_missing(self, items: Sequence[tuple[str, datetime]]) -> int:
        if not items:
            return 0
        added = 0
        with mapped_errors("add missing"):
            for start in range(0, len(items), ADD_MISSING_BATCH):
                args: list[str | int] = []
                for delivery_id, due_at in items[start : start + ADD_MISSING_BATCH]:
                    args += [to_ms(due_at), delivery_id]
                added += int(await self._add_missing(keys=self._key_pair, args=args))
        return added

    async def depth(self) -> int:
        with mapped_errors("depth"):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.zcard(self._keys.due)
                pipe.zcard(self._keys.inflight)
                due, inflight = await pipe.execute()
        return int(due) + int(inflight)

    async def ping(self) -> None:
        with mapped_errors("ping"):
            await self._client.ping()

    async def close(self) -> None:
        if self._owns_client and not self._closed:
            self._closed = True
            await self._client.aclose()
