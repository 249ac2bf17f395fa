"""``DeliveryService``: attempts of claimed deliveries, start to finish, in batches.

The order for a batch of claimed ids (ARCHITECTURE.md, "One attempt, decided"):

1. ``prepare`` — one transaction: load deliveries with payload and endpoint; skip what is no
   longer due (the database is the source of truth, the queue only an index); cancel what belongs
   to a disabled or deleted endpoint; move the rest to ``delivering`` (one statement, which also
   bumps ``version``) and sign their requests.
2. ``send`` — one HTTP attempt per delivery, no database work (the worker runs these concurrently
   under its caps).
3. ``settle`` — one transaction for the whole batch: classify each result, write the attempt
   row, move the delivery to ``succeeded | retrying | failed`` if its ``version`` is still ours,
   fold the results into endpoint health (disable on 404/410, or after 24 h of only failures).
   Only after the commit does the queue learn the outcome (``schedule_many`` for retries,
   ``complete_retry`` for the rest): that order is the at-least-once guarantee.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookline.clock import Clock
from hookline.domain.backoff import ExponentialBackoffEngine
from hookline.domain.endpoint_health import should_disable
from hookline.domain.envelope import message_body
from hookline.domain.outcome import (
    AttemptError,
    Delivered,
    EndpointGone,
    Outcome,
    PermanentFailure,
    RetryableFailure,
    classify,
)
from hookline.domain.retry_config import DEFAULT_RETRY_CONFIG, RetryConfig
from hookline.domain.signing import signed_headers
from hookline.domain.states import (
    DeliveryState,
    DisabledReason,
    EndpointStatus,
    parks,
    transition,
)
from hookline.domain.text import storable_text
from hookline.errors import PermanentFailure as PermanentFailureError
from hookline.errors import RetriesExhausted
from hookline.observability.logging import get_logger
from hookline.observability.metrics import Metrics
from hookline.observability.tracing import Span, Tracing, now_ns
from hookline.queue.base import DelayedQueue
from hookline.sender.client import OutboundRequest, Sender, SendResult
from hookline.service.alert_sink import AlertSink
from hookline.service.parking import (
    LifecyclePolicy,
    Transition,
    TransitionReporter,
    disable_in,
    record_answers_in,
)
from hookline.storage.db import is_outage
from hookline.storage.models import Endpoint
from hookline.storage.repositories import deliveries as repo
from hookline.storage.repositories import lifecycle as lifecycle_repo

log = get_logger("hookline.delivery")

RESERVED_HEADERS: Final = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "content-type",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "webhook-attempt",
    }
)
"""Headers an endpoint's own ``headers`` cannot set: framing, and the ones we sign or own."""
SETTLE_RETRY_DELAYS_S: Final = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)
"""Pauses between tries of a settle that failed transiently (about 6 s in all, and never past a
third of the lease): long enough for a deadlock retry or a fast database restart."""
MAX_ERROR_CHARS: Final = 1000
"""``last_error`` is cut to this many characters (an exception message can be any length)."""


class UnreadableRetryConfig(ValueError):
    """An endpoint's stored retry config does not validate (old data, a hand edit)."""


def effective_retry_config(endpoint: Endpoint | repo.TargetEndpoint) -> RetryConfig:
    """The endpoint's own retry config, or the defaults when it has none.

    ``UnreadableRetryConfig`` when the stored one does not validate: the caller decides what
    that means for this endpoint alone (the API shows it as ``invalid``, the worker
    dead-letters the endpoint's deliveries).
    """
    if endpoint.retry_config is None:
        return DEFAULT_RETRY_CONFIG
    try:
        return RetryConfig.model_validate(endpoint.retry_config)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'retry_config'}: {error['msg']}"
            for error in exc.errors()
        )
        raise UnreadableRetryConfig(f"stored retry config is invalid: {problems}") from exc


def receives_now(status: str) -> bool:
    """Whether an endpoint in ``status`` is sent its due deliveries: active, or recovering (what
    is due was released by the slow start)."""
    return status in (EndpointStatus.ACTIVE, EndpointStatus.RECOVERING)


def signing_secrets(endpoint: Endpoint | repo.TargetEndpoint, *, now: datetime) -> list[str]:
    """The current secret, plus the previous one while its rotation grace period lasts."""
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets


