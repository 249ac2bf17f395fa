"""parse_retry_after: delta-seconds, HTTP-dates, and garbage that never raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookline.domain.retry_after import parse_retry_after

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 30 ", 30.0),
        ("1.5", 1.5),
        ("86400", 86400.0),
    ],
)
def test_delta_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_http_date_in_the_future_is_the_seconds_until_it() -> None:
    header = format_datetime(NOW + timedelta(minutes=5), usegmt=True)
    assert header.endswith("GMT")
    assert parse_retry_after(header, now=NOW) == 300.0


def test_http_date_with_an_offset_is_converted() -> None:
    assert parse_retry_after("Sun, 01 Mar 2026 13:02:00 +0100", now=NOW) == 120.0


def test_asctime_date_without_a_zone_is_read_as_gmt() -> None:
    assert parse_retry_after("Sun Mar  1 12:01:00 2026", now=NOW) == 60.0


def test_http_date_in_the_past_means_now() -> None:
    header = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(header, now=NOW) == 0.0


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "-1",
        "-0.5",
        "+5",
        "1e3",
        "nan",
        "NaN",
        "inf",
        "0x10",
        "1_000",
        "\uff15",  # FULLWIDTH DIGIT FIVE: a digit, but not an ASCII one
        "9" * 400,  # parses to float('inf')
        "soon",
        "Sun, 01 Mar 2026 25:00:00 GMT",
        "Sun, 01 Mar 99999 12:00:00 GMT",
    ],
)
def test_garbage_gives_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_naive_now_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_retry_after("5", now=datetime(2026, 1, 1))


@settings(max_examples=200)
@given(st.text())
def test_never_raises_and_never_answers_negative_or_non_finite(value: str) -> None:
    result = parse_retry_after(value, now=NOW)
    assert result is None or 0.0 <= result < float("inf")


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=10**12))
def test_any_non_negative_integer_is_its_own_value(seconds: int) -> None:
    assert parse_retry_after(str(seconds), now=NOW) == float(seconds)
