"""classify(): every status 100-599 and every AttemptError, against the written rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from hookline.domain.outcome import (
    AttemptError,
    Delivered,
    EndpointGone,
    Outcome,
    PermanentFailure,
    RetryableFailure,
    classify,
    is_retryable_error,
    is_retryable_status,
)
from hookline.domain.states import DisabledReason
from tests.unit.domain.written_rules import (
    ALL_STATUSES,
    PERMANENT_ERRORS,
    REDIRECT_STATUSES,
    RETRYABLE_ERRORS,
    RETRYABLE_STATUSES,
    SUCCESS_STATUSES,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
DEFAULT_DISABLE = (404, 410)


def _expected_for_status(status: int, disable_on_status: tuple[int, ...]) -> Outcome:
    if status in disable_on_status:
        reason = DisabledReason.NOT_FOUND if status == 404 else DisabledReason.GONE
        return EndpointGone(status_code=status, reason=reason)
    if status in SUCCESS_STATUSES:
        return Delivered(status_code=status)
    if status in RETRYABLE_STATUSES:
        return RetryableFailure(status_code=status, error=None, retry_after_s=7.0)
    if status in REDIRECT_STATUSES:
        return PermanentFailure(status_code=status, error=AttemptError.REDIRECT)
    return PermanentFailure(status_code=status, error=None)  # 1xx and the other 4xx


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_every_status_code(status: int) -> None:
    for disable_on_status in [DEFAULT_DISABLE, (), (410, 500, 503)]:
        outcome = classify(
            status_code=status,
            error=None,
            retry_after="7",
            now=NOW,
            disable_on_status=disable_on_status,
        )
        assert outcome == _expected_for_status(status, disable_on_status), disable_on_status
        assert outcome.retryable is (type(outcome) is RetryableFailure)


@pytest.mark.parametrize("error", list(AttemptError))
def test_every_error_without_a_status(error: AttemptError) -> None:
    outcome = classify(
        status_code=None, error=error, retry_after="7", now=NOW, disable_on_status=DEFAULT_DISABLE
    )
    if error.value in RETRYABLE_ERRORS:
        assert outcome == RetryableFailure(status_code=None, error=error, retry_after_s=None)
    else:
        assert outcome == PermanentFailure(status_code=None, error=error)
    assert is_retryable_error(error) is (error.value in RETRYABLE_ERRORS)


def test_every_attempt_error_is_in_exactly_one_written_set() -> None:
    values = {error.value for error in AttemptError}
    assert values == RETRYABLE_ERRORS | PERMANENT_ERRORS
    assert not RETRYABLE_ERRORS & PERMANENT_ERRORS


def test_attempt_error_values_are_public_api() -> None:
    assert [error.value for error in AttemptError] == [
        "timeout",
        "connect",
        "tls",
        "blocked_address",
        "redirect",
        "invalid_response",
        "invalid_url",
        "internal",
    ]


def test_a_status_decides_and_the_error_is_carried_along() -> None:
    def with_error(status: int, error: AttemptError) -> Outcome:
        return classify(
            status_code=status, error=error, retry_after=None, now=NOW, disable_on_status=()
        )

    assert with_error(200, AttemptError.INVALID_RESPONSE) == Delivered(status_code=200)
    assert with_error(503, AttemptError.INVALID_RESPONSE) == RetryableFailure(
        status_code=503, error=AttemptError.INVALID_RESPONSE, retry_after_s=None
    )
    assert with_error(400, AttemptError.INVALID_RESPONSE) == PermanentFailure(
        status_code=400, error=AttemptError.INVALID_RESPONSE
    )
    assert with_error(302, AttemptError.TIMEOUT) == PermanentFailure(
        status_code=302, error=AttemptError.REDIRECT
    )


def test_disable_on_status_is_checked_before_everything_else() -> None:
    outcome = classify(
        status_code=503, error=None, retry_after="30", now=NOW, disable_on_status=[503]
    )
    assert outcome == EndpointGone(status_code=503, reason=DisabledReason.GONE)
    assert classify(
        status_code=200, error=None, retry_after=None, now=NOW, disable_on_status=[200]
    ) == EndpointGone(status_code=200, reason=DisabledReason.GONE)


@pytest.mark.parametrize("status", [0, 99, 600, 999, -1])
def test_a_status_outside_100_599_is_an_invalid_response(status: int) -> None:
    outcome = classify(
        status_code=status, error=None, retry_after="5", now=NOW, disable_on_status=DEFAULT_DISABLE
    )
    assert outcome == RetryableFailure(
        status_code=status, error=AttemptError.INVALID_RESPONSE, retry_after_s=None
    )
    assert is_retryable_status(status) is True


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),
        ("tomorrow", None),
        (None, None),
    ],
)
@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_retry_after_is_read_for_retryable_statuses(
    status: int, header: str | None, seconds: float | None
) -> None:
    outcome = classify(
        status_code=status, error=None, retry_after=header, now=NOW, disable_on_status=()
    )
    assert outcome == RetryableFailure(status_code=status, error=None, retry_after_s=seconds)


def test_no_status_and_no_error_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="status code, an error"):
        classify(status_code=None, error=None, retry_after=None, now=NOW, disable_on_status=())


def test_outcomes_are_frozen_values() -> None:
    outcome = Delivered(status_code=200)
    with pytest.raises(AttributeError):
        outcome.status_code = 201  # type: ignore[misc]
    assert outcome == Delivered(status_code=200)
    assert hash(outcome) == hash(Delivered(status_code=200))