@dataclass(frozen=True, slots=True)
class PlannedAttempt:
    """A delivery moved to ``delivering`` with its signed request, ready to send."""

    delivery_id: str
    endpoint_id: str
    version: int
    attempt_number: int
    retry_number: int
    first_attempt_at: datetime
    config: RetryConfig
    request: OutboundRequest
    event_id: str = ""
    trace_context: str | None = None
    """The publish's W3C ``traceparent`` (set only while tracing is on)."""
    propagate_trace: bool = False
    """Whether the subscriber's request carries ``traceparent``."""
    recovering: bool = False
    """Its endpoint was recovering: the answer feeds the endpoint's slow start."""
    rate_limit_per_s: float | None = None
    """The endpoint's request rate limit (None: none), which the worker enforces."""


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one send produced, and when it started."""

    planned: PlannedAttempt
    started_at: datetime
    result: SendResult
    span: Span | None = None
    """The attempt's span while tracing is on; ended once its outcome is committed."""
    ended_ns: int = 0
    """When the request ended (wall clock, for the span)."""


@dataclass(slots=True)
class SettleSummary:
    """Counts of what a settle decided, for the worker's logs and tests."""

    succeeded: int = 0
    retrying: int = 0
    failed: int = 0
    lost: int = 0
    disabled_endpoints: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _EndpointFold:
    last_success_at: datetime | None = None
    first_failure_at: datetime | None = None
    gone: DisabledReason | None = None
    recovering: bool = False
    """The endpoint was recovering when these attempts were prepared: feed its slow start."""
    successes: int = 0
    failures: int = 0
    retry_after_s: float | None = None


