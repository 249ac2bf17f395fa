"""The 24-hour failure-disable rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hookline.domain.endpoint_health import should_disable

START = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY_S = 86400.0
NAIVE = datetime(2026, 3, 1, 12)  # a naive datetime on purpose


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


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        should_disable(failing_since=None, now=NAIVE, window_s=DAY_S)
