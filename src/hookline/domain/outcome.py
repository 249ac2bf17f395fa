"""What one delivery attempt came to, decided from the endpoint's answer (or its absence).

``classify`` turns a status code and/or a transport error into one of four values that the
delivery service matches on (ARCHITECTURE.md, "One attempt, decided"):

    Delivered         2xx                                             → succeeded
    EndpointGone      a status in the endpoint's disable_on_status    → failed; endpoint disabled
    RetryableFailure  408, 429, 5xx, a status outside 100-599;
                      timeout, connect, tls, invalid_response         → retrying (or failed when
                                                                        retries are used up)
    PermanentFailure  other 4xx, 3xx (as redirect), 1xx;
                      blocked_address, redirect, invalid_url          → failed (dead letter)

These are outcomes, not exceptions (``hookline.errors.PermanentFailure`` is the *error* recorded
when a delivery stops being retried; this module's ``PermanentFailure`` is the *outcome*).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Final

from hookline.domain.retry_after import parse_retry_after
from hookline.domain.states import DisabledReason


class AttemptError(StrEnum):
    """Why an attempt got no usable answer. The values are public API (an attempt's ``error``)."""

    TIMEOUT = "timeout"
    """No complete answer within the delivery timeout."""
    CONNECT = "connect"
    """The connection could not be made or broke (refused, reset, DNS failure)."""
    TLS = "tls"
    """The TLS handshake or the certificate check failed."""
    BLOCKED_ADDRESS = "blocked_address"
    """The URL resolves to an address the SSRF guard refuses; retrying cannot help."""
    REDIRECT = "redirect"
    """The endpoint answered 3xx; redirects are not followed."""
    INVALID_RESPONSE = "invalid_response"
    """The answer was not valid HTTP (bad status line, broken body, status outside 100-599)."""
    INVALID_URL = "invalid_url"
    """The endpoint's URL cannot be requested at all; retrying cannot help."""
    INTERNAL = "internal"
    """hookline itself failed while sending (a bug, logged with its traceback); retried."""


RETRYABLE_ERRORS: Final = frozenset(
    {
        AttemptError.TIMEOUT,
        AttemptError.CONNECT,
        AttemptError.TLS,
        AttemptError.INVALID_RESPONSE,
        AttemptError.INTERNAL,
    }
)
"""Errors that may go away by themselves, so the attempt is retried."""

RETRYABLE_STATUSES: Final = frozenset({408, 429})
"""The 4xx statuses that ask to come back later (every 5xx is retryable as well)."""


def is_retryable_status(status_code: int) -> bool:
    """Whether an answer with ``status_code`` is worth retrying (``disable_on_status`` aside).

    408, 429 and every 5xx are; so is a status outside 100-599, which is an invalid response.
    """
    if not 100 <= status_code <= 599:
        return True
    return status_code in RETRYABLE_STATUSES or status_code >= 500


def is_retryable_error(error: AttemptError) -> bool:
    """Whether an attempt that failed with ``error`` is worth retrying."""
    return AttemptError(error) in RETRYABLE_ERRORS


@dataclass(frozen=True, slots=True)
class Delivered:
    """The endpoint accepted the delivery (2xx)."""

    retryable: ClassVar[bool] = False
    status_code: int


@dataclass(frozen=True, slots=True)
class RetryableFailure:
    """The attempt failed in a way that may pass; ``retry_after_s`` is what the endpoint asked."""

    retryable: ClassVar[bool] = True
    status_code: int | None
    error: AttemptError | None
    retry_after_s: float | None


@dataclass(frozen=True, slots=True)
class PermanentFailure:
    """The attempt failed in a way retrying cannot change: the delivery is dead-lettered."""

    retryable: ClassVar[bool] = False
    status_code: int | None
    error: AttemptError | None


@dataclass(frozen=True, slots=True)
class EndpointGone:
    """The endpoint answered a status in its ``disable_on_status``: disable it, stop delivering."""

    retryable: ClassVar[bool] = False
    status_code: int
    reason: DisabledReason


Outcome = Delivered | RetryableFailure | PermanentFailure | EndpointGone


def classify(
    *,
    status_code: int | None,
    error: AttemptError | None,
    retry_after: str | None,
    now: datetime,
    disable_on_status: Collection[int],
) -> Outcome:
    """Decide what an attempt came to.

    A received status decides when there is one (``error`` is then only carried along); without
    one, ``error`` decides. ``disable_on_status`` is checked before anything else, so a config
    may disable on a 5xx too. ``retry_after`` (the raw header) is read only for retryable statuses.
    Raises ``ValueError`` when both ``status_code`` and ``error`` are ``None``.
    """
    if status_code is None:
        if error is None:
            raise ValueError("an attempt has a status code, an error, or both")
        if is_retryable_error(error):
            return RetryableFailure(status_code=None, error=error, retry_after_s=None)
        return PermanentFailure(status_code=None, error=error)
    if status_code in disable_on_status:
        reason = DisabledReason.NOT_FOUND if status_code == 404 else DisabledReason.GONE
        return EndpointGone(status_code=status_code, reason=reason)
    if not 100 <= status_code <= 599:
        return RetryableFailure(
            status_code=status_code, error=AttemptError.INVALID_RESPONSE, retry_after_s=None
        )
    if 200 <= status_code <= 299:
        return Delivered(status_code=status_code)
    if is_retryable_status(status_code):
        return RetryableFailure(
            status_code=status_code,
            error=error,
            retry_after_s=parse_retry_after(retry_after, now=now),
        )
    if 300 <= status_code <= 399:
        return PermanentFailure(status_code=status_code, error=AttemptError.REDIRECT)
    return PermanentFailure(status_code=status_code, error=error)
