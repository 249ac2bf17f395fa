"""``RetryWorker``: claim due deliveries with a lease, attempt them under caps, settle in batches.

``run_once()`` claims one batch, sends it, and settles it in one go (tests and scripts drive it
with a ``ManualClock``). ``run(stop)`` is the production loop, a pipeline of three stages that
overlap: the poll claims and prepares batches while up to ``concurrency`` sends are in flight; a
send frees its slot the moment its request ends (not when its batch settles), and its answer
joins the settle queue; the settler writes answered attempts in waves of up to ``batch_size``,
``settle_concurrency`` waves at a time. Answers gather while the previous wave is being written
(a group commit): the busier the worker, the larger the waves and the fewer statements per
delivery. Leases are extended while requests run; on ``stop`` the sends in flight get
``shutdown_grace_s`` to finish, every answer is settled, and the claims left are released.

Failures: ``run`` survives any exception. A failed claim is logged with its traceback and retried
after a growing pause (reported to ``LoopHealth`` as failing, so ``/readyz`` says so); a batch
whose prepare fails forgets its claims (their leases expire and the sweeper makes them due
again); a settle that fails never cancels the sends still in flight beside it.

Caps: at most ``concurrency`` deliveries between claim and answer per process (and at most
twice that claimed in all, answered ones waiting for a settle included), at most
``endpoint_concurrency`` in flight per endpoint (a slot is freed when its send task ends, however
it ends). A claimed delivery whose endpoint is at its cap is released back to the queue (due
again after ``poll_interval_s``) instead of waiting, so one slow endpoint cannot fill the worker
with deliveries that wait for it and starve the rest. An endpoint's ``rate_limit_per_s`` is a
token bucket shared by every worker (``worker.throttle``, ``queue.rate_limit``): a claimed
delivery with no token is put back too, due when its endpoint's next token should be there.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Final

from hookline.clock import Clock
from hookline.observability.logging import get_logger
from hookline.observability.metrics import Metrics
from hookline.queue.base import DelayedQueue
from hookline.queue.rate_limit import LocalRateLimiter, RateLimiter
from hookline.runtime import Runtime
from hookline.service.delivery import AttemptResult, DeliveryService, PlannedAttempt
from hookline.service.health import LoopHealth
from hookline.storage.db import is_sqlite
from hookline.worker.loops import first_of, run_passes
from hookline.worker.throttle import Throttle, is_limited

log = get_logger("hookline.worker")

LOOP_NAME: Final = "worker"
"""How the claim loop is named in ``LoopHealth`` (and so in ``/readyz``)."""
SETTLER_LOOP_NAME: Final = "settler"
"""How the settle loop of ``run()`` is named in ``LoopHealth``."""
MIN_IDLE_WAIT_S: Final = 0.01
"""Shortest wait between claims when less than a batch was due: deliveries falling due every
millisecond are claimed ten milliseconds' worth at a time, not one by one."""
BUSY_POLL_S: Final = 0.05
"""Longest wait after a claim that found work: under a steady stream of publishes a delivery
waits this long at most before it is claimed (a poll interval would add up to a second)."""
MAX_DEFER_S: Final = 60.0
"""Longest a claim turned away for a busy endpoint is put back for."""
SEND_TIMES_MAX: Final = 10_000
"""Most endpoints whose typical send time a worker remembers."""
SETTLE_CONCURRENCY: Final = 2
"""Settles of ``run()`` in flight at once on PostgreSQL (each in its own transaction): one is
written while the next wave gathers; more would only make the waves smaller."""


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
        settle_concurrency: int = 1,
        loops: LoopHealth | None = None,
        rate_limiter: RateLimiter | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._delivery = delivery
        self._queue = queue
        self._clock = clock
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._max_claimed = 2 * concurrency
        self._min_claim = max(1, min(batch_size, concurrency) // 2)
        """While sends are in flight, claim no fewer than this: a batch costs its two
        transactions whatever its size, so slots freed one by one are claimed together."""
        self._endpoint_cap = endpoint_concurrency
        self._send_time_s: dict[str, float] = {}
        """A moving average of each endpoint's send time: when its turned-away claims are due."""
        self._waiting: dict[str, deque[PlannedAttempt]] = {}
        """Prepared deliveries waiting for a slot of their endpoint (``run()`` only)."""
        self._wait_room = 0
        """How many may wait per endpoint: a cap's worth while ``run()`` works, else none (a
        delivery with no slot goes back to the queue)."""
        self._lease_s = lease_s
        self._poll_interval_s = poll_interval_s
        self._shutdown_grace_s = shutdown_grace_s
        self._settle_concurrency = max(1, settle_concurrency)
        self._claimed: set[str] = set()
        self._sending = 0
        """Claimed deliveries not answered yet (being prepared or sent): what ``concurrency``
        caps."""
        self._endpoint_in_flight: Counter[str] = Counter()
        self._batches: set[asyncio.Task[None]] = set()
        self._sends: set[asyncio.Task[AttemptResult]] = set()
        self._answered: list[AttemptResult] = []
        self._answer_arrived = asyncio.Event()
        self._settles: set[asyncio.Task[None]] = set()
        self._capacity_freed = asyncio.Event()
        self._loops = loops if loops is not None else LoopHealth()
        # Without a shared limiter (tests, scripts) the limits still hold, in this process.
        self._throttle = Throttle(rate_limiter or LocalRateLimiter(), metrics=metrics)

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
            # SQLite has one writer: concurrent settles would only wait for each other's lock.
            settle_concurrency=1 if is_sqlite(runtime.engine) else SETTLE_CONCURRENCY,
            loops=runtime.loops,
            rate_limiter=runtime.rate_limiter,
            metrics=runtime.metrics,
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
        sends = [task for _, task in await self._launch(ids)]
        if not sends:
            return 0
        try:
            await asyncio.wait(sends)
        finally:
            for task in sends:
                task.cancel()
            await asyncio.wait(sends)  # let them unwind (their done callbacks free the slots)
        results = [task.result() for task in sends]  # send() never raises
        for result in results:
            self._observe_send_time(result)
        await self._settle(results)
        return len(results)

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
        stop_settling = asyncio.Event()
        settler = asyncio.create_task(self._run_settler(stop_settling), name="settler")
        self._wait_room = self._endpoint_cap
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
            try:
                await self._finish_sends()
            finally:
                # Every answer is settled before the claims left are released: an answered
                # delivery released unsettled would be sent again.
                stop_settling.set()
                await asyncio.wait([settler])
                await self._settle_the_rest()
                # Wait for the extender to unwind: a statement it had in flight must not
                # outlive the worker (and the engine the runtime closes next), or the event
                # loop cannot close.
                extender.cancel()
                await asyncio.wait([extender])
                await self._release_the_rest()
                self._loops.stopped(LOOP_NAME)

    async def _poll_iteration(self, stop: asyncio.Event) -> None:
        """Claim what is due (as much as there is room for) and start it; wait when idle."""
        free = min(self._concurrency - self._sending, self._max_claimed - len(self._claimed))
        if free <= 0 or (self._sending and free < self._min_claim):
            self._capacity_freed.clear()
            await first_of(stop.wait(), self._capacity_freed.wait())
            return
        limit = min(self._batch_size, free)
        ids = await self._claim(limit)
        if ids:
            task = asyncio.create_task(self._launch_into_pipeline(ids))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
        if len(ids) < limit:  # drained what is due: wait until the next falls due
            wait_s = await self._idle_wait_s(found_work=bool(ids))
            await first_of(stop.wait(), self._clock.sleep(wait_s))

    async def _idle_wait_s(self, *, found_work: bool = False) -> float:
        """How long to wait before claiming again: until the earliest waiting delivery falls
        due (at least ``MIN_IDLE_WAIT_S``), never longer than ``poll_interval_s`` (deliveries
        published meanwhile are due at once and nobody tells the worker), and never longer
        than ``BUSY_POLL_S`` after a claim that found work (events are being published: what
        comes next is due at once)."""
        wait_s = await self._next_due_wait_s()
        return min(wait_s, BUSY_POLL_S) if found_work else wait_s

    async def _next_due_wait_s(self) -> float:
        try:
            due = await self._queue.next_due()
        except Exception:  # the next claim meets the outage and reports it
            return self._poll_interval_s
        if due is None:
            return self._poll_interval_s
        wait_s = (due - self._clock.now()).total_seconds()
        return min(self._poll_interval_s, max(MIN_IDLE_WAIT_S, wait_s))

    async def _claim(self, limit: int) -> list[str]:
        due = await self._queue.get_due_retries(
            now=self._clock.now(), limit=limit, lease_s=self._lease_s
        )
        # One this worker holds already came back because its lease lapsed while it was still
        # being sent, waiting for a slot or for its settle (a lease extension that waited too
        # long for the database): the queue's new lease is ours too; sending it again here
        # would only deliver it twice.
        ids = [delivery_id for delivery_id in due if delivery_id not in self._claimed]
        self._claimed.update(ids)
        self._sending += len(ids)
        return ids

    async def _launch(
        self, ids: Sequence[str]
    ) -> list[tuple[PlannedAttempt, asyncio.Task[AttemptResult]]]:
        """Prepare claimed deliveries and start the sends of those that may go now; every
        other claim is given up here (stale, dead-lettered, released for a busy or rate-limited
        endpoint)."""
        taken: Counter[str] = Counter()
        room = self._endpoint_cap + self._wait_room
        now = self._clock.now()

        def admit(endpoint_id: str) -> bool:
            if self._throttle.holds(endpoint_id, now):  # no token before its next one: skip
                return False
            if self._endpoint_load(endpoint_id) + taken[endpoint_id] >= room:
                return False
            taken[endpoint_id] += 1
            return True

        try:
            planned, turned_away = await self._delivery.prepare_admitted(ids, admit=admit)
        except Exception as exc:
            # The database or queue failed: the leases expire and the sweeper makes these
            # deliveries due again; nothing is lost, at worst attempted twice.
            log.error(
                "worker.batch_failed",
                error=f"{type(exc).__name__}: {exc}",
                deliveries=len(ids),
                exc_info=True,
            )
            self._give_up(ids)
            return []
        # Rate limits first (one round trip for the batch's limited endpoints, none without),
        # then the caps: sends started by other batches while this one was prepared may have
        # filled a slot admitted above, so check again, now, with no await before the sends
        # start. What has no slot waits for one here (run(): up to a cap's worth per endpoint,
        # unless it spent a rate-limit token, which is for now), or goes back.
        planned, throttled = await self._throttle.split(planned, now=self._clock.now())
        go, over = self._apply_endpoint_caps(planned)
        busy = list(turned_away)
        for attempt in over:
            waiting = self._waiting.get(attempt.endpoint_id)
            if (
                self._wait_room
                and not is_limited(attempt.rate_limit_per_s)
                and (waiting is None or len(waiting) < self._wait_room)
            ):
                self._waiting.setdefault(attempt.endpoint_id, deque()).append(attempt)
            else:
                busy.append((attempt.delivery_id, attempt.endpoint_id))
        put_back = {b for b, _ in busy}.union(d for d, _ in throttled)
        kept = {p.delivery_id for p in planned}.difference(put_back)  # started or waiting
        self._give_up([i for i in ids if i not in kept and i not in put_back])
        if put_back:
            await self._defer(busy, throttled=throttled)  # gives up the claims put back
        return [(p, self._start_send(p)) for p in go]

    async def _defer(
        self, busy: Sequence[tuple[str, str]], *, throttled: Sequence[tuple[str, datetime]] = ()
    ) -> None:
        """Put back claims that may not go now (never attempted, their attempt counters
        untouched): ``throttled`` ones at the due times their endpoint's rate limit gave them;
        ``busy`` ones, whose endpoint has no free slot, spread over when its slots should
        free: the k-th waiting delivery of an endpoint is due after ``k // cap + 1`` of its
        typical send times (between ``MIN_IDLE_WAIT_S`` and ``MAX_DEFER_S``). A fast endpoint's
        backlog comes back just as its slots free; a timing-out one's is claimed again only a
        few at a time, instead of being claimed, turned away and put back over and over. A busy
        one whose endpoint has no rate-limit token yet is due at its rate limit's pace."""
        now = self._clock.now()
        position: Counter[str] = Counter()
        items: list[tuple[str, datetime]] = list(throttled)
        for delivery_id, endpoint_id in busy:
            if self._throttle.holds(endpoint_id, now):
                items.append((delivery_id, self._throttle.next_slot(endpoint_id, now)))
                continue
            turn = position[endpoint_id] // self._endpoint_cap + 1
            position[endpoint_id] += 1
            wait_s = turn * self._send_time_s.get(endpoint_id, BUSY_POLL_S)
            items.append(
                (
                    delivery_id,
                    now + timedelta(seconds=min(MAX_DEFER_S, max(MIN_IDLE_WAIT_S, wait_s))),
                )
            )
        try:
            await self._queue.schedule_many(items)
        except Exception as exc:  # their leases expire; the sweeper makes them due again
            log.error("worker.release_failed", error=f"{type(exc).__name__}: {exc}")
        self._give_up([delivery_id for delivery_id, _ in items])

    def _observe_send_time(self, result: AttemptResult) -> None:
        """Fold one send's duration into its endpoint's typical send time (a moving average;
        the memory is bounded by ``SEND_TIMES_MAX`` endpoints)."""
        endpoint_id = result.planned.endpoint_id
        seconds = result.result.duration_ms / 1000
        previous = self._send_time_s.get(endpoint_id)
        if previous is None and len(self._send_time_s) >= SEND_TIMES_MAX:
            self._send_time_s.clear()
        self._send_time_s[endpoint_id] = (
            seconds if previous is None else previous + (seconds - previous) / 8
        )

    async def _launch_into_pipeline(self, ids: Sequence[str]) -> None:
        for planned, task in await self._launch(ids):
            self._into_pipeline(planned, task)

    def _into_pipeline(self, planned: PlannedAttempt, task: asyncio.Task[AttemptResult]) -> None:
        """A send of ``run()``: shutdown waits for it; its answer goes to the settle queue."""
        self._sends.add(task)
        task.add_done_callback(partial(self._on_answer, planned))

    def _on_answer(self, planned: PlannedAttempt, task: asyncio.Task[AttemptResult]) -> None:
        """A send of ``run()`` ended: its answer joins the settle queue (a cancelled send keeps
        its claim, which shutdown releases)."""
        self._sends.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:  # send() never raises; should it, the lease expires
            log.error(
                "worker.send_failed",
                job_id=planned.delivery_id,
                error=f"{type(error).__name__}: {error}",
                exc_info=error,
            )
            self._forget([planned.delivery_id])
            return
        answer = task.result()
        self._answered.append(answer)
        self._answer_arrived.set()
        try:  # a bug here must not keep the answer from its settle (it would wait forever)
            self._observe_send_time(answer)
        except Exception as exc:
            log.error("worker.observe_failed", error=f"{type(exc).__name__}: {exc}", exc_info=True)

    def _start_send(self, planned: PlannedAttempt) -> asyncio.Task[AttemptResult]:
        """Send in a task that holds one send slot and one of its endpoint's slots until it
        ends, however it ends (a done callback runs even for a task cancelled before it
        started)."""
        endpoint_id = planned.endpoint_id
        self._endpoint_in_flight[endpoint_id] += 1
        task = asyncio.create_task(self._delivery.send(planned))
        task.add_done_callback(lambda _: self._free_slots(endpoint_id))
        return task

    def _free_slots(self, endpoint_id: str) -> None:
        self._sending -= 1
        self._endpoint_in_flight[endpoint_id] -= 1
        if self._endpoint_in_flight[endpoint_id] <= 0:
            del self._endpoint_in_flight[endpoint_id]
        self._capacity_freed.set()
        waiting = self._waiting.get(endpoint_id)
        if waiting and self._wait_room:
            self._start_waiting(waiting.popleft())
        if waiting is not None and not waiting:
            del self._waiting[endpoint_id]

    def _start_waiting(self, planned: PlannedAttempt) -> None:
        """Start a prepared delivery that waited here for its endpoint's slot (``run()``)."""
        # (It has counted in ``_sending`` since its claim; ``_free_slots`` counts it out.)
        self._into_pipeline(planned, self._start_send(planned))

    def _endpoint_load(self, endpoint_id: str) -> int:
        """Sends in flight to the endpoint, and prepared deliveries waiting for its slots."""
        waiting = self._waiting.get(endpoint_id)
        return self._endpoint_in_flight[endpoint_id] + (len(waiting) if waiting else 0)

    @property
    def endpoints_in_flight(self) -> dict[str, int]:
        """Sends in flight per endpoint right now (what the per-endpoint cap counts)."""
        return dict(self._endpoint_in_flight)

    async def _run_settler(self, stop_settling: asyncio.Event) -> None:
        # Running from the start: its first pass waits for an answer, for as long as it takes.
        self._loops.running(SETTLER_LOOP_NAME)
        try:
            await run_passes(
                lambda: self._settle_pass(stop_settling),
                stop=stop_settling,
                clock=self._clock,
                log=log,
                event="worker.settler_failed",
                loops=self._loops,
                loop=SETTLER_LOOP_NAME,
                pause_s=self._poll_interval_s,
                pause_after_success=False,
            )
        finally:
            self._loops.stopped(SETTLER_LOOP_NAME)

    async def _settle_pass(self, stop_settling: asyncio.Event) -> None:
        """Start one settle of what has been answered, once a settle slot is free; wait for
        answers when there are none. Answers that arrive while the slots are busy wait and
        go out together in the next wave."""
        if not self._answered:
            self._answer_arrived.clear()
            await first_of(self._answer_arrived.wait(), stop_settling.wait())
            return
        while len(self._settles) >= self._settle_concurrency:
            await asyncio.wait(set(self._settles), return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(self._settle(self._next_wave()))
        self._settles.add(task)
        task.add_done_callback(self._settles.discard)

    def _next_wave(self) -> list[AttemptResult]:
        """The oldest answers waiting, up to a batch, taken off the settle queue."""
        wave = self._answered[: self._batch_size]
        del self._answered[: len(wave)]
        return wave

    async def _settle(self, results: Sequence[AttemptResult]) -> None:
        """Settle one wave; never raises, so the sends still in flight beside it go on."""
        try:
            summary = await self._delivery.settle(results)
            if summary.lost:
                log.warning("worker.lost_claims", deliveries=summary.lost)
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
            if in_flight >= self._endpoint_cap:
                busy.append(attempt)
            else:
                taken[attempt.endpoint_id] += 1
                go.append(attempt)
        return go, busy

    def _forget(self, delivery_ids: Iterable[str]) -> None:
        self._claimed.difference_update(delivery_ids)
        self._capacity_freed.set()

    def _give_up(self, delivery_ids: Sequence[str]) -> None:
        """Claims dropped before their send started: they free their send slots too."""
        self._sending -= len(delivery_ids)
        self._forget(delivery_ids)

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
                    deliveries=len(self._claimed),
                    exc_info=True,
                )

    async def _finish_sends(self) -> None:
        """Give the batches being prepared, then the sends they started, ``shutdown_grace_s``
        in all to finish; cancel the rest (their claims are released)."""
        self._wait_room = 0  # what waits for a slot now is released, not started
        if not (self._batches or self._sends):
            return
        log.info("worker.stopping", in_flight=self._sending, grace_s=self._shutdown_grace_s)
        deadline = self._clock.monotonic() + self._shutdown_grace_s
        for tasks in (self._batches, self._sends):  # a batch adds its sends when prepared
            if not tasks:
                continue
            remaining_s = max(0.0, deadline - self._clock.monotonic())
            _, unfinished = await asyncio.wait(set(tasks), timeout=remaining_s)
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.wait(unfinished)

    async def _settle_the_rest(self) -> None:
        """Settle every answer still waiting, after the settles already running."""
        while self._answered:
            await self._settle(self._next_wave())
        if self._settles:
            await asyncio.wait(set(self._settles))

    async def _release_the_rest(self) -> None:
        if self._claimed:
            leftover = list(self._claimed)
            try:
                await self._queue.release(leftover, due_at=self._clock.now())
            except Exception as exc:  # their leases expire; the sweeper makes them due again
                log.error("worker.release_failed", error=f"{type(exc).__name__}: {exc}")
            log.warning("worker.released", deliveries=len(leftover))
            self._forget(leftover)
        log.info("worker.stopped")
