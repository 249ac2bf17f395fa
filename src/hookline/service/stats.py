"""``StatsRefresher``: the gauges of stored state, read at scrape time and cached.

Prometheus (or several of them, or a person reloading ``/metrics``) may scrape often; the
counts behind the gauges cost queries. A refresh runs at most once per ``ttl_s``: scrapes
inside that window, and scrapes that arrive while one refresh runs, read the cached values.
When the database or queue cannot answer, the scrape still succeeds with the last values (the
counters it carries matter more than fresh gauges) and the failure is logged.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookline.clock import Clock
from hookline.domain.states import DisabledReason
from hookline.observability.logging import get_logger
from hookline.observability.metrics import Metrics
from hookline.queue.base import DelayedQueue
from hookline.storage.repositories.stats import stored_stats

log = get_logger("hookline.stats")


class StatsRefresher:
    """Sets the queue-depth, backlog, dead-letter, parked and endpoint-status gauges of
    ``metrics``."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        queue: DelayedQueue,
        metrics: Metrics,
        clock: Clock,
        ttl_s: float,
    ) -> None:
        self._sessions = sessions
        self._queue = queue
        self._metrics = metrics
        self._clock = clock
        self._ttl_s = ttl_s
        self._fresh_until: float | None = None
        self._lock = asyncio.Lock()
        self.refreshes = 0
        """How many refreshes queried the database (tests read it)."""

    async def refresh(self) -> None:
        """Bring the gauges up to date unless they are younger than ``ttl_s``; never raises."""
        if self._is_fresh():
            return
        async with self._lock:
            if self._is_fresh():  # another scrape refreshed while this one waited
                return
            self._fresh_until = self._clock.monotonic() + self._ttl_s
            self.refreshes += 1
            try:
                await self._refresh()
            except Exception as exc:
                log.warning("metrics.refresh_failed", error=f"{type(exc).__name__}: {exc}"[:300])

    def _is_fresh(self) -> bool:
        return self._fresh_until is not None and self._clock.monotonic() < self._fresh_until

    async def _refresh(self) -> None:
        now = self._clock.now()
        async with self._sessions() as session:
            stats = await stored_stats(session, now=now)
        depth = await self._queue.depth()
        metrics = self._metrics
        metrics.queue_depth.set(depth)
        metrics.backlog_due.set(stats.due)
        age = 0.0 if stats.oldest_due_at is None else (now - stats.oldest_due_at).total_seconds()
        metrics.backlog_oldest_age_seconds.set(max(age, 0.0))
        metrics.dead_letters.set(stats.dead_letters)
        metrics.parked_deliveries.set(stats.parked)
        metrics.endpoints_recovering.set(stats.recovering_endpoints)
        # Every reason gets a series (0 when none), so panels and alerts see it from the start.
        reasons = {reason.value: 0 for reason in DisabledReason} | stats.disabled_endpoints
        for reason, count in reasons.items():
            metrics.endpoints_disabled.labels(reason).set(count)
