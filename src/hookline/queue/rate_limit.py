"""Per-endpoint rate limits: a token bucket per endpoint, shared by all workers or per process.

A bucket holds at most ``max(1, rate)`` tokens (one second's worth, and one whole token at least
so that a rate under 1/s can send at all), starts full and refills at ``rate`` tokens per second;
each request sent takes one. ``take`` asks for the buckets of several endpoints at once and
answers, per endpoint, how many may go now and, for the rest, when the next token is there.
Time is the caller's ``now``: neither backend reads a clock, so workers on machines with a skewed
Redis clock agree and tests drive both with a ``ManualClock``.

- ``RedisRateLimiter`` (PostgreSQL + Redis): one Lua script call per ``take`` whatever the number
  of endpoints (``lua/rate_limit.lua``); the buckets are hashes under the queue's key prefix
  (``QueueKeys.rate_bucket``), shared by every worker on that Redis, so the limit holds across
  worker processes and machines. A bucket expires once unused long enough to be full again.
- ``LocalRateLimiter`` (the embedded mode: SQL queue, no Redis): the same buckets in a dict, so
  the limit holds *per process*: several ``hookline serve`` processes on one SQLite file each
  allow the full rate.

Errors: ``RedisRateLimiter.take`` raises ``hookline.errors.Unavailable`` when Redis cannot be
reached (the driver's error as ``__cause__``), like the queue.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

import redis.asyncio as aioredis

from hookline.queue.keys import QueueKeys
from hookline.queue.redis_queue import mapped_errors, script_source, to_ms

BUCKET_MIN_IDLE_MS: Final = 60_000
"""Least time an unused bucket is kept (longer when it takes longer to fill up again): a key
that lives a while costs nothing, one that comes and goes every second costs a write each time."""
LOCAL_PRUNE_INTERVAL_MS: Final = 60_000
"""How often ``LocalRateLimiter`` drops the buckets that are full again (= absent)."""
_EPSILON: Final = 1e-9
"""A bucket refilled to 0.9999999999 token by float error holds a whole one (as in the script)."""


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """``count`` tokens wanted now from the bucket of ``endpoint_id``, which refills at
    ``rate_per_s`` tokens per second."""

    endpoint_id: str
    rate_per_s: float
    count: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_per_s) and self.rate_per_s > 0):
            raise ValueError(f"a rate limit must be a positive number, got {self.rate_per_s!r}")
        if self.count < 0:
            raise ValueError(f"cannot take {self.count} tokens")


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """The answer to one ``TokenRequest``."""

    granted: int
    """How many of the requested may go now (0 to ``count``)."""
    next_token_at: datetime
    """When the bucket holds its next whole token, when fewer than ``count`` were granted (the
    earliest the first of the rest may go); ``now`` when all were."""


class RateLimiter(Protocol):
    """Token buckets of rate-limited endpoints."""

    async def take(self, requests: Sequence[TokenRequest], *, now: datetime) -> list[TokenGrant]:
        """Take up to ``count`` tokens from each request's bucket; one grant per request, in order.

        Atomic per bucket: two callers at once never get the same token. Tokens granted are
        spent (the caller must not send more than ``granted``; sending fewer wastes them). A
        bucket never seen, or unused long enough to be full again, is full. A ``now`` earlier
        than the bucket's last one refills nothing. Requests naming one endpoint twice take
        from its bucket twice, in order. An empty sequence does nothing.
        """
        ...


def take_tokens(
    tokens: float | None, ts_ms: int, *, rate_per_s: float, count: int, now_ms: int
) -> tuple[float, int, int, int]:
    """One bucket's arithmetic (``lua/rate_limit.lua`` runs the same): from ``tokens`` counted
    at ``ts_ms`` (``None``: a full bucket), take up to ``count`` at ``now_ms``. Returns the
    tokens left, when they were counted, how many were granted, and the ms until the next
    whole token (0 when all were granted)."""
    capacity = max(1.0, rate_per_s)
    if tokens is None:
        tokens, ts_ms = capacity, now_ms
    else:
        tokens = min(capacity, tokens + max(0, now_ms - ts_ms) * rate_per_s / 1000)
        ts_ms = max(ts_ms, now_ms)
    granted = min(count, math.floor(tokens + _EPSILON))
    tokens = max(0.0, tokens - granted)
    wait_ms = 0
    if granted < count:
        wait_ms = max(1, math.ceil((1 - tokens) * 1000 / rate_per_s))
    return tokens, ts_ms, granted, wait_ms


def _grant(granted: int, wait_ms: int, now: datetime) -> TokenGrant:
    return TokenGrant(granted=granted, next_token_at=now + timedelta(milliseconds=wait_ms))


class RedisRateLimiter:
    """The ``RateLimiter`` on Redis, shared by every worker that uses the same key prefix."""

    def __init__(
        self, client: aioredis.Redis, *, keys: QueueKeys, min_idle_ms: int = BUCKET_MIN_IDLE_MS
    ) -> None:
        self._client = client
        self._keys = keys
        self._min_idle_ms = min_idle_ms
        self._take = client.register_script(script_source("rate_limit"))

    async def take(self, requests: Sequence[TokenRequest], *, now: datetime) -> list[TokenGrant]:
        if not requests:
            return []
        args: list[int | float] = [to_ms(now), self._min_idle_ms]
        for request in requests:
            args += [request.rate_per_s, request.count]
        with mapped_errors("rate limit"):
            answer: list[int] = await self._take(
                keys=[self._keys.rate_bucket(r.endpoint_id) for r in requests], args=args
            )
        return [
            _grant(int(answer[2 * i]), int(answer[2 * i + 1]), now) for i in range(len(requests))
        ]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    ts_ms: int
    full_at_ms: int
    """When, unused, it is full again (and may be dropped)."""


class LocalRateLimiter:
    """The ``RateLimiter`` in this process's memory (the embedded mode: one process, no Redis).

    Memory is bounded by the endpoints used lately: every ``LOCAL_PRUNE_INTERVAL_MS`` the
    buckets that are full again are dropped (a missing bucket is a full one, so this changes
    no answer)."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._next_prune_ms: int | None = None

    def __len__(self) -> int:
        """Buckets held right now."""
        return len(self._buckets)

    async def take(self, requests: Sequence[TokenRequest], *, now: datetime) -> list[TokenGrant]:
        now_ms = to_ms(now)
        self._prune(now_ms)
        grants: list[TokenGrant] = []
        for request in requests:
            bucket = self._buckets.get(request.endpoint_id)
            tokens, ts_ms, granted, wait_ms = take_tokens(
                None if bucket is None else bucket.tokens,
                0 if bucket is None else bucket.ts_ms,
                rate_per_s=request.rate_per_s,
                count=request.count,
                now_ms=now_ms,
            )
            missing = max(1.0, request.rate_per_s) - tokens
            self._buckets[request.endpoint_id] = _Bucket(
                tokens=tokens,
                ts_ms=ts_ms,
                full_at_ms=ts_ms + math.ceil(missing * 1000 / request.rate_per_s),
            )
            grants.append(_grant(granted, wait_ms, now))
        return grants

    def _prune(self, now_ms: int) -> None:
        if self._next_prune_ms is not None and now_ms < self._next_prune_ms:
            return
        self._next_prune_ms = now_ms + LOCAL_PRUNE_INTERVAL_MS
        full = [key for key, bucket in self._buckets.items() if bucket.full_at_ms <= now_ms]
        for key in full:
            del self._buckets[key]
