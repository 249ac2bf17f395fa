"""``LifecycleService``: what brings a disabled endpoint back, one round at a time.

Each round (``run_once``, looped by ``worker.lifecycle.LifecycleLoop`` every
``LIFECYCLE_INTERVAL``):

1. **probes** — endpoints disabled as ``failing`` whose probe is due are claimed (their
   ``probe_next_at`` moves past the send, so no other process probes them meanwhile) and sent a
   signed ``hookline.probe`` (``EndpointSends``, recorded as an attempt with ``trigger=probe``).
   ``PROBE_SUCCESSES`` consecutive 2xx answers make the endpoint ``recovering`` (or ``active``
   when nothing is parked); any other answer starts the count again and doubles the interval
   (``PROBE_MIN_INTERVAL`` up to ``PROBE_MAX_INTERVAL``, jittered).
2. **releases** — each recovering endpoint's bucket (``domain.lifecycle.RecoveryBucket``) is
   refilled and as many of its parked deliveries as it has whole tokens go to ``pending``, due
   now, oldest first (new events park behind them, so they queue behind the backlog). With
   nothing parked any more the endpoint is ``active``. The answers feed the bucket in the
   worker's settle (``service.parking.record_answers_in``).
3. **bounds** (every ``BOUND_INTERVAL_S``) — parked deliveries older than ``PARKED_MAX_AGE``, and
   the oldest beyond ``PARKED_MAX_PER_ENDPOINT`` of an endpoint, become dead letters
   (``parked_overflow``).

Every endpoint is handled in a transaction of its own, and a failure with one endpoint is logged
and does not stop the round for the others.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookline.clock import Clock
from hookline.domain.lifecycle import ProbeState, RecoveryBucket
from hookline.domain.states import DisabledReason, EndpointStatus
from hookline.errors import Conflict, NotFound
from hookline.observability.logging import get_logger
from hookline.observability.metrics import Metrics
from hookline.queue.base import DelayedQueue
from hookline.service.alert_sink import AlertSink
from hookline.service.endpoint_sends import EndpointSendOutcome, EndpointSends
from hookline.service.parking import (
    PARKED_OVERFLOW,
    LifecyclePolicy,
    Transition,
    TransitionReporter,
    Trigger,
    finish_recovery_in,
    lifecycle_of,
    recover_in,
)
from hookline.storage.repositories import endpoints as endpoints_repo
from hookline.storage.repositories import lifecycle as repo

log = get_logger("hookline.lifecycle")

PROBES_PER_ROUND: Final = 50
"""Endpoints probed per round at most (concurrently); the rest wait for the next round."""
RECOVERING_PER_ROUND: Final = 1000
"""Recovering endpoints released per round at most."""
RELEASE_MAX_PER_ENDPOINT: Final = 1000
"""Deliveries one endpoint releases per round at most, whatever its bucket holds."""
BOUND_INTERVAL_S: Final = 30.0
"""How often the parked bounds are enforced (a grouped count over all parked deliveries)."""
OVERFLOW_CHUNK: Final = 10_000
"""Parked deliveries of one endpoint dead-lettered per statement."""


@dataclass(frozen=True, slots=True)
class LifecycleReport:
    """What one round did."""

    probed: int = 0
    recovered: int = 0
    released: int = 0
    activated: int = 0
    overflowed: int = 0


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """A probe's answer and where the endpoint stands after it."""

    send: EndpointSendOutcome
    successes: int
    """Consecutive 2xx probes so far (0 after a failed one)."""
    status: str
    """The endpoint's status after this probe: ``disabled``, or ``recovering``/``active``
    when this probe was the last one needed."""
    next_probe_at: datetime | None


