"""``Sweeper``: the pass that makes "nothing lost" true, plus retention.

Each pass (``run_once``):
1. returns expired leases to the queue (``recover_expired``): a worker died mid-request;
2. re-queues deliveries that the database says are queued and due soon but the queue does not
   hold (Redis restarted empty, or a crash between a commit and its enqueue);
3. prunes succeeded deliveries (and their attempts) finished more than ``RETENTION_DAYS`` ago,
   and events no delivery refers to any more.
Every step works in bounded chunks, so a pass over a large backlog cannot run away with memory.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookline.clock import Clock
from hookline.observability.logging import get_logger
from hookline.observability.metrics import Metrics
from hookline.queue.base import DelayedQueue
from hookline.runtime import Runtime
from hookline.service.health import LoopHealth
from hookline.storage.repositories import deliveries as repo
from hookline.worker.loops import run_every

log = get_logger("hookline.sweeper")

CHUNK: Final = 1000
"""Rows or ids handled per statement / round trip."""
MAX_CHUNKS_PER_STEP: Final = 100
"""A step stops after this many chunks; the next pass continues where work remains."""
LOOP_NAME: Final = "sweeper"
"""How this loop is named in ``LoopHealth`` (and so in ``/readyz``)."""


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one pass did."""

    recovered_leases: int
    requeued_missing: int
    pruned_deliveries: int
    pruned_events: int


class Sweeper:
    """Recovers lost claims and queue entries; prunes old succeeded deliveries."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        queue: DelayedQueue,
        clock: Clock,
        metrics: Metrics,
        interval_s: float,
        retention_days: float,
        loops: LoopHealth | None = None,
    ) -> None:
        self._sessions = sessions
        self._queue = queue
        self._clock = clock
        self._metrics = metrics
        self._interval_s = interval_s
        self._retention = timedelta(days=retention_days)
        self._loops = loops if loops is not None else LoopHealth()

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> Sweeper:
        """A sweeper configured by the runtime's settings."""
        return cls(
            sessions=runtime.sessions,
            queue=runtime.queue,
            clock=runtime.clock,
            metrics=runtime.metrics,
            interval_s=runtime.settings.sweeper_interval_s,
            retention_days=runtime.settings.retention_days,
            loops=runtime.loops,
        )

    async def run_once(self) -> SweepReport:
        """One pass; see the module docstring."""
        recovered = await self._recover_leases()
        requeued = await self._requeue_missing()
        pruned_deliveries, pruned_events = await self._prune()
        report = SweepReport(recovered, requeued, pruned_deliveries, pruned_events)
        if recovered or requeued or pruned_deliveries or pruned_events:
            log.info(
                "sweeper.pass",
                recovered_leases=recovered,
                requeued_missing=requeued,
                pruned_deliveries=pruned_deliveries,
                pruned_events=pruned_events,
            )
        return report

    async def run(self, stop: asyncio.Event) -> None:
        """A pass every ``interval_s`` until ``stop`` is set. A pass that fails, for any reason,
        is logged with its traceback and the next one waits longer (up to
        ``loops.ERROR_BACKOFF_MAX_S``); ``LoopHealth`` says failing until a pass succeeds again."""
        await run_every(
            self.run_once,
            interval_s=self._interval_s,
            stop=stop,
            clock=self._clock,
            log=log,
            event="sweeper.pass_failed",
            loops=self._loops,
            loop=LOOP_NAME,
        )

    async def _recover_leases(self) -> int:
        total = 0
        for _ in range(MAX_CHUNKS_PER_STEP):
            count = await self._queue.recover_expired(now=self._clock.now(), limit=CHUNK)
            total += count
            if count < CHUNK:
                break
        if total:
            self._metrics.recovered_total.labels("lease_expired").inc(total)
        return total

    async def _requeue_missing(self) -> int:
        """Walk deliveries due within two passes from now and put back what the queue lacks."""
        now = self._clock.now()
        horizon = now + timedelta(seconds=2 * self._interval_s)
        total = 0
        after_id: str | None = None
        for _ in range(MAX_CHUNKS_PER_STEP):
            async with self._sessions() as session:
                rows = await repo.queued_ids(
                    session, due_before=horizon, now=now, after_id=after_id, limit=CHUNK
                )
            if not rows:
                break
            total += await self._queue.add_missing([(i, min(due, now)) for i, due in rows])
            after_id = rows[-1][0]
            if len(rows) < CHUNK:
                break
        if total:
            self._metrics.recovered_total.labels("missing_from_queue").inc(total)
        return total

    async def _prune(self) -> tuple[int, int]:
        cutoff = self._clock.now() - self._retention
        deliveries = events = 0
        for _ in range(MAX_CHUNKS_PER_STEP):
            async with self._sessions.begin() as session:
                count = await repo.prune_succeeded(session, completed_before=cutoff, limit=CHUNK)
            deliveries += count
            if count < CHUNK:
                break
        for _ in range(MAX_CHUNKS_PER_STEP):
            async with self._sessions.begin() as session:
                count = await repo.prune_orphan_events(session, created_before=cutoff, limit=CHUNK)
            events += count
            if count < CHUNK:
                break
        return deliveries, events
