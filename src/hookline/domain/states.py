"""The delivery state machine and the endpoint status values.

A delivery moves ``pending → delivering → succeeded | retrying | failed``; ``retrying`` goes back
to ``delivering`` when due. ``failed`` is the dead-letter state. Only a person (manual retry,
dead-letter replay, re-enabling an endpoint) moves ``failed`` or ``cancelled`` back to ``pending``.
``parked`` holds a delivery whose endpoint is disabled (but not ``gone``) or recovering: it has no
due time and no queue entry; it is released to ``pending`` when the endpoint recovers, or goes to
``failed`` on overflow or discard, or to ``cancelled`` when the endpoint is deleted.
The string values are public API (the ``state`` field of a delivery, ``status`` and
``disabled_reason`` of a webhook).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from hookline.errors import InvalidTransition


class DeliveryState(StrEnum):
    """Where one delivery (one event to one endpoint) stands."""

    PENDING = "pending"
    DELIVERING = "delivering"
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PARKED = "parked"


_ALLOWED: Final[Mapping[DeliveryState, frozenset[DeliveryState]]] = {
    # → failed without an attempt: its request cannot be built (an unreadable retry config, a
    # malformed secret): a dead letter naming the problem, so it cannot hold up its batch.
    # → parked: its endpoint was disabled (not gone) or went back to parking while recovering.
    DeliveryState.PENDING: frozenset(
        {
            DeliveryState.DELIVERING,
            DeliveryState.CANCELLED,
            DeliveryState.FAILED,
            DeliveryState.PARKED,
        }
    ),
    DeliveryState.RETRYING: frozenset(
        {
            DeliveryState.DELIVERING,
            DeliveryState.CANCELLED,
            DeliveryState.FAILED,
            DeliveryState.PARKED,
        }
    ),
    # delivering → delivering is a re-claim by another worker after the first one's lease expired.
    DeliveryState.DELIVERING: frozenset(
        {
            DeliveryState.SUCCEEDED,
            DeliveryState.RETRYING,
            DeliveryState.FAILED,
            DeliveryState.DELIVERING,
        }
    ),
    # Manual retry, dead-letter replay, re-enabling an endpoint with replay_cancelled; → parked:
    # enabling an endpoint with ``recover: "since:<time>"`` (released with its parked backlog).
    DeliveryState.FAILED: frozenset({DeliveryState.PENDING, DeliveryState.PARKED}),
    DeliveryState.CANCELLED: frozenset({DeliveryState.PENDING, DeliveryState.PARKED}),
    DeliveryState.SUCCEEDED: frozenset(),
    # Released when the endpoint recovers; dead-lettered on overflow (``parked_overflow``) or
    # discard (``discarded``); cancelled when the endpoint is deleted.
    DeliveryState.PARKED: frozenset(
        {DeliveryState.PENDING, DeliveryState.FAILED, DeliveryState.CANCELLED}
    ),
}

TERMINAL_STATES: Final = (DeliveryState.SUCCEEDED, DeliveryState.FAILED, DeliveryState.CANCELLED)
"""States in which nothing happens on its own any more (``completed_at`` is set)."""

QUEUED_STATES: Final = (DeliveryState.PENDING, DeliveryState.RETRYING)
"""States that wait for their due time; deleting or disabling the endpoint cancels them."""

CLAIMABLE_STATES: Final = (*QUEUED_STATES, DeliveryState.DELIVERING)
"""States with an entry in the queue: due (``QUEUED_STATES``) or leased (``delivering``, which
another worker re-claims once the lease expires). ``parked`` has none."""

PARKABLE_STATES: Final = QUEUED_STATES
"""States that move to ``parked`` when their endpoint is disabled for a reason that parks."""

RETRYABLE_BY_HAND: Final = (DeliveryState.FAILED, DeliveryState.CANCELLED)
"""States a person moves back to ``pending`` (manual retry, dead-letter replay, re-enable)."""


def values(states: tuple[DeliveryState, ...]) -> tuple[str, ...]:
    """The column values of ``states``, for SQL ``IN`` lists."""
    return tuple(state.value for state in states)


def allowed_targets(current: DeliveryState) -> frozenset[DeliveryState]:
    """Every state ``current`` may move to."""
    return _ALLOWED[DeliveryState(current)]


def can_transition(current: DeliveryState, target: DeliveryState) -> bool:
    """Whether the machine allows ``current → target``."""
    return DeliveryState(target) in allowed_targets(current)


def transition(current: DeliveryState, target: DeliveryState) -> DeliveryState:
    """``target``, if ``current → target`` is allowed; otherwise raise ``InvalidTransition``."""
    if not can_transition(current, target):
        raise InvalidTransition(str(current), str(target))
    return DeliveryState(target)


class EndpointStatus(StrEnum):
    """Whether an endpoint receives deliveries."""

    ACTIVE = "active"
    DISABLED = "disabled"
    RECOVERING = "recovering"
    """Healthy again: its parked deliveries are released through a slow-start token bucket;
    new events park behind them until none is left, then ``active``."""


class DisabledReason(StrEnum):
    """Why an endpoint was disabled (API field ``disabled_reason``)."""

    GONE = "gone"
    """It answered a status in ``disable_on_status`` other than 404 (by default 410 Gone)."""
    NOT_FOUND = "not_found"
    """It answered 404 while 404 is in ``disable_on_status``."""
    FAILING = "failing"
    """Every attempt failed for ``FAILURE_DISABLE_WINDOW`` (24 h by default)."""
    MANUAL = "manual"
    """Someone called ``POST /webhooks/{id}/disable``."""


PARKING_REASONS: Final = frozenset(
    {DisabledReason.FAILING, DisabledReason.NOT_FOUND, DisabledReason.MANUAL}
)
"""Disable reasons whose endpoint parks the events that match it; ``gone`` (410) parks nothing:
per Standard Webhooks it is done until an operator acts."""


def parks(status: str, disabled_reason: str | None) -> bool:
    """Whether an endpoint in ``status`` (for ``disabled_reason``) parks new deliveries instead
    of queueing them: disabled for a parking reason, or recovering (new events wait behind the
    backlog)."""
    if status == EndpointStatus.RECOVERING:
        return True
    return status == EndpointStatus.DISABLED and disabled_reason in PARKING_REASONS


def receives(status: str, disabled_reason: str | None) -> bool:
    """Whether an event that matches the endpoint makes a delivery for it at all (queued or
    parked): everything but a ``gone`` endpoint."""
    return status == EndpointStatus.ACTIVE or parks(status, disabled_reason)
