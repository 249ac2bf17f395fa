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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookline.clock import Clock
from hookline.domain.backoff import ExponentialBackoffEngine
from hookline.domain.endpoint_health import should_disable
from hookline.domain.outcome import (
    Delivered,
    EndpointGone,
    Outcome,
    PermanentFailure,
    RetryableFailure,
    classify,
)
from hookline.domain.retry_config import DEFAULT_RETRY_CONFIG, RetryConfig
from hookline.domain.signing import signed_headers
from hookline.domain.states import DeliveryState, DisabledReason, transition
from hookline.errors import PermanentFailure as PermanentFailureError
from hookline.errors import RetriesExhausted
from hookline.observability.logging import get_logger
from hookline.observability.metrics import Metrics
from hookline.queue.base import DelayedQueue
from hookline.sender.client import OutboundRequest, Sender, SendResult
from hookline.storage.models import Endpoint
from hookline.storage.repositories import deliveries as repo

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


def effective_retry_config(endpoint: Endpoint) -> RetryConfig:
    """The endpoint's own retry config, or the defaults when it has none."""
    if endpoint.retry_config is None:
        return DEFAULT_RETRY_CONFIG
    return RetryConfig.model_validate(endpoint.retry_config)


def signing_secrets(endpoint: Endpoint, *, now: datetime) -> list[str]:
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


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one send produced, and when it started."""

    planned: PlannedAttempt
    started_at: datetime
    result: SendResult


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
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self._queue = queue
        self._sender = sender
        self._clock = clock
        self._metrics = metrics
        self._failure_window_s = failure_disable_window_s
        self._rng = rng or random.Random()

    async def prepare(self, delivery_ids: Sequence[str]) -> list[PlannedAttempt]:
        """Mark the claimed deliveries that are really due as ``delivering``; sign them.

        Claims that turn out stale are settled with the queue here: finished deliveries are
        completed, ones not due yet are put back at their database due time, ones whose
        endpoint is disabled or deleted are cancelled.
        """
        now = self._clock.now()
        complete: list[str] = []
        reschedule: list[tuple[str, datetime]] = []
        async with self._sessions.begin() as session:
            rows = await repo.load_for_attempt(session, delivery_ids=delivery_ids)
            found = {row.delivery.id for row in rows}
            complete.extend(d for d in delivery_ids if d not in found)
            go: list[repo.AttemptRow] = []
            inactive: list[str] = []
            for row in rows:
                delivery = row.delivery
                if delivery.state not in repo.CLAIMABLE_STATES or delivery.next_attempt_at is None:
                    complete.append(delivery.id)
                elif delivery.next_attempt_at > now:
                    reschedule.append((delivery.id, delivery.next_attempt_at))
                elif row.endpoint.status != "active" or row.endpoint.deleted_at is not None:
                    inactive.append(delivery.id)
                else:
                    go.append(row)
            if inactive:
                cancelled = await repo.cancel_deliveries(
                    session,
                    now=now,
                    reason=repo.ENDPOINT_DISABLED,
                    delivery_ids=inactive,
                    states=repo.CLAIMABLE_STATES,
                )
                complete.extend(cancelled)
            versions = await repo.mark_delivering(
                session, delivery_ids=[row.delivery.id for row in go], now=now
            )
        planned = [
            self._plan(row, version=versions[row.delivery.id], now=now)
            for row in go
            if row.delivery.id in versions
        ]
        if reschedule:
            await self._queue.schedule_many(reschedule)
        if complete:
            await self._queue.complete_retry(complete)
        return planned

    def _plan(self, row: repo.AttemptRow, *, version: int, now: datetime) -> PlannedAttempt:
        delivery, endpoint = row.delivery, row.endpoint
        attempt_number = delivery.attempt_number + 1
        body = row.payload.encode()
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
        return PlannedAttempt(
            delivery_id=delivery.id,
            endpoint_id=endpoint.id,
            version=version,
            attempt_number=attempt_number,
            retry_number=attempt_number - delivery.round_start_attempt,
            first_attempt_at=delivery.first_attempt_at or now,
            config=effective_retry_config(endpoint),
            request=OutboundRequest(url=endpoint.url, body=body, headers=headers),
        )

    async def send(self, planned: PlannedAttempt) -> AttemptResult:
        """One HTTP attempt; never raises for network trouble."""
        started_at = self._clock.now()
        result = await self._sender.send(planned.request)
        self._metrics.attempt_duration_seconds.observe(result.duration_ms / 1000)
        return AttemptResult(planned=planned, started_at=started_at, result=result)

    async def settle(self, results: Sequence[AttemptResult]) -> SettleSummary:
        """Record a batch of attempts and decide each delivery's next state (one transaction)."""
        summary = SettleSummary()
        if not results:
            return summary
        now = self._clock.now()
        retries: list[tuple[str, datetime]] = []
        finished: list[str] = []
        attempt_rows: list[dict[str, Any]] = []
        folds: dict[str, _EndpointFold] = {}
        async with self._sessions.begin() as session:
            for item in sorted(results, key=lambda r: r.started_at):
                outcome = classify(
                    status_code=item.result.status_code,
                    error=item.result.error,
                    retry_after=item.result.retry_after,
                    now=now,
                    disable_on_status=item.planned.config.disable_on_status,
                )
                values, next_delay = self._decide(item, outcome, now=now)
                attempt_rows.append(self._attempt_row(item, outcome, next_delay))
                self._fold(
                    folds.setdefault(item.planned.endpoint_id, _EndpointFold()), item, outcome
                )
                written = await repo.settle_delivery(
                    session,
                    delivery_id=item.planned.delivery_id,
                    version=item.planned.version,
                    values=values,
                )
                if not written:
                    summary.lost += 1
                    log.warning(
                        "delivery.settle_lost",
                        delivery_id=item.planned.delivery_id,
                        attempt=item.planned.attempt_number,
                    )
                    continue
                state = values["state"]
                if state == DeliveryState.RETRYING:
                    summary.retrying += 1
                    retries.append((item.planned.delivery_id, values["next_attempt_at"]))
                else:
                    finished.append(item.planned.delivery_id)
                    if state == DeliveryState.SUCCEEDED:
                        summary.succeeded += 1
                    else:
                        summary.failed += 1
            await repo.insert_attempts(session, rows=attempt_rows)
            for endpoint_id, fold in folds.items():
                if await self._apply_health(session, endpoint_id, fold, now=now):
                    summary.disabled_endpoints.append(endpoint_id)
        if retries:
            await self._queue.schedule_many(retries)
        if finished:
            await self._queue.complete_retry(finished)
        return summary

    def _decide(
        self, item: AttemptResult, outcome: Outcome, *, now: datetime
    ) -> tuple[dict[str, Any], float | None]:
        planned, result = item.planned, item.result
        values: dict[str, Any] = {
            "attempt_number": planned.attempt_number,
            "last_status_code": result.status_code,
            "lease_until": None,
            "updated_at": now,
        }
        next_delay: float | None = None
        log_fields: dict[str, Any] = {
            "job_id": planned.delivery_id,
            "endpoint_id": planned.endpoint_id,
            "attempt": planned.attempt_number,
            "status_code": result.status_code,
            "error": result.error.value if result.error else None,
            "duration_ms": result.duration_ms,
        }
        match outcome:
            case Delivered():
                target = DeliveryState.SUCCEEDED
                values["last_error"] = None
                self._metrics.delivery_total.labels("delivered").inc()
            case RetryableFailure(retry_after_s=retry_after_s):
                engine = ExponentialBackoffEngine(planned.config, self._rng)
                next_delay = engine.next_retry_delay(
                    retry_number=planned.retry_number,
                    elapsed_s=(now - planned.first_attempt_at).total_seconds(),
                    retry_after_s=retry_after_s,
                )
                self._metrics.delivery_total.labels("retryable").inc()
                self._metrics.endpoint_failure_total.labels(planned.endpoint_id).inc()
                if next_delay is None:
                    target = DeliveryState.FAILED
                    reason = (
                        "max_retries"
                        if planned.retry_number > planned.config.max_retries
                        else "max_retry_duration"
                    )
                    values["last_error"] = str(RetriesExhausted(planned.attempt_number, reason))
                    self._metrics.dead_letter_total.labels("exhausted").inc()
                else:
                    target = DeliveryState.RETRYING
                    values["last_error"] = _describe(result)
                    values["next_attempt_at"] = now + timedelta(seconds=next_delay)
                    self._metrics.retry_total.labels(_retry_reason(result)).inc()
                    self._metrics.retry_delay_seconds.observe(next_delay)
            case PermanentFailure():
                target = DeliveryState.FAILED
                values["last_error"] = str(PermanentFailureError(_describe(result)))
                self._metrics.delivery_total.labels("permanent").inc()
                self._metrics.endpoint_failure_total.labels(planned.endpoint_id).inc()
                self._metrics.dead_letter_total.labels("permanent").inc()
            case EndpointGone(reason=reason):
                target = DeliveryState.FAILED
                values["last_error"] = f"endpoint answered {result.status_code}: {reason.value}"
                self._metrics.delivery_total.labels("gone").inc()
                self._metrics.endpoint_failure_total.labels(planned.endpoint_id).inc()
                self._metrics.dead_letter_total.labels("endpoint_gone").inc()
        values["state"] = transition(DeliveryState.DELIVERING, target).value
        if target is not DeliveryState.RETRYING:
            values["next_attempt_at"] = None
            values["completed_at"] = now
        log.info(
            "delivery.attempt",
            **log_fields,
            outcome=type(outcome).__name__,
            state=values["state"],
            delay=next_delay,
        )
        return values, next_delay

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
            "response_body": item.result.response_body,
            "next_delay": next_delay,
        }

    @staticmethod
    def _fold(fold: _EndpointFold, item: AttemptResult, outcome: Outcome) -> None:
        if isinstance(outcome, Delivered):
            fold.last_success_at = item.started_at
            fold.first_failure_at = None
            return
        if fold.first_failure_at is None:
            fold.first_failure_at = item.started_at
        if isinstance(outcome, EndpointGone):
            fold.gone = outcome.reason

    async def _apply_health(
        self, session: AsyncSession, endpoint_id: str, fold: _EndpointFold, *, now: datetime
    ) -> bool:
        """Write the batch's effect on one endpoint; True if this disabled it."""
        failing_since = await repo.record_endpoint_results(
            session,
            endpoint_id=endpoint_id,
            last_success_at=fold.last_success_at,
            first_failure_at=fold.first_failure_at,
        )
        reason: DisabledReason | None = fold.gone
        if reason is None and should_disable(
            failing_since=failing_since, now=now, window_s=self._failure_window_s
        ):
            reason = DisabledReason.FAILING
        if reason is None:
            return False
        disabled = await repo.disable_endpoint(
            session, endpoint_id=endpoint_id, reason=reason.value, now=now
        )
        if disabled:
            cancelled = await repo.cancel_deliveries(
                session, now=now, reason=repo.ENDPOINT_DISABLED, endpoint_id=endpoint_id
            )
            self._metrics.endpoint_disabled_total.labels(reason.value).inc()
            log.warning(
                "endpoint.disabled",
                endpoint_id=endpoint_id,
                reason=reason.value,
                cancelled_deliveries=len(cancelled),
            )
        return disabled


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
