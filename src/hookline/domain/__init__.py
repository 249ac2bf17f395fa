"""hookline's domain: the rules of delivering and retrying, as pure functions and values.

This layer owns the retry policy (``RetryConfig``), the backoff engine and the planned retry
timeline, the classification of one attempt's result, the delivery state machine, the
endpoint-health (failure-disable) rule, Standard Webhooks signing and which event types a
webhook's patterns subscribe to. It does no I/O, keeps no clock and draws no randomness of its
own: callers pass ``now`` and an ``rng``. It may import the
kernel (``hookline.errors``, ``clock``, ``ids``), the standard library and pydantic; nothing else.

In code the subscriber is an Endpoint (table webhook_endpoints); the API calls it a webhook.
"""

from hookline.domain.backoff import ExponentialBackoffEngine
from hookline.domain.endpoint_health import should_disable
from hookline.domain.event_types import (
    matches,
    subscribed,
    validate_event_type,
    validate_pattern,
)
from hookline.domain.outcome import (
    AttemptError,
    Delivered,
    EndpointGone,
    Outcome,
    PermanentFailure,
    RetryableFailure,
    classify,
)
from hookline.domain.retry_after import parse_retry_after
from hookline.domain.retry_config import DEFAULT_RETRY_CONFIG, JitterMode, RetryConfig
from hookline.domain.schedule import RetrySchedule, ScheduledRetry, plan_schedule
from hookline.domain.states import (
    CLAIMABLE_STATES,
    QUEUED_STATES,
    RETRYABLE_BY_HAND,
    TERMINAL_STATES,
    DeliveryState,
    DisabledReason,
    EndpointStatus,
    can_transition,
    transition,
)

__all__ = [
    "CLAIMABLE_STATES",
    "DEFAULT_RETRY_CONFIG",
    "QUEUED_STATES",
    "RETRYABLE_BY_HAND",
    "TERMINAL_STATES",
    "AttemptError",
    "Delivered",
    "DeliveryState",
    "DisabledReason",
    "EndpointGone",
    "EndpointStatus",
    "ExponentialBackoffEngine",
    "JitterMode",
    "Outcome",
    "PermanentFailure",
    "RetryConfig",
    "RetrySchedule",
    "RetryableFailure",
    "ScheduledRetry",
    "can_transition",
    "classify",
    "matches",
    "parse_retry_after",
    "plan_schedule",
    "should_disable",
    "subscribed",
    "transition",
    "validate_event_type",
    "validate_pattern",
]
