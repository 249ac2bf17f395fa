"""``EventService``: publish an event, fan it out to subscribed endpoints, refuse when full.

Ingest never drops: when the queue holds more than ``RETRY_QUEUE_MAX_SIZE`` deliveries, publish
raises ``Backpressure`` (503 + Retry-After) instead of accepting what it cannot schedule. The
event and its deliveries are committed before the queue hears of them; if enqueueing fails after
the commit, the sweeper finds the deliveries due in SQL and missing from the queue.

An idempotency key names one event: a repeat with the same ``event_type`` and the same payload
gets the first event back and creates nothing; the same key with other content is a ``Conflict``
(409), checked again after losing the insert race to a concurrent first request with that key.
"Same payload" means equal JSON values: object key order and whitespace do not matter, numbers
compare by value within their kind (``1.0`` and ``1e0`` are equal, ``1`` and ``1.0`` are not: they
would be signed and sent as different bytes; ``true`` is never ``1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookline import ids
from hookline.clock import Clock
from hookline.domain.states import DeliveryState
from hookline.errors import Backpressure, Conflict, HooklineError, PayloadTooLarge
from hookline.observability.logging import get_logger
from hookline.observability.metrics import Metrics
from hookline.queue.base import DelayedQueue
from hookline.storage.models import Delivery, Event
from hookline.storage.repositories import events as repo

log = get_logger("hookline.events")

DEPTH_CACHE_S: Final = 1.0
"""How long a measured queue depth is reused: bounds the cost of the check per publish."""
BACKPRESSURE_RETRY_AFTER_S: Final = 5
"""What a refused publisher is told to wait (seconds) before trying again."""


@dataclass(frozen=True, slots=True)
class PublishResult:
    """The event, its deliveries, and whether this call created them (False: idempotent repeat)."""

    event: Event
    deliveries: list[Delivery]
    created: bool


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
    ) -> None:
        self._sessions = sessions
        self._queue = queue
        self._clock = clock
        self._metrics = metrics
        self._max_payload_bytes = max_payload_bytes
        self._queue_max_size = queue_max_size
        self._depth: int | None = None
        self._depth_measured_at = 0.0

    async def publish(
        self, *, event_type: str, payload: Any, idempotency_key: str | None = None
    ) -> PublishResult:
        """Store the event and one ``pending`` delivery per subscribed active endpoint.

        A repeat with the same ``idempotency_key``, ``event_type`` and payload returns the first
        event and creates nothing. Raises ``Conflict`` for a key already used with another
        ``event_type`` or payload, ``PayloadTooLarge`` and ``Backpressure``.
        """
        body = orjson.dumps(payload).decode()
        size = len(body.encode())
        if size > self._max_payload_bytes:
            raise PayloadTooLarge(size, self._max_payload_bytes)
        if idempotency_key is not None:
            existing = await self._existing(idempotency_key)
            if existing is not None:
                return _same_content(existing, event_type=event_type, payload=payload)
        await self._check_backpressure()

        now = self._clock.now()
        event = Event(
            id=ids.new_id(ids.EVENT),
            event_type=event_type,
            payload=body,
            idempotency_key=idempotency_key,
            created_at=now,
        )
        try:
            async with self._sessions.begin() as session:
                endpoint_ids = await repo.subscribed_endpoint_ids(session, event_type=event_type)
                deliveries = [
                    Delivery(
                        id=ids.new_id(ids.DELIVERY),
                        event_id=event.id,
                        endpoint_id=endpoint_id,
                        state=DeliveryState.PENDING.value,
                        attempt_number=0,
                        round_start_attempt=0,
                        next_attempt_at=now,
                        created_at=now,
                        updated_at=now,
                        version=0,
                    )
                    for endpoint_id in endpoint_ids
                ]
                await repo.add_event(session, event=event, deliveries=deliveries)
        except IntegrityError:
            if idempotency_key is None:
                raise
            existing = await self._existing(idempotency_key)  # lost a race with the same key
            if existing is None:
                raise
            return _same_content(existing, event_type=event_type, payload=payload)

        self._metrics.events_published_total.inc()
        if self._depth is not None:
            self._depth += len(deliveries)
        try:
            # add_missing, not schedule_many: a worker may have claimed them already (SQL queue)
            # or the sweeper may have queued them, and a claim must never be doubled.
            await self._queue.add_missing([(d.id, now) for d in deliveries])
        except HooklineError as exc:
            # Committed already: the sweeper enqueues what is due in SQL and missing here.
            log.warning("event.enqueue_failed", event_id=event.id, error=str(exc))
        return PublishResult(event=event, deliveries=deliveries, created=True)

    async def _existing(self, idempotency_key: str) -> PublishResult | None:
        async with self._sessions() as session:
            found = await repo.find_by_idempotency_key(session, idempotency_key=idempotency_key)
        if found is None:
            return None
        event, deliveries = found
        return PublishResult(event=event, deliveries=deliveries, created=False)

    async def _check_backpressure(self) -> None:
        now_s = self._clock.monotonic()
        if self._depth is None or now_s - self._depth_measured_at >= DEPTH_CACHE_S:
            self._depth = await self._queue.depth()
            self._depth_measured_at = now_s
            self._metrics.queue_depth.set(self._depth)
        if self._depth >= self._queue_max_size:
            self._metrics.backpressure_total.inc()
            raise Backpressure(
                self._depth, self._queue_max_size, retry_after_s=BACKPRESSURE_RETRY_AFTER_S
            )


def _same_content(existing: PublishResult, *, event_type: str, payload: Any) -> PublishResult:
    """``existing`` if it was published with this ``event_type`` and an equal payload; else
    ``Conflict`` naming what differs."""
    event = existing.event
    different: list[str] = []
    if event.event_type != event_type:
        different.append("event_type")
    if _canonical(orjson.loads(event.payload)) != _canonical(payload):
        different.append("payload")
    if different:
        raise Conflict(
            f"idempotency_key {event.idempotency_key!r} was already used for event {event.id} "
            f"with a different {' and '.join(different)}; a different event needs a new key"
        )
    return existing


def _canonical(value: Any) -> bytes:
    """``value`` as compact JSON with sorted keys: equal for equal JSON values (see above)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
