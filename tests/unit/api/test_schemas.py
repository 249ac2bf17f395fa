"""api/schemas: the patterns the OpenAPI document states are exactly what the validators take.

A pattern looser than its validator makes the document promise what the server refuses; one
stricter makes it forbid what the server takes. Each pattern is checked both ways: every string
generated from it passes the validator, and for strings from a wider alphabet the pattern and
the validator agree.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from hookline.api.openapi import openapi_document
from hookline.api.schemas.common import (
    MAX_JSON_DEPTH,
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
    TIMESTAMP_EDGE_PATTERN,
    TIMESTAMP_PATTERN,
    AwareUtcDatetime,
    nesting_exceeds,
)
from hookline.api.schemas.urls import WEBHOOK_URL_PATTERN
from hookline.api.schemas.webhooks import WHSEC_PATTERN, Secret, WebhookUrl
from hookline.domain.signing import validate_secret

SECRET = TypeAdapter(Secret)
URL = TypeAdapter(WebhookUrl)
TIMESTAMP = TypeAdapter(AwareUtcDatetime)


def taken(adapter: TypeAdapter[Any], value: object) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


def documented(value: str, pattern: str, *, not_pattern: str | None = None) -> bool:
    return re.search(pattern, value) is not None and (
        not_pattern is None or re.search(not_pattern, value) is None
    )


# --- secret -----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.from_regex(WHSEC_PATTERN, fullmatch=True))
def test_every_documented_secret_is_taken(secret: str) -> None:
    assert taken(SECRET, secret), secret


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=18, max_size=70), st.sampled_from(["", "=", "==", "A", "AA="]))
def test_the_secret_pattern_and_the_validator_agree(key: bytes, tail: str) -> None:
    secret = "whsec_" + base64.b64encode(key).decode() + tail
    assert documented(secret, WHSEC_PATTERN) == taken(SECRET, secret), secret


def test_the_secret_pattern_refuses_what_the_old_one_let_through() -> None:
    almost = "whsec_" + "A" * 33 + "="  # 34 characters cannot be padded base64
    assert documented(almost, r"^whsec_[A-Za-z0-9+/]+={0,2}$")  # the old pattern
    assert not documented(almost, WHSEC_PATTERN)
    with pytest.raises(ValueError, match="base64"):
        validate_secret(almost)


# --- webhook url ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.from_regex(WEBHOOK_URL_PATTERN, fullmatch=True).filter(lambda u: len(u) <= 2048))
def test_every_documented_url_is_taken(url: str) -> None:
    # (a label starting xn-- that is not punycode is the one documented exception; the
    # generator does not reach it)
    assert taken(URL, url), url


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "http:/"]),
    st.text(alphabet="ab1-.:[]@/?#%~ é\x00", max_size=20),
)
def test_a_url_outside_the_pattern_is_refused(scheme: str, rest: str) -> None:
    url = scheme + rest
    if not documented(url, WEBHOOK_URL_PATTERN):
        assert not taken(URL, url), url


# --- timestamps -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.from_regex(TIMESTAMP_PATTERN, fullmatch=True))
def test_a_documented_timestamp_is_taken_unless_the_edge_rule_says_no(text: str) -> None:
    try:
        datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return  # not a calendar date (Feb 30): the date-time format refuses it too
    expected = documented(text, TIMESTAMP_PATTERN, not_pattern=TIMESTAMP_EDGE_PATTERN)
    assert taken(TIMESTAMP, text) == expected, text


@settings(max_examples=200, deadline=None)
@given(st.datetimes(timezones=st.timezones()))
def test_any_datetime_is_taken_exactly_when_documented_and_then_kept_in_utc(
    when: datetime,
) -> None:
    text = when.isoformat()
    expected = documented(text, TIMESTAMP_PATTERN, not_pattern=TIMESTAMP_EDGE_PATTERN)
    assert taken(TIMESTAMP, text) == expected, text
    if expected:
        kept = TIMESTAMP.validate_python(text)
        assert MIN_TIMESTAMP <= kept <= MAX_TIMESTAMP
        assert kept.utcoffset() is not None
        assert kept.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_the_document_states_the_timestamp_rule() -> None:
    since = openapi_document()["components"]["schemas"]["ReplayIn"]["properties"]["since"]
    text = since["anyOf"][0]
    assert text["pattern"] == TIMESTAMP_PATTERN
    assert text["not"] == {"pattern": TIMESTAMP_EDGE_PATTERN}
    assert "1970-01-01T00:00:00Z" in since["description"]


# --- nesting ----------------------------------------------------------------------------------


def test_nesting_is_measured_without_recursion() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    assert nesting_exceeds(deep, MAX_JSON_DEPTH)
    assert not nesting_exceeds(1, 0)
    assert not nesting_exceeds([[{"a": []}]], 4)
    assert nesting_exceeds([[{"a": []}]], 3)


def test_too_deep_in_raw_names_the_field_whatever_the_parser_could_take() -> None:
    from hookline.api.routing import too_deep_in_raw
    from hookline.api.schemas.common import MAX_JSON_DEPTH

    def nested(depth: int) -> str:
        return "[" * depth + "]" * depth

    at_limit = '{"a": "[[[{", "payload": ' + nested(MAX_JSON_DEPTH) + "}"
    assert too_deep_in_raw(at_limit.encode()) is None  # brackets in strings do not count
    for depth in (MAX_JSON_DEPTH + 1, 900, 5000):
        body = '{"event_type": "x", "pay\\u006coad": ' + nested(depth) + "}"
        assert too_deep_in_raw(body.encode()) == ("body", "payload")
    assert too_deep_in_raw(nested(MAX_JSON_DEPTH + 1).encode()) is None
    assert too_deep_in_raw(nested(MAX_JSON_DEPTH + 2).encode()) == ("body",)