class LifecycleService:
    """Probes, slow-start releases and parked bounds (see the module docstring)."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        queue: DelayedQueue,
        clock: Clock,
        sends: EndpointSends,
        metrics: Metrics,
        policy: LifecyclePolicy,
        alerts: AlertSink | None = None,
        rng: random.Random | None = None,
        probe_lease_s: float = 120.0,
    ) -> None:
        """``probe_lease_s``: how long a claimed probe keeps other processes off the endpoint
        (longer than a send can take)."""
        self._sessions = sessions
        self._queue = queue
        self._clock = clock
        self._sends = sends
        self._metrics = metrics
        self._policy = policy
        self._rng = rng or random.Random()
        self._probe_lease_s = probe_lease_s
        self._transitions = TransitionReporter(metrics=metrics, alerts=alerts)
        self._next_bound_at: float | None = None

    @property
    def successes_needed(self) -> int:
        """2xx probes in a row that make a disabled endpoint healthy."""
        return self._policy.probe.successes_needed

    async def run_once(self) -> LifecycleReport:
        """One round: probes due, releases, and (when due) the parked bounds."""
        probed, recovered = await self.probe_due()
        released, activated = await self.release()
        overflowed = 0
        monotonic = self._clock.monotonic()
        if self._next_bound_at is None or monotonic >= self._next_bound_at:
            self._next_bound_at = monotonic + BOUND_INTERVAL_S
            overflowed = await self.bound_parked()
        report = LifecycleReport(probed, recovered, released, activated, overflowed)
        if recovered or activated or overflowed:
            log.info(
                "lifecycle.round",
                probed=probed,
                recovered=recovered,
                released=released,
                activated=activated,
                overflowed=overflowed,
            )
        return report

    async def probe_due(self) -> tuple[int, int]:
        """Probe every endpoint whose probe is due; (probes sent, endpoints now healthy)."""
        now = self._clock.now()
        async with self._sessions.begin() as session:
            ids = await repo.claim_due_probes(
                session,
                now=now,
                lease_until=now + timedelta(seconds=self._probe_lease_s),
                limit=PROBES_PER_ROUND,
            )
        if not ids:
            return 0, 0
        outcomes = await asyncio.gather(
            *(self._probe(endpoint_id, trigger="automatic") for endpoint_id in ids),
            return_exceptions=True,
        )
        healthy = 0
        for endpoint_id, outcome in zip(ids, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome
                log.error(
                    "lifecycle.probe_failed",
                    endpoint_id=endpoint_id,
                    error=f"{type(outcome).__name__}: {outcome}"[:300],
                    exc_info=outcome,
                )
            elif outcome is not None and outcome.status != EndpointStatus.DISABLED:
                healthy += 1
        return len(ids), healthy

    async def probe_now(self, *, endpoint_id: str) -> ProbeOutcome:
        """``POST /webhooks/{id}/probe``: probe a disabled endpoint now. For one disabled as
        ``failing`` it counts like an automatic probe (the last one needed starts the
        recovery, with ``trigger`` ``manual``); for other reasons it only reports the answer
        (an operator enables those). ``Conflict`` if the endpoint is not disabled."""
        outcome = await self._probe(endpoint_id, trigger="manual")
        if outcome is None:
            raise Conflict("only a disabled webhook can be probed; this one is not disabled")
        return outcome

    async def _probe(self, endpoint_id: str, *, trigger: Trigger) -> ProbeOutcome | None:
        async with self._sessions() as session:
            endpoint = await endpoints_repo.get_endpoint(session, endpoint_id=endpoint_id)
            if endpoint is None:
                raise NotFound("webhook", endpoint_id)
            if endpoint.status != EndpointStatus.DISABLED:
                return None
            probes = ProbeState.from_json(lifecycle_of(endpoint).get("probe"), self._policy.probe)
        send = await self._sends.send_once(
            endpoint_id=endpoint_id, trigger="probe", attempt_number=probes.probes + 1
        )
        self._metrics.probes_total.labels("ok" if send.ok else "failed").inc()
        now = self._clock.now()
        transition: Transition | None = None
        async with self._sessions.begin() as session:
            endpoint = await endpoints_repo.get_endpoint(
                session, endpoint_id=endpoint_id, for_update=True
            )
            if endpoint is None or endpoint.status != EndpointStatus.DISABLED:
                # enabled or deleted while the probe ran: nothing to count it towards
                status = EndpointStatus.ACTIVE.value if endpoint is None else endpoint.status
                return ProbeOutcome(send, probes.successes, status, None)
            state = lifecycle_of(endpoint)
            probes = ProbeState.from_json(state.get("probe"), self._policy.probe).after(
                ok=send.ok, policy=self._policy.probe
            )
            counts = endpoint.disabled_reason == DisabledReason.FAILING
            next_at: datetime | None = None
            if counts and probes.healthy(self._policy.probe):
                transition = await recover_in(
                    session,
                    endpoint=endpoint,
                    trigger=trigger,
                    now=now,
                    policy=self._policy,
                )
            else:
                endpoint.lifecycle = {**state, "probe": probes.to_json()}
                if counts and endpoint.probe_enabled:
                    next_at = probes.next_at(now, self._rng)
                    endpoint.probe_next_at = next_at
        log.info(
            "endpoint.probe",
            endpoint_id=endpoint_id,
            trigger=trigger,
            ok=send.ok,
            status_code=send.status_code,
            error=send.error,
            successes=probes.successes,
            needed=self._policy.probe.successes_needed,
            next_probe_at=None if next_at is None else next_at.isoformat(),
        )
        status = EndpointStatus.DISABLED.value
        if transition is not None:
            self._transitions.report(transition)
            status = transition.status
        return ProbeOutcome(send, probes.successes, status, next_at)

    async def release(self) -> tuple[int, int]:
        """Release what each recovering endpoint's bucket allows; (released, made active)."""
        async with self._sessions() as session:
            ids = await repo.recovering_endpoints(session, limit=RECOVERING_PER_ROUND)
        released = activated = 0
        for endpoint_id in ids:
            try:
                count, transition = await self._release_one(endpoint_id)
            except Exception as exc:  # this endpoint alone; the others go on
                log.error(
                    "lifecycle.release_failed",
                    endpoint_id=endpoint_id,
                    error=f"{type(exc).__name__}: {exc}"[:300],
                    exc_info=True,
                )
                continue
            released += count
            if transition is not None:
                activated += 1
        return released, activated

    async def _release_one(self, endpoint_id: str) -> tuple[int, Transition | None]:
        now = self._clock.now()
        transition: Transition | None = None
        async with self._sessions.begin() as session:
            endpoint = await endpoints_repo.get_endpoint(
                session, endpoint_id=endpoint_id, for_update=True
            )
            if endpoint is None or endpoint.status != EndpointStatus.RECOVERING:
                return 0, None
            parked = await repo.count_parked(session, endpoint_id=endpoint_id)
            if parked == 0:
                transition = await finish_recovery_in(session, endpoint=endpoint, now=now)
                released: list[str] = []
            else:
                state = lifecycle_of(endpoint)
                bucket = RecoveryBucket.from_json(state.get("recovery"), self._policy.recovery, now)
                count, bucket = bucket.take(min(parked, RELEASE_MAX_PER_ENDPOINT), now)
                ids = await repo.oldest_parked_ids(session, endpoint_id=endpoint_id, limit=count)
                released = await repo.release_parked(session, delivery_ids=ids, now=now)
                endpoint.lifecycle = {**state, "recovery": bucket.to_json()}
        if released:
            self._metrics.parked_released_total.inc(len(released))
            # Committed first: if this fails, the sweeper finds them due in SQL.
            await self._queue.add_missing([(delivery_id, now) for delivery_id in released])
        if transition is not None:
            self._transitions.report(transition)
        return len(released), transition

    async def bound_parked(self) -> int:
        """Dead-letter parked deliveries beyond the age and per-endpoint count bounds
        (``parked_overflow``); how many."""
        now = self._clock.now()
        policy = self._policy
        async with self._sessions.begin() as session:
            overflowed = await repo.fail_parked(
                session,
                now=now,
                last_error=PARKED_OVERFLOW,
                created_before=now - timedelta(seconds=policy.parked_max_age_s),
            )
            over = await repo.over_parked(session, max_parked=policy.parked_max)
        total = len(overflowed)
        for endpoint_id in sorted(over):
            try:
                async with self._sessions.begin() as session:
                    ids = await repo.oldest_parked_ids(
                        session,
                        endpoint_id=endpoint_id,
                        limit=OVERFLOW_CHUNK,
                        newest_kept=policy.parked_max,
                    )
                    total += len(
                        await repo.fail_parked(
                            session, now=now, last_error=PARKED_OVERFLOW, delivery_ids=ids
                        )
                    )
            except Exception as exc:  # this endpoint alone
                log.error(
                    "lifecycle.bound_failed",
                    endpoint_id=endpoint_id,
                    error=f"{type(exc).__name__}: {exc}"[:300],
                    exc_info=True,
                )
        if total:
            self._metrics.dead_letter_total.labels(PARKED_OVERFLOW).inc(total)
            log.warning(
                "lifecycle.parked_overflow",
                dead_lettered=total,
                max_per_endpoint=policy.parked_max,
                max_age_s=policy.parked_max_age_s,
            )
        return total
