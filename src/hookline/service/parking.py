"""Endpoint transitions that park, release and report: shared by the worker's settle path, the
lifecycle loop and the API's disable/enable.

- ``disable_in`` disables an endpoint and parks its queued deliveries (``gone``: cancels them);
  an endpoint disabled as ``failing`` gets its first probe planned.
- ``recover_in`` makes a disabled endpoint ``recovering`` (a fresh slow-start bucket) when it
  has parked deliveries, ``active`` when it has none.
- ``record_answers_in`` folds a settled batch's answers from a recovering endpoint into its
  bucket, and parks it again after ``max_failures`` failures in a row.
- ``TransitionReporter`` turns a committed ``Transition`` into the operator event: a log line,
  ``webhook_endpoint_transitions_total`` and the alert notifier, with ``fail_since`` and
  ``trigger`` (``automatic`` | ``manual``).

The ``*_in`` functions run inside the caller's transaction and report nothing themselves: the
caller reports once it has committed (a rolled-back transition never alerts).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from hookline.domain.lifecycle import (
    ProbePolicy,
    ProbeState,
    RecoveryBucket,
    RecoveryPolicy,
)
from hookline.domain.states import (
    PARKING_REASONS,
    DisabledReason,
    EndpointStatus,
)
from hookline.observability.logging import get_logger
from hookline.observability.metrics import Metrics
from hookline.service.alert_sink import AlertSink
from hookline.settings import Settings
from hookline.storage.models import Endpoint
from hookline.storage.repositories import deliveries as deliveries_repo
from hookline.storage.repositories import endpoints as endpoints_repo
from hookline.storage.repositories import lifecycle as repo

log = get_logger("hookline.lifecycle")

Trigger = Literal["automatic", "manual"]
PARKED_OVERFLOW: Final = "parked_overflow"
"""``last_error`` (and dead-letter reason) of parked deliveries beyond the count or age bound."""
DISCARDED: Final = "discarded"
"""``last_error`` (and dead-letter reason) of parked deliveries an operator discarded."""


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """The settings of parking, probing and the slow start."""

    probe: ProbePolicy = field(default_factory=ProbePolicy)
    recovery: RecoveryPolicy = field(default_factory=RecoveryPolicy)
    parked_max: int = 10_000
    parked_max_age_s: float = 7 * 86400.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LifecyclePolicy:
        return cls(
            probe=ProbePolicy(
                min_interval_s=settings.probe_min_interval_s,
                max_interval_s=settings.probe_max_interval_s,
                successes_needed=settings.probe_successes,
            ),
            recovery=RecoveryPolicy(
                start_rate=settings.recovery_start_rate,
                max_rate=settings.recovery_max_rate,
                max_failures=settings.recovery_max_failures,
            ),
            parked_max=settings.parked_max_per_endpoint,
            parked_max_age_s=settings.parked_max_age_s,
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """One committed change of an endpoint's status, for the operator event."""

    endpoint_id: str
    status: str
    """Where it went: ``disabled``, ``recovering`` or ``active``."""
    trigger: Trigger
    fail_since: datetime | None
    reason: str | None = None
    """The ``DisabledReason`` of a disable."""
    parked: tuple[str, ...] = ()
    """Deliveries this transition parked (a disable), or that wait parked (a recovery)."""
    cancelled: tuple[str, ...] = ()
    parked_count: int = 0


def lifecycle_of(endpoint: Endpoint) -> dict[str, Any]:
    """The endpoint's stored lifecycle state (a dict; empty when none or unreadable)."""
    stored = endpoint.lifecycle
    return dict(stored) if isinstance(stored, dict) else {}


def fail_since_of(endpoint: Endpoint) -> datetime | None:
    """When the failures that disabled the endpoint began, as recorded at the disable."""
    raw = lifecycle_of(endpoint).get("fail_since")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else None
    return None


async def disable_in(
    session: AsyncSession,
    *,
    endpoint_id: str,
    reason: DisabledReason,
    trigger: Trigger,
    now: datetime,
    policy: LifecyclePolicy,
    rng: random.Random,
    from_statuses: tuple[str, ...] = (EndpointStatus.ACTIVE.value,),
    fail_since: datetime | None = None,
) -> Transition | None:
    """Disable the endpoint if it is in ``from_statuses``; park its queued deliveries (cancel
    them, and any parked ones, for ``gone``); plan the first probe of a ``failing`` one. None
    if it was not in such a status (another process got there first, or it is disabled
    already)."""
    probe = ProbeState.start(policy.probe)
    state: dict[str, Any] = {
        "probe": probe.to_json(),
        "fail_since": None if fail_since is None else fail_since.isoformat(),
        "trigger": trigger,
    }
    endpoint = await repo.set_endpoint_state(
        session,
        endpoint_id=endpoint_id,
        from_statuses=from_statuses,
        values={
            "status": EndpointStatus.DISABLED.value,
            "disabled_reason": reason.value,
            "disabled_at": now,
            "updated_at": now,
            "probe_next_at": probe.next_at(now, rng) if reason is DisabledReason.FAILING else None,
            "lifecycle": state,
        },
    )
    if endpoint is None:
        return None
    parked: list[str] = []
    cancelled: list[str] = []
    if reason in PARKING_REASONS:
        parked = await repo.park_deliveries(session, now=now, endpoint_id=endpoint_id)
    else:
        # gone: done until an operator acts; what was parked (while it recovered) goes too
        cancelled = await deliveries_repo.cancel_deliveries(
            session,
            now=now,
            reason=deliveries_repo.ENDPOINT_DISABLED,
            endpoint_id=endpoint_id,
            states=(*deliveries_repo.QUEUED_STATES, repo.PARKED),
        )
    return Transition(
        endpoint_id=endpoint_id,
        status=EndpointStatus.DISABLED.value,
        trigger=trigger,
        fail_since=fail_since,
        reason=reason.value,
        parked=tuple(parked),
        cancelled=tuple(cancelled),
    )


