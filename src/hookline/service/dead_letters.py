"""``DeadLetterService``: send failed (or cancelled) deliveries again, one or in bulk.

Re-queued deliveries reach the queue through ``add_missing``: on the SQL queue a worker may claim
one the moment it is committed, and that claim must not be ended by a second enqueue.

A re-send keeps the event id, so subscribers see the same ``webhook-id`` and can deduplicate; it
starts a fresh round of retries (budget and window) while the attempt counter keeps counting.

Only deliveries of an active endpoint are sent again. What is not, and why, has one vocabulary:
``endpoint_disabled`` / ``endpoint_deleted`` (``endpoint_<status>`` for any other inactive status)
names the reason in a manual retry's ``Conflict`` and counts the dead letters a replay skipped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookline.clock import Clock
from hookline.domain.states import RETRYABLE_BY_HAND, DeliveryState, EndpointStatus, values
from hookline.errors import Conflict, NotFound
from hookline.observability.logging import get_logger
from hookline.queue.base import DelayedQueue
from hookline.storage.models import Delivery, Endpoint
from hookline.storage.repositories import dead_letters as dead_letters_repo
from hookline.storage.repositories import deliveries as repo

log = get_logger("hookline.dead_letters")

REPLAY_CHUNK: Final = 1000
"""Deliveries re-queued per transaction in a bulk replay: bounds memory and lock time."""
ENDPOINT_DELETED: Final = "endpoint_deleted"


def skip_reason(*, status: str, deleted: bool) -> str:
    """Why deliveries of an endpoint that is deleted or not active are not sent again."""
    if deleted:
        return ENDPOINT_DELETED
    return f"endpoint_{status}"  # endpoint_disabled: the wording of repo.ENDPOINT_DISABLED


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """How many dead letters went back to the queue, and how many were left, by reason."""

    replayed: int
    skipped: dict[str, int]


class DeadLetterService:
    """Manual retry of one delivery and bulk replay of dead letters."""

    def __init__(
        self, *, sessions: async_sessionmaker[AsyncSession], queue: DelayedQueue, clock: Clock
    ) -> None:
        self._sessions = sessions
        self._queue = queue
        self._clock = clock

    async def retry_delivery(self, *, delivery_id: str) -> Delivery:
        """Put a ``failed`` or ``cancelled`` delivery back to ``pending``, due now.

        Raises ``NotFound`` for an unknown id and ``Conflict`` for any other state, or when its
        endpoint is disabled or deleted (enable it first: it would only be cancelled again).
        """
        now = self._clock.now()
        async with self._sessions.begin() as session:
            delivery = await repo.get_delivery(session, delivery_id=delivery_id)
            if delivery is None:
                raise NotFound("delivery", delivery_id)
            if delivery.state not in RETRYABLE_BY_HAND:
                raise Conflict(
                    f"delivery {delivery_id} is {delivery.state}; only failed or cancelled "
                    "deliveries can be retried"
                )
            endpoint = await repo.get_endpoint(session, endpoint_id=delivery.endpoint_id)
            if (
                endpoint is None
                or endpoint.deleted_at is not None
                or endpoint.status != EndpointStatus.ACTIVE
            ):
                raise Conflict(_refusal(delivery.endpoint_id, endpoint))
            requeued = await repo.requeue(
                session, now=now, states=values(RETRYABLE_BY_HAND), delivery_ids=[delivery_id]
            )
            if not requeued:  # changed under us between the read and the update
                raise Conflict(f"delivery {delivery_id} changed state; try again")
            await session.refresh(delivery)
        await self._queue.add_missing([(delivery_id, now)])
        log.info("delivery.manual_retry", job_id=delivery_id)
        return delivery

    async def replay(
        self, *, endpoint_id: str | None = None, since: datetime | None = None
    ) -> ReplayResult:
        """Re-queue every dead letter (``failed``), optionally of one endpoint and finished
        since a time, whose endpoint is active. Works in bounded chunks; returns how many went
        back, and how many matching ones stayed, by reason (``skip_reason``), counted in one
        grouped query once nothing is left to re-queue.

        Only deliveries that were dead when the replay began are taken, so a delivery that fails
        again while a long replay runs is not picked up twice (nor counted as skipped).
        """
        started = self._clock.now()
        if endpoint_id is not None:
            async with self._sessions() as session:
                if await repo.get_endpoint(session, endpoint_id=endpoint_id) is None:
                    raise NotFound("webhook", endpoint_id)
        total = 0
        while True:
            now = self._clock.now()
            async with self._sessions.begin() as session:
                ids = await repo.requeue(
                    session,
                    now=now,
                    states=(DeliveryState.FAILED.value,),
                    endpoint_id=endpoint_id,
                    completed_since=since,
                    completed_before=started,
                    only_active_endpoints=True,
                    limit=REPLAY_CHUNK,
                )
                if not ids:
                    left = await dead_letters_repo.count_left_behind(
                        session,
                        endpoint_id=endpoint_id,
                        completed_since=since,
                        completed_before=started,
                    )
                    break
            await self._queue.add_missing([(delivery_id, now) for delivery_id in ids])
            total += len(ids)
        skipped: Counter[str] = Counter()
        for group in left:
            reason = skip_reason(status=group.endpoint_status, deleted=group.endpoint_deleted)
            skipped[reason] += group.count
        log.info(
            "dead_letters.replayed", endpoint_id=endpoint_id, replayed=total, skipped=dict(skipped)
        )
        return ReplayResult(replayed=total, skipped=dict(sorted(skipped.items())))


def _refusal(endpoint_id: str, endpoint: Endpoint | None) -> str:
    """Why a manual retry is refused, with the reason code a replay counts it under."""
    if endpoint is None or endpoint.deleted_at is not None:  # None: the foreign key forbids it
        return f"webhook {endpoint_id} is deleted ({ENDPOINT_DELETED}); it sends nothing again"
    reason = skip_reason(status=endpoint.status, deleted=False)
    return f"webhook {endpoint_id} is {endpoint.status} ({reason}); enable it first"
