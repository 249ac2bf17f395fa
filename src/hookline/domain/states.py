"""The delivery state machine and the endpoint status values.

A delivery moves ``pending → delivering → succeeded | retrying | failed``; ``retrying`` goes back
to ``delivering`` when due. ``failed`` is the dead-letter state. Only a person (manual retry,
dead-letter replay, re-enabling an endpoint) moves ``failed`` or ``cancelled`` back to ``pending``.
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


_ALLOWED: Final[Mapping[DeliveryState, frozenset[DeliveryState]]] = {
    # → failed without an attempt: its request cannot be built (an unreadable retry config, a
    # malformed secret): a dead letter naming the problem, so it cannot hold up its batch.
    DeliveryState.PENDING: frozenset(
        {DeliveryState.DELIVERING, DeliveryState.CANCELLED, DeliveryState.FAILED}
    ),
    DeliveryState.RETRYING: frozenset(
        {DeliveryState.DELIVERING, DeliveryState.CANCELLED, DeliveryState.FAILED}
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
    # Manual retry, dead-letter replay, re-enabling an endpoint with replay_cancelled.
    DeliveryState.FAILED: frozenset({DeliveryState.PENDING}),
    DeliveryState.CANCELLED: frozenset({DeliveryState.PENDING}),
    DeliveryState.SUCCEEDED: frozenset(),
}

TERMINAL_STATES: Final = (DeliveryState.SUCCEEDED, DeliveryState.FAILED, DeliveryState.CANCELLED)
"""States in which nothing happens on its own any more (``completed_at`` is set)."""

QUEUED_STATES: Final = (DeliveryState.PENDING, DeliveryState.RETRYING)
"""States that wait for their due time; deleting or disabling the endpoint cancels them."""

CLAIMABLE_STATES: Final = tuple(s for s in DeliveryState if s not in TERMINAL_STATES)
"""States with an entry in the queue: due (``QUEUED_STATES``) or leased (``delivering``, which
another worker re-claims once the lease expires)."""

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