async def recover_in(
    session: AsyncSession,
    *,
    endpoint: Endpoint,
    trigger: Trigger,
    now: datetime,
    policy: LifecyclePolicy,
) -> Transition | None:
    """Bring a disabled endpoint back: ``recovering`` with a fresh slow-start bucket if it has
    parked deliveries, else ``active``. None if it is no longer disabled."""
    parked = await repo.count_parked(session, endpoint_id=endpoint.id)
    fail_since = fail_since_of(endpoint) or endpoint.failing_since
    status = EndpointStatus.RECOVERING if parked else EndpointStatus.ACTIVE
    lifecycle: dict[str, Any] | None = None
    if status is EndpointStatus.RECOVERING:
        lifecycle = {
            "recovery": RecoveryBucket.start(policy.recovery, now).to_json(),
            "fail_since": None if fail_since is None else fail_since.isoformat(),
            "trigger": trigger,
        }
    changed = await repo.set_endpoint_state(
        session,
        endpoint_id=endpoint.id,
        from_statuses=(EndpointStatus.DISABLED.value,),
        values={
            "status": status.value,
            "disabled_reason": None,
            "disabled_at": None,
            "failing_since": None,
            "probe_next_at": None,
            "lifecycle": lifecycle,
            "updated_at": now,
        },
    )
    if changed is None:
        return None
    return Transition(
        endpoint_id=endpoint.id,
        status=status.value,
        trigger=trigger,
        fail_since=fail_since,
        parked_count=parked,
    )


async def finish_recovery_in(
    session: AsyncSession, *, endpoint: Endpoint, now: datetime
) -> Transition | None:
    """A recovering endpoint with nothing left parked becomes ``active``."""
    state = lifecycle_of(endpoint)
    fail_since = fail_since_of(endpoint)  # before the update clears the state it is read from
    changed = await repo.set_endpoint_state(
        session,
        endpoint_id=endpoint.id,
        from_statuses=(EndpointStatus.RECOVERING.value,),
        values={"status": EndpointStatus.ACTIVE.value, "lifecycle": None, "updated_at": now},
    )
    if changed is None:
        return None
    trigger: Trigger = "manual" if state.get("trigger") == "manual" else "automatic"
    return Transition(
        endpoint_id=endpoint.id,
        status=EndpointStatus.ACTIVE.value,
        trigger=trigger,
        fail_since=fail_since,
    )


async def record_answers_in(
    session: AsyncSession,
    *,
    endpoint_id: str,
    successes: int,
    failures: int,
    retry_after_s: float | None,
    now: datetime,
    policy: LifecyclePolicy,
    rng: random.Random,
) -> Transition | None:
    """Fold answers from a recovering endpoint into its bucket (the row is locked); after
    ``max_failures`` failures in a row, disable it as ``failing`` again (its queued deliveries
    park behind the rest, probing starts over). The re-park, if any."""
    endpoint = await endpoints_repo.get_endpoint(session, endpoint_id=endpoint_id, for_update=True)
    if endpoint is None or endpoint.status != EndpointStatus.RECOVERING:
        return None
    state = lifecycle_of(endpoint)
    bucket = RecoveryBucket.from_json(state.get("recovery"), policy.recovery, now)
    bucket = bucket.after_answers(
        successes=successes,
        failures=failures,
        retry_after_s=retry_after_s,
        policy=policy.recovery,
        now=now,
    )
    if bucket.should_repark(policy.recovery):
        return await disable_in(
            session,
            endpoint_id=endpoint_id,
            reason=DisabledReason.FAILING,
            trigger="automatic",
            now=now,
            policy=policy,
            rng=rng,
            from_statuses=(EndpointStatus.RECOVERING.value,),
            fail_since=fail_since_of(endpoint),
        )
    endpoint.lifecycle = {**state, "recovery": bucket.to_json()}
    return None


class TransitionReporter:
    """The operator event of a committed transition: log line, metric, alert."""

    def __init__(self, *, metrics: Metrics | None, alerts: AlertSink | None) -> None:
        self._metrics = metrics
        self._alerts = alerts

    def report(self, transition: Transition) -> None:
        t = transition
        fail_since = None if t.fail_since is None else t.fail_since.isoformat()
        if self._metrics is not None:
            self._metrics.endpoint_transitions_total.labels(t.status, t.trigger).inc()
        if t.status == EndpointStatus.DISABLED:
            log.warning(
                "endpoint.disabled",
                endpoint_id=t.endpoint_id,
                reason=t.reason,
                trigger=t.trigger,
                fail_since=fail_since,
                parked_deliveries=len(t.parked),
                cancelled_deliveries=len(t.cancelled),
            )
            if self._metrics is not None and t.reason is not None:
                self._metrics.endpoint_disabled_total.labels(t.reason).inc()
            if self._alerts is not None:
                self._alerts.endpoint_disabled(
                    endpoint_id=t.endpoint_id,
                    reason=t.reason or "",
                    trigger=t.trigger,
                    cancelled_deliveries=len(t.cancelled),
                    parked_deliveries=len(t.parked),
                    fail_since=t.fail_since,
                )
            return
        log.info(
            f"endpoint.{t.status}",
            endpoint_id=t.endpoint_id,
            trigger=t.trigger,
            fail_since=fail_since,
            parked_deliveries=t.parked_count,
        )
        if self._alerts is not None:
            self._alerts.endpoint_recovered(
                endpoint_id=t.endpoint_id,
                status=t.status,
                trigger=t.trigger,
                fail_since=t.fail_since,
                parked_deliveries=t.parked_count,
            )
