"""``EventService``: publish an event, fan it out to subscribed endpoints, refuse when full.

Ingest never drops: when the queue holds more than ``RETRY_QUEUE_MAX_SIZE`` deliveries, publish
raises ``Backpressure`` (503 + Retry-After) instead of accepting what it cannot schedule. A
refused publish writes nothing. An accepted one goes to the ``EventWriter``, which commits
concurrent publishes together (one transaction per group), then tells the queue, then answers:
the event and its deliveries are committed before the queue hears of them, and the publisher
hears of them last; if enqueueing fails after the commit, the sweeper finds the deliveries due in
SQL and missing from the queue.

An idempotency key names one event: a repeat with the same ``event_type`` and the same payload
gets the first event back and creates nothing; the same key with other content is a ``Conflict``
(409), checked again after losing the insert race to a concurrent first request with that key.
"Same payload" means equal JSON values: object key order and whitespace do not matter, numbers
compare by value within their kind (``1.0`` and ``1e0`` are equal, ``1`` and ``1.0`` are not: they
would be signed and sent as different bytes; ``true`` is never ``1``).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any, Final

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookline.clock import Clock
from hookline.errors import Backpressure, HooklineError, PayloadTooLarge
from hookline.observability.metrics import Metrics
from hookline.observability.tracing import Tracing
from hookline.queue.base import DelayedQueue
from hookline.service.event_writer import EventWriter, PublishResult, find_stored, same_content

__all__ = ["BACKPRESSURE_RETRY_AFTER_S", "DEPTH_CACHE_S", "EventService", "PublishResult"]

DEPTH_CACHE_S: Final = 1.0
"""How long a measured queue depth is reused: bounds the cost of the check per publish."""
BACKPRESSURE_RETRY_AFTER_S: Final = 5
"""What a refused publisher is told to wait (seconds) before trying again."""


class EventService:
    """Publishing and fan-out."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        queue: DelayedQueue,
        clock: Clock,
        metrics: Metrics,
        max_payload_bytes: int,
        queue_max_size: int,
        tracing: Tracing | None = None,
    ) -> None:
        self._sessions = sessions
        self._queue = queue
        self._clock = clock
        self._metrics = metrics
        self._max_payload_bytes = max_payload_bytes
        self._queue_max_size = queue_max_size
        self._tracing = tracing
        self._depth: int | None = None
        self._depth_measured_at = 0.0
        self._measuring = asyncio.Lock()
        self.writer = EventWriter(sessions=sessions, queue=queue, clock=clock)

    async def publish(
        self, *, event_type: str, payload: Any, idempotency_key: str | None = None
    ) -> PublishResult:
        """Store the event and one ``pending`` delivery per subscribed active endpoint.

        A repeat with the same ``idempotency_key``, ``event_type`` and payload returns the first
        event and creates nothing. Raises ``Conflict`` for a key already used with another
        ``event_type`` or payload, ``PayloadTooLarge`` and ``Backpressure``; ``Unavailable``
        when the database is unreachable (nothing written) or hookline is shutting down.
        """
        body = orjson.dumps(payload).decode()
        size = len(body.encode())
        if size > self._max_payload_bytes:
            raise PayloadTooLarge(size, self._max_payload_bytes)
        try:
            await self._check_backpressure()
        except HooklineError:
            # A repeat is answered even when new events are refused (nothing new is created).
            existing = None if idempotency_key is None else await self._stored(idempotency_key)
            if existing is None:
                raise
            return same_content(existing, event_type=event_type, payload=payload)
        write = partial(
            self.writer.write,
            event_type=event_type,
            payload=payload,
            body=body,
            size_bytes=size,
            key=idempotency_key,
        )
        if self._tracing is None:
            result = await write()
        else:
            with self._tracing.publishing(event_type) as (span, traceparent):
                result = await write(trace_context=traceparent)
                span.set_attributes(
                    {
                        "hookline.event.id": result.event.id,
                        "hookline.deliveries": len(result.deliveries),
                        "hookline.created": result.created,
                    }
                )
        if result.created:
            self._metrics.events_published_total.inc()
            if self._depth is not None:
                self._depth += len(result.deliveries)
        return result

    def _depth_stale(self) -> bool:
        return (
            self._depth is None
            or self._clock.monotonic() - self._depth_measured_at >= DEPTH_CACHE_S
        )

    async def close(self) -> None:
        """Refuse new events; return once every accepted one is written and answered."""
        await self.writer.close()

    async def _stored(self, idempotency_key: str) -> PublishResult | None:
        return await find_stored(self._sessions, idempotency_key)

    async def _check_backpressure(self) -> None:
        if self._depth_stale():
            # One measurement at a time: the publishers arriving meanwhile wait for it rather
            # than each counting the queue again (a COUNT over the deliveries table on SQL).
            async with self._measuring:
                if self._depth_stale():
                    measured_at = self._clock.monotonic()
                    self._depth = await self._queue.depth()
                    self._depth_measured_at = measured_at
        assert self._depth is not None
        if self._depth >= self._queue_max_size:
            self._metrics.backpressure_total.inc()
            raise Backpressure(
                self._depth, self._queue_max_size, retry_after_s=BACKPRESSURE_RETRY_AFTER_S
            )
