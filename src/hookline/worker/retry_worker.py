"""``RetryWorker``: claim due deliveries with a lease, attempt them under caps, settle in batches.

``run_once()`` claims one batch and runs it to the end (tests and scripts drive it with a
``ManualClock``). ``run(stop)`` is the production loop: it keeps up to ``concurrency``
deliveries claimed, claims more as batches settle, extends leases while requests run, and on
``stop`` finishes what is in flight within ``shutdown_grace_s`` and releases the rest.

Failures: ``run`` survives any exception. A failed claim is logged with its traceback and retried
after a growing pause (reported to ``LoopHealth`` as failing, so ``/readyz`` says so); a batch
that fails mid-way forgets its claims (their leases expire and the sweeper makes them due
again); a settle that fails never cancels the sends still in flight beside it.

Caps: at most ``concurrency`` deliveries claimed per process, at most ``endpoint_concurrency`` in
flight per endpoint (a slot is freed when its send task ends, however it ends). A claimed
delivery whose endpoint is at its cap is released back to the queue (due again after
``poll_interval_s``) instead of waiting, so one slow endpoint cannot fill the worker with
deliveries that wait for it and starve the rest.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Final

from hookline.clock import Clock
from hookline.observability.logging import get_logger
from hookline.queue.base import DelayedQueue
from hookline.runtime import Runtime
from hookline.service.delivery import AttemptResult, DeliveryService, PlannedAttempt
from hookline.service.health import LoopHealth
from hookline.worker.loops import first_of, run_passes

log = get_logger("hookline.worker")

SETTLE_WAVE_S: Final = 0.2
"""In ``run()``, results are settled at least this often (seconds), so one slow request in a
batch does not hold back the outcome of the fast ones."""
LOOP_NAME: Final = "worker"
"""How this loop is named in ``LoopHealth`` (and so in ``/readyz``)."""


class RetryWorker:
    """Polls the queue and runs due deliveries through ``DeliveryService``."""

    def __init__(
        self,
        *,
        delivery: DeliveryService,
        queue: DelayedQueue,
        clock: Clock,
        batch_size: int,
        concurrency: int,
        endpoint_concurrency: int,
        lease_s: float,
        poll_interval_s: float,
        shutdown_grace_s: float,
        loops: LoopHealth | None = None,
    ) -> None:
        self._delivery = delivery
        self._queue = queue
        self._clock = clock
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._endpoint_concurrency = endpoint_concurrency
        self._lease_s = lease_s
        self._poll_interval_s = poll_interval_s
        self._shutdown_grace_s = shutdown_grace_s
        self._claimed: set[str] = set()
        self._endpoint_in_flight: Counter[str] = Counter()
        self._batches: set[asyncio.Task[int]] = set()
        self._capacity_freed = asyncio.Event()
        self._loops = loops if loops is not None else LoopHealth()

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> RetryWorker:
        """A worker configured by the runtime's settings."""
        settings = runtime.settings
        return cls(
            delivery=runtime.delivery,
            queue=runtime.queue,
            clock=runtime.clock,
            batch_size=settings.worker_batch_size,
            concurrency=settings.worker_concurrency,
            endpoint_concurrency=settings.worker_endpoint_concurrency,
            lease_s=settings.lease_duration_s,
            poll_interval_s=settings.retry_worker_poll_interval_s,
            shutdown_grace_s=settings.shutdown_grace_period_s,
            loops=runtime.loops,
        )

    @property
    def claimed(self) -> int:
        """Deliveries this worker holds a claim on right now."""
        return len(self._claimed)

    async def run_once(self) -> int:
        """Claim one batch, attempt it, settle it; returns the number of attempts made."""
        ids = await self._claim(self._batch_size)
        if not ids:
            return 0
        return await self._run_batch(ids, settle_wave_s=None)

    async def drain(self, *, max_batches: int = 10_000) -> int:
        """``run_once`` until nothing is due (bounded); returns the attempts made."""
        total = 0
        for _ in range(max_batches):
            made = await self.run_once()
            if made == 0 and self.claimed == 0:
                break
            total += made
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then shut down gracefully. Survives any exception."""
        extender = asyncio.create_task(self._extend_leases(stop), name="lease-extender")
        self._loops.starting(LOOP_NAME)
        log.info("worker.started", concurrency=self._concurrency, batch_size=self._batch_size)
        try:
            await run_passes(
                lambda: self._poll_iteration(stop),
                stop=stop,
                clock=self._clock,
                log=log,
                event="worker.poll_failed",
                loops=self._loops,
                loop=LOOP_NAME,
                pause_s=self._poll_interval_s,
                pause_after_success=False,
            )
        finally:
            # Wait for the extender to unwind: a statement it had in flight must not outlive the
            # worker (and the engine the runtime closes next), or the event loop cannot close.
            extender.cancel()
            await asyncio.wait([extender])
            await self._shutdown()
            self._loops.stopped(LOOP_NAME)

    async def _poll_iteration(self, stop: asyncio.Event) -> None:
        """Claim what is due (as much as there is room for) and start it; wait when idle."""
        free = self._concurrency - len(self._claimed)
        if free <= 0:
            self._capacity_freed.clear()
            await first_of(stop.wait(), self._capacity_freed.wait())
            return
        limit = min(self._batch_size, free)
        ids = await self._claim(limit)
        if ids:
            task = asyncio.create_task(self._run_batch(ids, settle_wave_s=SETTLE_WAVE_S))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
        if len(ids) < limit:  # drained what is due: wait for the next poll
            await first_of(stop.wait(), self._clock.sleep(self._poll_interval_s))

    async def _claim(self, limit: int) -> list[str]:
        ids = await self._queue.get_due_retries(
            now=self._clock.now(), limit=limit, lease_s=self._lease_s
        )
        self._claimed.update(ids)
        return ids

    async def _run_batch(self, ids: Sequence[str], *, settle_wave_s: float | None) -> int:
        attempts = 0
        try:
            planned = await self._delivery.prepare(ids)
            unplanned = set(ids).difference(p.delivery_id for p in planned)
            self._forget(unplanned)
            go, busy = self._apply_endpoint_caps(planned)
            if busy:
                await self._queue.release(
                    [p.delivery_id for p in busy],
                    due_at=self._clock.now() + timedelta(seconds=self._poll_interval_s),
                )
                self._forget(p.delivery_id for p in busy)
            sends = {self._start_send(p) for p in go}
            try:
                while sends:
                    done, sends = await asyncio.wait(sends, timeout=settle_wave_s)
                    results = [task.result() for task in done]  # send() never raises
                    await self._settle(results)
                    attempts += len(results)
            finally:
                for task in sends:
                    task.cancel()
                if sends:  # let them unwind (their done callbacks free the endpoint slots)
                    await asyncio.wait(sends)
        except asyncio.CancelledError:
            raise  # shutdown: what is still claimed gets released
        except Exception as exc:
            # The database or queue failed mid-batch: the leases expire and the sweeper makes
            # these deliveries due again; nothing is lost, at worst attempted twice.
            log.error("worker.batch_failed", error=str(exc), deliveries=len(ids), exc_info=True)
            self._forget(ids)
        return attempts

    def _start_send(self, planned: PlannedAttempt) -> asyncio.Task[AttemptResult]:
        """Send in a task that holds one of its endpoint's slots until it ends, however it
        ends (a done callback runs even for a task cancelled before it started)."""
        endpoint_id = planned.endpoint_id
        self._endpoint_in_flight[endpoint_id] += 1
        task = asyncio.create_task(self._delivery.send(planned))
        task.add_done_callback(lambda _: self._free_endpoint_slot(endpoint_id))
        return task

    def _free_endpoint_slot(self, endpoint_id: str) -> None:
        self._endpoint_in_flight[endpoint_id] -= 1
        if self._endpoint_in_flight[endpoint_id] <= 0:
            del self._endpoint_in_flight[endpoint_id]

    @property
    def endpoints_in_flight(self) -> dict[str, int]:
        """Sends in flight per endpoint right now (what the per-endpoint cap counts)."""
        return dict(self._endpoint_in_flight)

    async def _settle(self, results: Sequence[AttemptResult]) -> None:
        """Settle one wave; never raises, so the sends still in flight beside it go on."""
        try:
            summary = await self._delivery.settle(results)
            if summary.lost:
                log.warning("worker.lost_claims", count=summary.lost)
        except Exception as exc:
            # An outage (settle isolates everything else): the leases expire and the sweeper
            # makes these due again; they are attempted again, at least once.
            log.error(
                "worker.settle_failed",
                error=f"{type(exc).__name__}: {exc}",
                deliveries=len(results),
                exc_info=True,
            )
        finally:
            self._forget(r.planned.delivery_id for r in results)

    def _apply_endpoint_caps(
        self, planned: Sequence[PlannedAttempt]
    ) -> tuple[list[PlannedAttempt], list[PlannedAttempt]]:
        go: list[PlannedAttempt] = []
        busy: list[PlannedAttempt] = []
        taken: Counter[str] = Counter()
        for attempt in planned:
            in_flight = self._endpoint_in_flight[attempt.endpoint_id] + taken[attempt.endpoint_id]
            if in_flight >= self._endpoint_concurrency:
                busy.append(attempt)
            else:
                taken[attempt.endpoint_id] += 1
                go.append(attempt)
        return go, busy

    def _forget(self, delivery_ids: Iterable[str]) -> None:
        self._claimed.difference_update(delivery_ids)
        self._capacity_freed.set()

    async def _extend_leases(self, stop: asyncio.Event) -> None:
        interval_s = self._lease_s / 3
        while not stop.is_set():
            await first_of(stop.wait(), self._clock.sleep(interval_s))
            if not self._claimed:
                continue
            claimed = list(self._claimed)
            try:
                await self._queue.extend_lease(
                    claimed, now=self._clock.now(), lease_s=self._lease_s
                )
                if not self._queue.leases_in_database:
                    await self._delivery.extend_leases(claimed, lease_s=self._lease_s)
            except Exception as exc:  # the next round tries again; a lost lease is recovered
                log.error(
                    "worker.extend_lease_failed",
                    error=f"{type(exc).__name__}: {exc}",
                    claimed=len(self._claimed),
                    exc_info=True,
                )

    async def _shutdown(self) -> None:
        if self._batches:
            log.info(
                "worker.stopping", in_flight=len(self._claimed), grace_s=self._shutdown_grace_s
            )
            _, pending = await asyncio.wait(set(self._batches), timeout=self._shutdown_grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._claimed:
            leftover = list(self._claimed)
            try:
                await self._queue.release(leftover, due_at=self._clock.now())
            except Exception as exc:  # their leases expire; the sweeper makes them due again
                log.error("worker.release_failed", error=f"{type(exc).__name__}: {exc}")
            log.warning("worker.released", count=len(leftover))
            self._forget(leftover)
        log.info("worker.stopped")
