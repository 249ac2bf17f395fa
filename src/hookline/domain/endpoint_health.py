"""The failure-disable rule: an endpoint whose every attempt failed for a whole window is disabled.

An endpoint carries ``failing_since``, the start of its current run of failed attempts with no
success in between (``None`` while it is healthy). A success clears it; a failure keeps it, or
starts it when there is none. That fold runs in SQL, in the settle transaction
(``storage.repositories.deliveries.record_endpoint_results``: ``COALESCE`` keeps the earliest
start, so concurrent workers agree). Once ``now - failing_since`` reaches
``FAILURE_DISABLE_WINDOW`` (24 h by default) the endpoint is disabled with reason ``failing``:
that decision is ``should_disable``.
"""

from __future__ import annotations

from datetime import datetime


def should_disable(*, failing_since: datetime | None, now: datetime, window_s: float) -> bool:
    """Whether the endpoint has failed, with no success, for at least ``window_s`` seconds."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if failing_since is None:
        return False
    return (now - failing_since).total_seconds() >= window_s
