"""The failure-disable rule: an endpoint whose every attempt failed for a whole window is disabled.

An endpoint carries ``failing_since``, the start of its current run of failed attempts with no
success in between (``None`` while it is healthy). A success clears it; a failure keeps it, or
starts it when there is none. Once ``now - failing_since`` reaches ``FAILURE_DISABLE_WINDOW``
(24 h by default) the endpoint is disabled with reason ``failing``.
"""

from __future__ import annotations

from datetime import datetime

from hookline.domain.outcome import Delivered, Outcome


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")


def record_success() -> datetime | None:
    """The endpoint's ``failing_since`` after a delivered attempt: cleared, so always ``None``.

    Typed like the column so that ``endpoint.failing_since = record_success()`` type-checks.
    """
    return None


def record_failure(*, failing_since: datetime | None, now: datetime) -> datetime:
    """The endpoint's ``failing_since`` after a failed attempt: the run's start, kept or begun."""
    _require_aware(now)
    return now if failing_since is None else failing_since


def failing_since_after(
    outcome: Outcome, *, failing_since: datetime | None, now: datetime
) -> datetime | None:
    """The endpoint's ``failing_since`` after an attempt that came to ``outcome``."""
    if isinstance(outcome, Delivered):
        return record_success()
    return record_failure(failing_since=failing_since, now=now)


def should_disable(*, failing_since: datetime | None, now: datetime, window_s: float) -> bool:
    """Whether the endpoint has failed, with no success, for at least ``window_s`` seconds."""
    _require_aware(now)
    if failing_since is None:
        return False
    return (now - failing_since).total_seconds() >= window_s