class DeliveryService:
    """Runs attempts of claimed deliveries: prepare → send → settle."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        queue: DelayedQueue,
        sender: Sender,
        clock: Clock,
        metrics: Metrics,
        failure_disable_window_s: float,
        lease_s: float = 60.0,
        rng: random.Random | None = None,
        tracing: Tracing | None = None,
        alerts: AlertSink | None = None,
        lifecycle: LifecyclePolicy | None = None,
    ) -> None:
        """``lifecycle``: how disabled endpoints park and recovering ones ramp up (defaults:
        ``LifecyclePolicy()``)."""
        self._lifecycle = lifecycle or LifecyclePolicy()
        self._transitions = TransitionReporter(metrics=metrics, alerts=alerts)
        self._sessions = sessions
        self._tracing = tracing
        self._alerts = alerts
        self._queue = queue
        self._sender = sender
        self._clock = clock
        self._metrics = metrics
        self._failure_window_s = failure_disable_window_s
        self._lease_s = lease_s
        self._rng = rng or random.Random()

    async def prepare(self, delivery_ids: Sequence[str]) -> list[PlannedAttempt]:
        """``prepare_admitted`` admitting every endpoint: the planned attempts."""
        planned, _ = await self.prepare_admitted(delivery_ids)
        return planned

    async def prepare_admitted(
        self, delivery_ids: Sequence[str], *, admit: Callable[[str], bool] | None = None
    ) -> tuple[list[PlannedAttempt], list[tuple[str, str]]]:
        """Mark the claimed deliveries that are really due as ``delivering``; sign them.
        Returns the planned attempts, and ``(delivery id, endpoint id)`` of those ``admit`` turned
        away.

        ``admit(endpoint_id)`` is asked, in id order, for each delivery that could go now: a
        delivery it refuses (its endpoint has no free slot) is left untouched, neither marked
        nor signed, and handed back for the caller to put back in the queue.

        Claims that turn out stale are settled with the queue here: finished deliveries are
        completed, ones not due yet are put back at their database due time, ones whose
        endpoint is disabled or deleted are cancelled. A delivery whose request cannot be built
        (an unreadable retry config, a malformed secret or header) becomes a dead letter naming
        the problem. When the batch fails for a reason that is not an outage, it is prepared
        again one delivery per transaction, so one bad row fails alone.
        """
        now = self._clock.now()
        try:
            prepared = await self._prepare_batch(delivery_ids, now=now, admit=admit)
        except Exception as exc:
            if is_outage(exc) or not delivery_ids:
                raise
            log.error(
                "delivery.prepare_isolating",
                deliveries=len(delivery_ids),
                error=f"{type(exc).__name__}: {exc}",
                exc_info=True,
            )
            prepared = await self._prepare_one_by_one(delivery_ids, now=now, admit=admit)
        for delivery_id, problem in prepared.dead.items():
            endpoint_id = prepared.dead_endpoints.get(delivery_id, "")
            log.error(
                "delivery.dead_lettered_unpreparable",
                job_id=delivery_id,
                endpoint_id=endpoint_id or None,
                error=problem,
            )
            if self._alerts is not None:
                self._alerts.delivery_failed(
                    delivery_id=delivery_id,
                    endpoint_id=endpoint_id,
                    event_id=None,
                    reason="unpreparable",
                    error=problem,
                )
        if prepared.dead:
            self._metrics.dead_letter_total.labels("unpreparable").inc(len(prepared.dead))
        if prepared.reschedule:
            await self._queue.schedule_many(prepared.reschedule)
        if prepared.complete:
            await self._queue.complete_retry(prepared.complete)
        return prepared.planned, prepared.busy

    async def _prepare_one_by_one(
        self,
        delivery_ids: Sequence[str],
        *,
        now: datetime,
        admit: Callable[[str], bool] | None,
    ) -> _Prepared:
        prepared = _Prepared()
        for delivery_id in delivery_ids:
            try:
                prepared.merge(await self._prepare_batch([delivery_id], now=now, admit=admit))
            except Exception as exc:
                if is_outage(exc):
                    raise
                problem = _problem("cannot be loaded or prepared", exc)
                async with self._sessions.begin() as session:
                    dead = await repo.fail_deliveries(
                        session, now=now, problems={delivery_id: problem}
                    )
                prepared.dead.update(dict.fromkeys(dead, problem))
                prepared.complete.extend(dead)
        return prepared

    async def _prepare_batch(
        self,
        delivery_ids: Sequence[str],
        *,
        now: datetime,
        admit: Callable[[str], bool] | None,
    ) -> _Prepared:
        prepared = _Prepared()
        async with self._sessions.begin() as session:
            rows = await repo.load_for_attempt(session, delivery_ids=delivery_ids)
            found = {row.delivery.id for row in rows}
            prepared.complete.extend(d for d in delivery_ids if d not in found)
            go: list[PlannedAttempt] = []
            inactive: list[str] = []
            to_park: list[str] = []
            problems: dict[str, str] = {}
            for row in rows:
                delivery = row.delivery
                if delivery.state not in repo.CLAIMABLE_STATES or delivery.next_attempt_at is None:
                    prepared.complete.append(delivery.id)
                elif delivery.next_attempt_at > now:
                    prepared.reschedule.append((delivery.id, delivery.next_attempt_at))
                elif row.endpoint.deleted_at is not None:
                    inactive.append(delivery.id)
                elif not receives_now(row.endpoint.status):
                    parking = parks(row.endpoint.status, row.endpoint.disabled_reason)
                    (to_park if parking else inactive).append(delivery.id)
                elif admit is not None and not admit(row.endpoint.id):
                    prepared.busy.append((delivery.id, row.endpoint.id))
                else:
                    try:
                        go.append(self._plan(row, now=now))
                    except Exception as exc:  # this row alone: bad config, secret, headers
                        problems[delivery.id] = _unpreparable(row, exc)
                        prepared.dead_endpoints[delivery.id] = row.endpoint.id
            if inactive:
                cancelled = await repo.cancel_deliveries(
                    session,
                    now=now,
                    reason=repo.ENDPOINT_DISABLED,
                    delivery_ids=inactive,
                    states=repo.CLAIMABLE_STATES,
                )
                prepared.complete.extend(cancelled)
            if to_park:
                # Disabled for a reason that parks: kept, without a queue entry, until it recovers.
                parked = await lifecycle_repo.park_deliveries(
                    session, now=now, delivery_ids=to_park, states=repo.CLAIMABLE_STATES
                )
                prepared.complete.extend(parked)
            if problems:
                dead = await repo.fail_deliveries(session, now=now, problems=problems)
                prepared.dead.update({d: problems[d] for d in dead})
                prepared.complete.extend(dead)
            versions = await repo.mark_delivering(
                session, delivery_ids=[p.delivery_id for p in go], now=now, lease_s=self._lease_s
            )
        prepared.planned.extend(
            replace(p, version=versions[p.delivery_id]) for p in go if p.delivery_id in versions
        )
        return prepared

    def _plan(self, row: repo.AttemptRow, *, now: datetime) -> PlannedAttempt:
        """The signed request of one delivery (``version`` is filled in once it is marked). The
        body is in the endpoint's payload format and the same bytes on every attempt; a format
        it does not know is a ``ValueError`` that dead-letters this delivery alone."""
        delivery, endpoint = row.delivery, row.endpoint
        attempt_number = delivery.attempt_number + 1
        config = effective_retry_config(endpoint)
        body = message_body(
            payload_format=endpoint.payload_format,
            event_type=row.event_type,
            created_at=row.event_created_at,
            payload=row.payload,
        )
        headers = {
            **{k: v for k, v in endpoint.headers.items() if k.lower() not in RESERVED_HEADERS},
            **signed_headers(
                secrets=signing_secrets(endpoint, now=now),
                msg_id=row.event_id,
                timestamp=int(now.timestamp()),
                body=body,
            ),
            "content-type": "application/json",
            "webhook-attempt": str(attempt_number),
        }
        tracing = self._tracing
        return PlannedAttempt(
            delivery_id=delivery.id,
            endpoint_id=endpoint.id,
            version=0,
            attempt_number=attempt_number,
            retry_number=attempt_number - delivery.round_start_attempt,
            first_attempt_at=delivery.first_attempt_at or now,
            config=config,
            request=OutboundRequest(url=endpoint.url, body=body, headers=headers),
            event_id=row.event_id,
            trace_context=row.trace_context,
            propagate_trace=tracing is not None
            and (
                tracing.propagate
                if endpoint.trace_propagation is None
                else endpoint.trace_propagation
            ),
            recovering=endpoint.status == EndpointStatus.RECOVERING,
            rate_limit_per_s=endpoint.rate_limit_per_s,
        )

    async def extend_leases(self, delivery_ids: Sequence[str], *, lease_s: float) -> None:
        """Keep the database's record of these claims alive while their requests run (the
        queue's own lease is extended by the worker; this one survives a queue that lost its
        data). One statement."""
        lease_until = self._clock.now() + timedelta(seconds=lease_s)
        async with self._sessions.begin() as session:
            await repo.extend_leases(session, delivery_ids=delivery_ids, lease_until=lease_until)

    async def send(self, planned: PlannedAttempt) -> AttemptResult:
        """One HTTP attempt; never raises (but for cancellation).

        Network trouble is a ``SendResult`` error already; anything else the sender raises is
        a hookline bug, logged with its traceback and recorded as a retryable ``internal``
        error, so the delivery is retried and, in the end, dead-lettered on its own.
        """
        started_at = self._clock.now()
        span = None
        request = planned.request
        if self._tracing is not None:
            span, traceparent = self._tracing.start_attempt(
                trace_context=planned.trace_context, attributes=_span_start(planned)
            )
            if planned.propagate_trace and traceparent is not None:
                request = replace(request, headers={**request.headers, "traceparent": traceparent})
        try:
            result = await self._sender.send(request)
        except Exception as exc:
            log.error(
                "delivery.send_raised",
                job_id=planned.delivery_id,
                endpoint_id=planned.endpoint_id,
                error=type(exc).__name__,
                exc_info=True,
            )
            result = SendResult(
                status_code=None,
                error=AttemptError.INTERNAL,
                error_detail=storable_text(f"{type(exc).__name__}: {exc}", max_chars=500),
                response_body=None,
                retry_after=None,
                duration_ms=0,
            )
        if span is None:
            return AttemptResult(planned=planned, started_at=started_at, result=result)
        return AttemptResult(
            planned=planned, started_at=started_at, result=result, span=span, ended_ns=now_ns()
        )

    async def settle(self, results: Sequence[AttemptResult]) -> SettleSummary:
        """Record a batch of attempts and decide each delivery's next state.

        One transaction for the batch. When it fails for a reason that is not an outage, each
        attempt is recorded in a transaction of its own; one that still cannot be recorded is
        recorded without its response excerpt, and failing that its delivery becomes a dead
        letter naming the problem. Metrics and log lines are emitted for what was committed.

        A transient failure (a deadlock victim, SQLite busy, a database restarting) is retried
        for a few seconds (``SETTLE_RETRY_DELAYS_S``, within a third of the lease): the
        subscriber has answered, and dropping
        the outcome would send it again. An outage that outlasts them raises: the claims'
        leases expire and the deliveries are attempted again (at least once).
        """
        if not results:
            return SettleSummary()
        now = self._clock.now()
        try:
            settled = await self._settle_retrying(results, now=now)
        except Exception as exc:
            if is_outage(exc):
                raise
            log.error(
                "delivery.settle_isolating",
                deliveries=len(results),
                error=f"{type(exc).__name__}: {exc}",
                exc_info=True,
            )
            settled = await self._settle_one_by_one(results, now=now)
        for effect in settled.effects:
            effect()
        for item, decision in settled.committed:
            self._report(item, decision)
        if settled.retries:
            await self._queue.schedule_many(settled.retries)
        if settled.finished:
            await self._queue.complete_retry(settled.finished)
        if settled.parked:  # after schedule_many, which may have queued some of them again
            await self._queue.discard(settled.parked)
        return settled.summary

    async def _settle_retrying(
        self, results: Sequence[AttemptResult], *, now: datetime
    ) -> _Settled:
        # Never retry past a third of the lease: a claim whose lease expires is sent again by
        # someone else, which is the duplicate the retry exists to avoid.
        deadline = self._clock.monotonic() + self._lease_s / 3
        for delay_s in (*SETTLE_RETRY_DELAYS_S, None):
            try:
                return await self._settle_batch(results, now=now)
            except Exception as exc:
                if delay_s is None or self._clock.monotonic() + delay_s > deadline:
                    raise
                if not is_outage(exc):
                    raise
                log.warning(
                    "delivery.settle_retry",
                    deliveries=len(results),
                    error=f"{type(exc).__name__}: {exc}"[:300],
                    retry_in_s=delay_s,
                )
                await self._clock.sleep(delay_s)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _settle_one_by_one(
        self, results: Sequence[AttemptResult], *, now: datetime
    ) -> _Settled:
        settled = _Settled()
        for item in results:
            problem = "the attempt's outcome could not be recorded"
            for candidate in (item, _without_excerpt(item)):
                try:
                    settled.merge(await self._settle_batch([candidate], now=now))
                    break
                except Exception as exc:
                    if is_outage(exc):
                        raise
                    problem = _problem("the attempt's outcome could not be recorded", exc)
            else:
                delivery_id = item.planned.delivery_id
                async with self._sessions.begin() as session:
                    dead = await repo.fail_deliveries(
                        session,
                        now=now,
                        problems={delivery_id: problem},
                        states=(DeliveryState.DELIVERING.value,),
                        version=item.planned.version,
                    )
                if dead:
                    settled.summary.failed += 1
                    settled.finished.append(delivery_id)
                    settled.effects.append(partial(self._report_unrecordable, item, problem))
        return settled

    def _report_unrecordable(self, item: AttemptResult, problem: str) -> None:
        """The reports of an attempt whose outcome could not be written: its delivery was made
        a dead letter instead."""
        planned = item.planned
        log.error(
            "delivery.dead_lettered_unrecordable",
            job_id=planned.delivery_id,
            attempt=planned.attempt_number,
            error=problem,
        )
        self._metrics.dead_letter_total.labels("unrecordable").inc()
        if self._alerts is not None:
            self._alerts.delivery_failed(
                delivery_id=planned.delivery_id,
                endpoint_id=planned.endpoint_id,
                event_id=planned.event_id,
                reason="unrecordable",
                error=problem,
            )
        if item.span is not None:
            Tracing.finish_attempt(
                item.span,
                end_ns=item.ended_ns,
                attributes={"hookline.outcome": "unrecordable", "error.type": "unrecordable"},
                error=problem,
            )

    async def _settle_batch(self, results: Sequence[AttemptResult], *, now: datetime) -> _Settled:
        """One transaction, a fixed number of statements whatever the batch size: outcomes
        (one set-based, version-checked ``UPDATE``), attempt rows (one insert), endpoint health
        (lock + one ``UPDATE``); a statement more only for an endpoint this batch disables."""
        settled = _Settled()
        summary = settled.summary
        attempt_rows: list[dict[str, Any]] = []
        folds: dict[str, _EndpointFold] = {}
        decided: list[tuple[AttemptResult, _Decision]] = []
        for item in sorted(results, key=lambda r: r.started_at):
            outcome = classify(
                status_code=item.result.status_code,
                error=item.result.error,
                retry_after=item.result.retry_after,
                now=now,
                disable_on_status=item.planned.config.disable_on_status,
            )
            decision = self._decide(item, outcome, now=now)
            decided.append((item, decision))
            attempt_rows.append(self._attempt_row(item, outcome, decision.next_delay))
            self._fold(folds.setdefault(item.planned.endpoint_id, _EndpointFold()), item, outcome)
        async with self._sessions.begin() as session:
            written = await repo.settle_deliveries(
                session, outcomes=[decision.outcome for _, decision in decided], now=now
            )
            await repo.insert_attempts(session, rows=attempt_rows)
            failing_since = await repo.record_endpoint_results(
                session,
                results=[
                    repo.EndpointResults(endpoint_id, fold.last_success_at, fold.first_failure_at)
                    for endpoint_id, fold in sorted(folds.items())
                ],
            )
            for endpoint_id, fold in sorted(folds.items()):
                if endpoint_id not in failing_since:
                    continue  # the endpoint row is gone
                changed = await self._apply_health(
                    session, endpoint_id, fold, failing_since=failing_since[endpoint_id], now=now
                )
                if changed is not None:
                    summary.disabled_endpoints.append(endpoint_id)
                    settled.effects.append(partial(self._transitions.report, changed))
                    # parked: out of the queue once committed (Redis memory stays flat)
                    settled.parked.extend(changed.parked)
        for item, decision in decided:
            delivery_id = item.planned.delivery_id
            if delivery_id not in written:
                summary.lost += 1
                settled.effects.append(
                    partial(
                        log.warning,
                        "delivery.settle_lost",
                        job_id=delivery_id,
                        attempt=item.planned.attempt_number,
                    )
                )
                continue
            settled.committed.append((item, decision))
            state = decision.outcome.state
            if state == DeliveryState.RETRYING:
                summary.retrying += 1
                next_attempt_at = decision.outcome.next_attempt_at
                assert next_attempt_at is not None
                settled.retries.append((delivery_id, next_attempt_at))
            else:
                settled.finished.append(delivery_id)
                if state == DeliveryState.SUCCEEDED:
                    summary.succeeded += 1
                else:
                    summary.failed += 1
        return settled

    def _decide(self, item: AttemptResult, outcome: Outcome, *, now: datetime) -> _Decision:
        """The delivery's next values, and what to report once they are committed. Pure: no
        metric, log line or span here (a rolled-back or lost settle reports nothing)."""
        planned, result = item.planned, item.result
        last_error: str | None
        next_attempt_at: datetime | None = None  # set only when retrying
        next_delay: float | None = None
        dead_reason: str | None = None
        retry_after_honoured = False
        match outcome:
            case Delivered():
                target = DeliveryState.SUCCEEDED
                kind = "delivered"
                last_error = None
            case RetryableFailure(retry_after_s=retry_after_s):
                engine = ExponentialBackoffEngine(planned.config, self._rng)
                next_delay = engine.next_retry_delay(
                    retry_number=planned.retry_number,
                    elapsed_s=(now - planned.first_attempt_at).total_seconds(),
                    retry_after_s=retry_after_s,
                )
                kind = "retryable"
                if next_delay is None:
                    target = DeliveryState.FAILED
                    reason = (
                        "max_retries"
                        if planned.retry_number > planned.config.max_retries
                        else "max_retry_duration"
                    )
                    last_error = str(RetriesExhausted(planned.attempt_number, reason))
                    dead_reason = "exhausted"
                else:
                    target = DeliveryState.RETRYING
                    last_error = _describe(result)
                    next_attempt_at = now + timedelta(seconds=next_delay)
                    retry_after_honoured = (
                        retry_after_s is not None and planned.config.respect_retry_after
                    )
            case PermanentFailure():
                target = DeliveryState.FAILED
                kind = "permanent"
                last_error = str(PermanentFailureError(_describe(result)))
                dead_reason = "permanent"
            case EndpointGone(reason=gone):
                target = DeliveryState.FAILED
                kind = "gone"
                last_error = f"endpoint answered {result.status_code}: {gone.value}"
                dead_reason = "endpoint_gone"
        state = transition(DeliveryState.DELIVERING, target).value
        settled = repo.SettledOutcome(
            delivery_id=planned.delivery_id,
            version=planned.version,
            state=state,
            attempt_number=planned.attempt_number,
            last_status_code=result.status_code,
            last_error=storable_text(last_error, max_chars=MAX_ERROR_CHARS),
            next_attempt_at=next_attempt_at,
            completed_at=None if target is DeliveryState.RETRYING else now,
        )
        return _Decision(
            outcome=settled,
            next_delay=next_delay,
            kind=kind,
            outcome_name=type(outcome).__name__,
            dead_reason=dead_reason,
            retry_after_honoured=retry_after_honoured,
        )

    def _report(self, item: AttemptResult, decision: _Decision) -> None:
        """Metrics, the ``delivery.attempt`` log line, the span and the alert of one committed
        attempt."""
        planned, result, metrics = item.planned, item.result, self._metrics
        state = decision.outcome.state
        next_delay = decision.next_delay
        metrics.delivery_total.labels(decision.kind).inc()
        metrics.attempt_duration_seconds.observe(result.duration_ms / 1000)
        if decision.kind != "delivered":
            metrics.endpoint_failure_total.labels(planned.endpoint_id).inc()
        if next_delay is not None:
            metrics.retry_total.labels(_retry_reason(result)).inc()
            metrics.retry_delay_seconds.observe(next_delay)
            if decision.retry_after_honoured:
                metrics.retry_after_honoured_total.inc()
        else:
            metrics.attempts_per_delivery.labels(state).observe(planned.attempt_number)
        error = result.error.value if result.error else None
        log.info(
            "delivery.attempt",
            job_id=planned.delivery_id,
            endpoint_id=planned.endpoint_id,
            attempt=planned.attempt_number,
            status_code=result.status_code,
            error=error,
            duration_ms=result.duration_ms,
            outcome=decision.outcome_name,
            state=state,
            delay=next_delay,
        )
        if decision.dead_reason is not None:
            metrics.dead_letter_total.labels(decision.dead_reason).inc()
            if self._alerts is not None:
                self._alerts.delivery_failed(
                    delivery_id=planned.delivery_id,
                    endpoint_id=planned.endpoint_id,
                    event_id=planned.event_id,
                    reason=decision.dead_reason,
                    error=decision.outcome.last_error,
                    attempt=planned.attempt_number,
                    status_code=result.status_code,
                )
        if item.span is not None:
            attributes: dict[str, str | int | float | bool] = {
                "hookline.outcome": decision.kind,
                "hookline.delivery.state": state,
            }
            if result.status_code is not None:
                attributes["http.response.status_code"] = result.status_code
            if error is not None:
                attributes["error.type"] = error
            elif decision.kind != "delivered":
                attributes["error.type"] = str(result.status_code)
            if next_delay is not None:
                attributes["retry.delay_ms"] = round(next_delay * 1000)
            Tracing.finish_attempt(
                item.span,
                end_ns=item.ended_ns,
                attributes=attributes,
                error=None if decision.kind == "delivered" else decision.outcome.last_error,
            )

    @staticmethod
    def _attempt_row(
        item: AttemptResult, outcome: Outcome, next_delay: float | None
    ) -> dict[str, Any]:
        from hookline.ids import ATTEMPT, new_id

        error = item.result.error.value if item.result.error else None
        if isinstance(outcome, PermanentFailure) and outcome.error is not None:
            error = outcome.error.value
        return {
            "id": new_id(ATTEMPT),
            "delivery_id": item.planned.delivery_id,
            "attempt_number": item.planned.attempt_number,
            "started_at": item.started_at,
            "duration_ms": item.result.duration_ms,
            "status_code": item.result.status_code,
            "error": error,
            "retryable": isinstance(outcome, RetryableFailure),
            "response_body": storable_text(item.result.response_body),
            "next_delay": next_delay,
        }

    @staticmethod
    def _fold(fold: _EndpointFold, item: AttemptResult, outcome: Outcome) -> None:
        fold.recovering = fold.recovering or item.planned.recovering
        if isinstance(outcome, Delivered):
            fold.last_success_at = item.started_at
            fold.first_failure_at = None
            fold.successes += 1
            return
        fold.failures += 1
        if isinstance(outcome, RetryableFailure) and outcome.retry_after_s is not None:
            fold.retry_after_s = max(fold.retry_after_s or 0.0, outcome.retry_after_s)
        if fold.first_failure_at is None:
            fold.first_failure_at = item.started_at
        if isinstance(outcome, EndpointGone):
            fold.gone = outcome.reason

    async def _apply_health(
        self,
        session: AsyncSession,
        endpoint_id: str,
        fold: _EndpointFold,
        *,
        failing_since: datetime | None,
        now: datetime,
    ) -> Transition | None:
        """Disable the endpoint if the batch's attempts say so (gone, or failing for the whole
        window), or feed a recovering endpoint's slow start (which may park it again); the
        transition to report once committed, if this call made one."""
        if fold.recovering and fold.gone is None:
            return await record_answers_in(
                session,
                endpoint_id=endpoint_id,
                successes=fold.successes,
                failures=fold.failures,
                retry_after_s=fold.retry_after_s,
                now=now,
                policy=self._lifecycle,
                rng=self._rng,
            )
        reason: DisabledReason | None = fold.gone
        if reason is None and should_disable(
            failing_since=failing_since, now=now, window_s=self._failure_window_s
        ):
            reason = DisabledReason.FAILING
        if reason is None:
            return None
        return await disable_in(
            session,
            endpoint_id=endpoint_id,
            reason=reason,
            trigger="automatic",
            now=now,
            policy=self._lifecycle,
            rng=self._rng,
            from_statuses=(EndpointStatus.ACTIVE.value, EndpointStatus.RECOVERING.value),
            fail_since=failing_since,
        )


@dataclass(slots=True)
class _Prepared:
    """What preparing claims decided: attempts to send, and what the queue must hear."""

    planned: list[PlannedAttempt] = field(default_factory=list)
    busy: list[tuple[str, str]] = field(default_factory=list)
    complete: list[str] = field(default_factory=list)
    reschedule: list[tuple[str, datetime]] = field(default_factory=list)
    dead: dict[str, str] = field(default_factory=dict)
    dead_endpoints: dict[str, str] = field(default_factory=dict)
    """The endpoint of each dead letter whose row could be read (for its alert)."""

    def merge(self, other: _Prepared) -> None:
        self.planned.extend(other.planned)
        self.busy.extend(other.busy)
        self.complete.extend(other.complete)
        self.reschedule.extend(other.reschedule)
        self.dead.update(other.dead)
        self.dead_endpoints.update(other.dead_endpoints)


@dataclass(slots=True)
class _Decision:
    """What settling one attempt decided; reported (``_report``) only once it is committed."""

    outcome: repo.SettledOutcome
    next_delay: float | None
    """Seconds until the next attempt; ``None`` unless retrying."""
    kind: str
    """``webhook_delivery_total``'s outcome: delivered, retryable, permanent or gone."""
    outcome_name: str
    dead_reason: str | None
    """``webhook_dead_letter_total``'s reason when the delivery ended failed."""
    retry_after_honoured: bool


