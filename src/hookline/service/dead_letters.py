"""``DeadLetterService``: send failed (or cancelled) deliveries again: one, a chosen few, or in
bulk; and say beforehand what a replay would do.

Re-queued deliveries reach the queue through ``add_missing``: on the SQL queue a worker may claim
one the moment it is committed, and that claim must not be ended by a second enqueue.

A re-send keeps the event id, so subscribers see the same ``webhook-id`` and can deduplicate; it
starts a fresh round of retries (budget and window) while the attempt counter keeps counting.

Only deliveries of an active endpoint are sent again. What is not, and why, has one vocabulary:
``endpoint_disabled`` / ``endpoint_deleted`` (``endpoint_<status>`` for any other inactive status)
names the reason in a manual retry's ``Conflict`` and counts the dead letters a replay skipped;
a replay of chosen ids adds ``not_dead_letter`` for ids that are not (or no longer) ``failed``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
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
NOT_A_DEAD_LETTER: Final = "not_dead_letter"
"""Why a chosen id is not replayed: no delivery has it, or its delivery is not ``failed`` (it was
replayed or retried meanwhile)."""


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


@dataclass(frozen=True, slots=True)
class ReplayPreview:
    """What a replay would do if it ran now: how many deliveries it is asked to take
    (``matching``), and how many of those it would leave, by reason (its ``skipped``)."""

    matching: int
    skipped: dict[str, int]

    @property
    def replayable(self) -> int:
        """How many would go back to the queue."""
        return self.matching - sum(self.skipped.values())


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
        self,
        *,
        endpoint_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> ReplayResult:
        """Re-queue every dead letter (``failed``), optionally of one endpoint and finished
        since a time (and before ``until``, not at it), whose endpoint is active. Works in
        bounded chunks; returns how many went back, and how many matching ones stayed, by reason
        (``skip_reason``), counted in one grouped query once nothing is left to re-queue.

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
                    completed_until=until,
                    only_active_endpoints=True,
                    limit=REPLAY_CHUNK,
                )
                if not ids:
                    left = await dead_letters_repo.count_left_behind(
                        session,
                        endpoint_id=endpoint_id,
                        completed_since=since,
                        completed_before=started,
                        completed_until=until,
                    )
                    break
            await self._queue.add_missing([(delivery_id, now) for delivery_id in ids])
            total += len(ids)
        skipped = _by_reason(left)
        log.info(
            "dead_letters.replayed", endpoint_id=endpoint_id, replayed=total, skipped=dict(skipped)
        )
        return ReplayResult(replayed=total, skipped=dict(sorted(skipped.items())))

    async def replay_selected(self, *, delivery_ids: Sequence[str]) -> ReplayResult:
        """Re-queue those of ``delivery_ids`` that are dead letters of an active endpoint, due
        now, in chunks of ``REPLAY_CHUNK`` (one transaction each). The rest are counted in
        ``skipped``: dead letters of an inactive endpoint by ``skip_reason``, and ids that are
        not (or no longer) dead letters, unknown ones included, as ``not_dead_letter``. An id
        given twice counts once."""
        chosen = list(dict.fromkeys(delivery_ids))
        total = 0
        skipped: Counter[str] = Counter()
        for chunk in _chunks(chosen):
            now = self._clock.now()
            async with self._sessions.begin() as session:
                ids = await repo.requeue(
                    session,
                    now=now,
                    states=(DeliveryState.FAILED.value,),
                    delivery_ids=chunk,
                    only_active_endpoints=True,
                )
                left = _by_reason(
                    await dead_letters_repo.count_left_behind(session, delivery_ids=chunk)
                )
            await self._queue.add_missing([(delivery_id, now) for delivery_id in ids])
            total += len(ids)
            skipped.update(left)
            if gone := len(chunk) - len(ids) - sum(left.values()):
                skipped[NOT_A_DEAD_LETTER] += gone
        log.info(
            "dead_letters.replayed", selected=len(chosen), replayed=total, skipped=dict(skipped)
        )
        return ReplayResult(replayed=total, skipped=dict(sorted(skipped.items())))

    async def preview_replay(
        self,
        *,
        endpoint_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> ReplayPreview:
        """What ``replay`` with these filters would do now: the dead letters matching, and how
        many of them it would skip, by reason. ``NotFound`` for an unknown ``endpoint_id``.
        Reads only; two counting statements."""
        async with self._sessions() as session:
            if (
                endpoint_id is not None
                and await repo.get_endpoint(session, endpoint_id=endpoint_id) is None
            ):
                raise NotFound("webhook", endpoint_id)
            matching = await dead_letters_repo.count_dead_letters(
                session, endpoint_id=endpoint_id, completed_since=since, completed_until=until
            )
            left = await dead_letters_repo.count_left_behind(
                session, endpoint_id=endpoint_id, completed_since=since, completed_until=until
            )
        return ReplayPreview(matching=matching, skipped=dict(sorted(_by_reason(left).items())))

    async def preview_selected(self, *, delivery_ids: Sequence[str]) -> ReplayPreview:
        """What ``replay_selected`` would do now: ``matching`` is the number of distinct ids,
        ``skipped`` what it would leave, by reason (``not_dead_letter`` included). Reads only."""
        chosen = list(dict.fromkeys(delivery_ids))
        skipped: Counter[str] = Counter()
        async with self._sessions() as session:
            for chunk in _chunks(chosen):
                dead = await dead_letters_repo.count_dead_letters(session, delivery_ids=chunk)
                left = await dead_letters_repo.count_left_behind(session, delivery_ids=chunk)
                skipped.update(_by_reason(left))
                if gone := len(chunk) - dead:
                    skipped[NOT_A_DEAD_LETTER] += gone
        return ReplayPreview(matching=len(chosen), skipped=dict(sorted(skipped.items())))


def _chunks(delivery_ids: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(delivery_ids), REPLAY_CHUNK):
        yield delivery_ids[start : start + REPLAY_CHUNK]


def _by_reason(left: Iterable[dead_letters_repo.LeftBehind]) -> Counter[str]:
    """Dead letters left behind, counted by ``skip_reason``."""
    skipped: Counter[str] = Counter()
    for group in left:
        skipped[skip_reason(status=group.endpoint_status, deleted=group.endpoint_deleted)] += (
            group.count
        )
    return skipped


def _refusal(endpoint_id: str, endpoint: Endpoint | None) -> str:
    """Why a manual retry is refused, with the reason code a replay counts it under."""
    if endpoint is None or endpoint.deleted_at is not None:  # None: the foreign key forbids it
        return f"webhook {endpoint_id} is deleted ({ENDPOINT_DELETED}); it sends nothing again"
    reason = skip_reason(status=endpoint.status, deleted=False)
    return f"webhook {endpoint_id} is {endpoint.status} ({reason}); enable it first"
