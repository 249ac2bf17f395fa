"""The 24-hour failure-disable rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hookline.domain.endpoint_health import (
    failing_since_after,
    record_failure,
    record_success,
    should_disable,
)
from hookline.domain.outcome import (
    AttemptError,
    Delivered,
    EndpointGone,
    Outcome,
    PermanentFailure,
    RetryableFailure,
)
from hookline.domain.states import DisabledReason

START = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY_S = 86400.0
NAIVE = datetime(2026, 3, 1, 12)  # a naive datetime on purpose


def test_a_failure_starts_a_run_and_later_failures_keep_its_start() -> None:
    first = record_failure(failing_since=None, now=START)
    assert first == START
    later = START + timedelta(hours=5)
    assert record_failure(failing_since=first, now=later) == START


def test_a_success_clears_the_run() -> None:
    assert record_success() is None


@pytest.mark.parametrize(
    ("elapsed", "disable"),
    [
        (timedelta(0), False),
        (timedelta(hours=23, minutes=59), False),
        (timedelta(hours=23, minutes=59, seconds=59, microseconds=999999), False),
        (timedelta(hours=24), True),
        (timedelta(days=3), True),
    ],
)
def test_disable_after_a_full_window_of_failures(elapsed: timedelta, disable: bool) -> None:
    assert should_disable(failing_since=START, now=START + elapsed, window_s=DAY_S) is disable


def test_a_healthy_endpoint_is_never_disabled() -> None:
    assert should_disable(failing_since=None, now=START, window_s=DAY_S) is False


def test_the_window_is_a_setting() -> None:
    now = START + timedelta(hours=1)
    assert should_disable(failing_since=START, now=now, window_s=3600) is True
    assert should_disable(failing_since=START, now=now, window_s=3601) is False


@pytest.mark.parametrize(
    "outcome",
    [
        RetryableFailure(status_code=503, error=None, retry_after_s=None),
        RetryableFailure(status_code=None, error=AttemptError.TIMEOUT, retry_after_s=None),
        PermanentFailure(status_code=400, error=None),
        EndpointGone(status_code=410, reason=DisabledReason.GONE),
    ],
)
def test_every_failed_outcome_keeps_or_starts_the_run(outcome: Outcome) -> None:
    now = START + timedelta(hours=2)
    assert failing_since_after(outcome, failing_since=None, now=now) == now
    assert failing_since_after(outcome, failing_since=START, now=now) == START


def test_a_delivered_outcome_clears_the_run() -> None:
    delivered = Delivered(status_code=200)
    assert failing_since_after(delivered, failing_since=START, now=START) is None


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        record_failure(failing_since=None, now=NAIVE)
    with pytest.raises(ValueError, match="timezone-aware"):
        should_disable(failing_since=None, now=NAIVE, window_s=DAY_S)
