"""``ConsoleQueries``: the read side of the operator console's overview.

Read-only: one short read transaction, a fixed number of statements whatever the data (see
``storage.repositories.console``), nothing written, nothing cached (a page polled every few
seconds by a few people costs a handful of indexed statements each time).

What the overview's words mean, for a window of the last hour or day ending ``now``:

- *succeeded* / *failed*: deliveries that entered ``succeeded`` / ``failed`` (became a dead
  letter) in the window;
- *retrying*: deliveries now ``retrying`` that had an attempt in the window (it failed; another
  is scheduled);
- *success rate*: succeeded over succeeded + failed (None when nothing finished);
- the hourly series: succeeded and failed per hour for the last 24 hours, hours counted back
  from ``now`` (so the last bucket is exactly the last hour's figures);
- queue depth: what the queue holds (due or scheduled, and in flight); the oldest *due*
  delivery is the one waiting longest past its due time (backlog), as the metrics gauge it.

A database that cannot answer is ``Unavailable`` (the console shows a 503 page); a queue that
cannot answer only blanks the queue depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookline.clock import Clock
from hookline.domain.states import CLAIMABLE_STATES, TERMINAL_STATES, DeliveryState, values
from hookline.errors import Unavailable
from hookline.observability.logging import get_logger
from hookline.queue.base import DelayedQueue
from hookline.storage.db import is_outage
from hookline.storage.repositories import console as repo
from hookline.storage.repositories.console import FailingEndpointRow
from hookline.storage.repositories.stats import stored_stats

log = get_logger("hookline.console")

HOUR_S: Final = 3600.0
DAY_S: Final = 24 * HOUR_S
BUCKETS_PER_DAY: Final = 24
"""The hourly series covers one day in buckets of ``HOUR_S``."""
FAILING_ENDPOINTS_SHOWN: Final = 5

FailingEndpoint = FailingEndpointRow
"""A live endpoint with its failed attempts of the last day (the overview's top list)."""


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """Deliveries of one window ending now, by what became of them."""

    window_s: float
    succeeded: int
    retrying: int
    failed: int

    @property
    def success_rate(self) -> float | None:
        """Succeeded over finished (succeeded + failed); None when nothing finished."""
        finished = self.succeeded + self.failed
        return None if finished == 0 else self.succeeded / finished


@dataclass(frozen=True, slots=True)
class HourBucket:
    """Deliveries that finished in ``[start, end)`` (one hour)."""

    start: datetime
    end: datetime
    succeeded: int
    failed: int


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything the overview page shows, as of ``now``."""

    now: datetime
    last_hour: WindowCounts
    last_day: WindowCounts
    hourly: list[HourBucket]
    queue_depth: int | None
    """None when the queue could not be asked."""
    due: int
    oldest_due_age_s: float | None
    """How long the longest-waiting due delivery is past its due time; None if none is due."""
    dead_letters: int
    disabled_endpoints: dict[str, int]
    failing_endpoints: list[FailingEndpoint]
    endpoints: int
    any_delivery: bool

    @property
    def is_empty(self) -> bool:
        """Nothing to show yet: no delivery stored at all."""
        return not self.any_delivery


class ConsoleQueries:
    """The overview's figures, read in one transaction."""

    def __init__(
        self, *, sessions: async_sessionmaker[AsyncSession], queue: DelayedQueue, clock: Clock
    ) -> None:
        self._sessions = sessions
        self._queue = queue
        self._clock = clock

    async def overview(self) -> Overview:
        """The figures as of now; ``Unavailable`` when the database cannot answer."""
        now = self._clock.now()
        day_ago = now - timedelta(seconds=DAY_S)
        hour_ago = now - timedelta(seconds=HOUR_S)
        terminal, unfinished = values(TERMINAL_STATES), values(CLAIMABLE_STATES)
        succeeded, failed = DeliveryState.SUCCEEDED.value, DeliveryState.FAILED.value
        try:
            async with self._sessions() as session:
                finished = await repo.finished_by_bucket(
                    session,
                    states=(succeeded, failed),
                    since=day_ago,
                    bucket_s=HOUR_S,
                    buckets=BUCKETS_PER_DAY,
                )
                retrying_hour, retrying_day = await repo.retrying_attempted_since(
                    session, state=DeliveryState.RETRYING.value, since=(hour_ago, day_ago)
                )
                failing = await repo.most_failing_endpoints(
                    session,
                    since=day_ago,
                    terminal=terminal,
                    unfinished=unfinished,
                    limit=FAILING_ENDPOINTS_SHOWN,
                )
                present = await repo.presence(session)
                stored = await stored_stats(session, now=now)
        except Exception as exc:
            if is_outage(exc):
                raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
            raise
        hourly = [
            HourBucket(
                start=day_ago + timedelta(seconds=index * HOUR_S),
                end=day_ago + timedelta(seconds=(index + 1) * HOUR_S),
                succeeded=finished[succeeded][index],
                failed=finished[failed][index],
            )
            for index in range(BUCKETS_PER_DAY)
        ]
        last = hourly[-1]
        oldest_age = None
        if stored.oldest_due_at is not None:
            oldest_age = max((now - stored.oldest_due_at).total_seconds(), 0.0)
        return Overview(
            now=now,
            last_hour=WindowCounts(
                window_s=HOUR_S,
                succeeded=last.succeeded,
                retrying=retrying_hour,
                failed=last.failed,
            ),
            last_day=WindowCounts(
                window_s=DAY_S,
                succeeded=sum(bucket.succeeded for bucket in hourly),
                retrying=retrying_day,
                failed=sum(bucket.failed for bucket in hourly),
            ),
            hourly=hourly,
            queue_depth=await self._queue_depth(),
            due=stored.due,
            oldest_due_age_s=oldest_age,
            dead_letters=stored.dead_letters,
            disabled_endpoints=dict(sorted(stored.disabled_endpoints.items())),
            failing_endpoints=failing,
            endpoints=present.endpoints,
            any_delivery=present.any_delivery,
        )

    async def _queue_depth(self) -> int | None:
        try:
            return await self._queue.depth()
        except Unavailable as exc:
            log.warning("console.queue_unavailable", error=str(exc)[:300])
            return None


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or one it was raised from) means the database or the queue cannot be
    reached now, rather than a bug: the console answers those with its 503 page."""
    return is_outage(exc)