@dataclass(slots=True)
class _Settled:
    """What a committed settle decided: counts, what the queue must hear, what to report."""

    summary: SettleSummary = field(default_factory=SettleSummary)
    retries: list[tuple[str, datetime]] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    committed: list[tuple[AttemptResult, _Decision]] = field(default_factory=list)
    """Attempts whose outcome was written: each is reported once the transaction committed."""
    effects: list[Callable[[], None]] = field(default_factory=list)
    """Other reports that wait for the commit (a disabled endpoint, an unrecordable attempt)."""
    parked: list[str] = field(default_factory=list)
    """Deliveries a disable in this settle parked: they leave the queue last of all."""

    def merge(self, other: _Settled) -> None:
        self.parked.extend(other.parked)
        for name in ("succeeded", "retrying", "failed", "lost"):
            setattr(self.summary, name, getattr(self.summary, name) + getattr(other.summary, name))
        self.summary.disabled_endpoints.extend(other.summary.disabled_endpoints)
        self.retries.extend(other.retries)
        self.finished.extend(other.finished)
        self.committed.extend(other.committed)
        self.effects.extend(other.effects)


def _span_start(planned: PlannedAttempt) -> dict[str, str | int]:
    """The attempt span's attributes known before sending (the seed's ``retry.*`` names, the
    OpenTelemetry HTTP ones, and hookline's ids)."""
    return {
        "retry.attempt_number": planned.attempt_number,
        "hookline.delivery.id": planned.delivery_id,
        "hookline.event.id": planned.event_id,
        "hookline.endpoint.id": planned.endpoint_id,
        "http.request.method": "POST",
        "server.address": urlsplit(planned.request.url).hostname or "",
    }


