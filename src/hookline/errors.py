"""The one exception tree of hookline.

Outcomes of a delivery attempt are values (see ``hookline.domain.outcome``); exceptions are
errors a caller must handle. ``hookline.api.errors`` maps this tree to HTTP status codes in one
place; nothing below ``api/`` raises ``HTTPException``.

    HooklineError
     ├── ConfigurationError      settings that cannot work together (startup)
     ├── NotFound                an id that does not exist                    → 404
     ├── Conflict                the request conflicts with current state     → 409
     │    └── InvalidTransition  a delivery state change the machine forbids
     ├── PayloadTooLarge         an event payload over MAX_PAYLOAD_BYTES      → 413
     ├── Backpressure            the queue holds more than RETRY_QUEUE_MAX_SIZE → 503 + Retry-After
     ├── Unavailable             the database or the queue cannot be reached  → 503
     └── RetryError              why a delivery stopped being retried (recorded on it, not raised)
          ├── RetriesExhausted   max_retries or max_retry_duration used up
          └── PermanentFailure   the endpoint's answer will not change by retrying
"""

from __future__ import annotations


class HooklineError(Exception):
    """Root of every error hookline raises on purpose."""


class ConfigurationError(HooklineError):
    """Settings that are individually valid but cannot work together."""


class NotFound(HooklineError):
    """A resource with the given id does not exist."""

    def __init__(self, kind: str, resource_id: str) -> None:
        super().__init__(f"{kind} {resource_id!r} not found")
        self.kind = kind
        self.resource_id = resource_id


class Conflict(HooklineError):
    """The request is valid but conflicts with the resource's current state."""


class InvalidTransition(Conflict):
    """A delivery state change that the state machine does not allow."""

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"cannot move a delivery from {current!r} to {target!r}")
        self.current = current
        self.target = target


class PayloadTooLarge(HooklineError):
    """An event payload larger than ``MAX_PAYLOAD_BYTES``."""

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(f"payload is {size_bytes} bytes; the limit is {limit_bytes}")
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class Backpressure(HooklineError):
    """The queue is fuller than ``RETRY_QUEUE_MAX_SIZE``: refuse instead of dropping."""

    def __init__(self, depth: int, limit: int, retry_after_s: int) -> None:
        super().__init__(f"queue holds {depth} deliveries (limit {limit}); retry later")
        self.depth = depth
        self.limit = limit
        self.retry_after_s = retry_after_s


class Unavailable(HooklineError):
    """A backing service (database, queue) cannot be reached."""


class RetryError(HooklineError):
    """Why a delivery stopped being retried; recorded on the delivery as ``last_error``."""


class RetriesExhausted(RetryError):
    """``max_retries`` or ``max_retry_duration`` is used up."""

    def __init__(self, attempts: int, reason: str) -> None:
        super().__init__(f"gave up after {attempts} attempts: {reason}")
        self.attempts = attempts
        self.reason = reason


class PermanentFailure(RetryError):
    """The endpoint's answer will not change by retrying (4xx, 3xx, blocked address)."""