def _problem(what: str, exc: BaseException) -> str:
    text = f"{what}: {type(exc).__name__}: {exc}"
    return storable_text(text, max_chars=MAX_ERROR_CHARS) or what


def _unpreparable(row: repo.AttemptRow, exc: Exception) -> str:
    if isinstance(exc, UnreadableRetryConfig):
        return _problem(
            f"webhook {row.endpoint.id} has a retry config that cannot be read; replace it "
            f"(PUT /webhooks/{row.endpoint.id}/retry-config) and replay this dead letter",
            exc,
        )
    return _problem(f"the request to webhook {row.endpoint.id} cannot be built", exc)


def _without_excerpt(item: AttemptResult) -> AttemptResult:
    """The attempt without the parts a subscriber controls (its answer's excerpt and detail)."""
    result = replace(item.result, response_body=None, error_detail=None)
    return replace(item, result=result)


def _describe(result: SendResult) -> str:
    if result.error is not None:
        return (
            f"{result.error.value}: {result.error_detail}"
            if result.error_detail
            else result.error.value
        )
    return f"HTTP {result.status_code}"


def _retry_reason(result: SendResult) -> str:
    if result.error is not None:
        return result.error.value
    return (
        f"{(result.status_code or 0) // 100}xx"
        if result.status_code not in (408, 429)
        else str(result.status_code)
    )
