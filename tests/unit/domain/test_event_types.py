"""Event types and patterns: `*` is one whole dot-separated segment, nothing more."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookline.domain.event_types import (
    EVENT_TYPE_FORBIDDEN_REGEX,
    PATTERN_FORBIDDEN_REGEX,
    matches,
    subscribed,
    validate_event_type,
    validate_pattern,
)

# Segments people write, plus the edge of empty ones ("a..b", "a."), which types may contain.
segments = st.text(alphabet="abc_-0", min_size=0, max_size=4)
event_types = st.lists(segments, min_size=1, max_size=5).map(".".join)


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("order.created", "order.created", True),
        ("order.created", "order.paid", False),
        ("order.created", "order.created.v2", False),
        ("order.*", "order.created", True),
        ("order.*", "order.created.v2", False),
        ("order.*", "order", False),
        ("order.*", "order.", False),  # `*` stands for a segment: an empty one is none
        ("order.*", "invoice.created", False),
        ("*.created", "order.created", True),
        ("*.created", "order.paid", False),
        ("*.created", ".created", False),
        ("*", "order", True),
        ("*", "order.created", False),
        ("*.*", "order.created", True),
        ("order.*.v2", "order.created.v2", True),
        ("order.*.v2", "order.created.v3", False),
        ("order.created.*", "order.created", False),
        ("ord*", "ord*", True),  # refused by validate_pattern; stored before: literal at most
        ("ord*", "order", False),
        ("a..b", "a..b", True),
    ],
)
def test_matches(pattern: str, event_type: str, expected: bool) -> None:
    assert matches(pattern, event_type) is expected


def test_no_patterns_means_every_type() -> None:
    assert subscribed([], "anything.at.all")


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (["order.created"], True),
        (["invoice.*", "order.*"], True),
        (["invoice.*", "order.created.*"], False),
        (("order.paid",), False),
    ],
)
def test_subscribed_is_any_pattern_matching(patterns: list[str], expected: bool) -> None:
    assert subscribed(patterns, "order.created") is expected


@pytest.mark.parametrize("pattern", ["order.created", "order.*", "*.created", "*", "*.*", "a..b"])
def test_valid_patterns_are_returned_unchanged(pattern: str) -> None:
    assert validate_pattern(pattern) == pattern


@pytest.mark.parametrize("pattern", ["ord*", "order.cre*", "*order", "**", "order.**", "a.*b.c"])
def test_a_star_inside_a_longer_segment_is_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"`\*` stands for exactly one dot-separated segment"):
        validate_pattern(pattern)


def test_a_published_event_type_is_literal() -> None:
    assert validate_event_type("order.created") == "order.created"
    with pytest.raises(ValueError, match="literal"):
        validate_event_type("order.*")


@given(event_types)
def test_an_exact_type_matches_itself(event_type: str) -> None:
    assert matches(event_type, event_type)
    assert subscribed([event_type], event_type)


@given(st.lists(st.one_of(segments, st.just("*")), min_size=1, max_size=5), event_types)
def test_a_pattern_never_matches_a_type_with_another_number_of_segments(
    parts: list[str], event_type: str
) -> None:
    pattern = ".".join(parts)
    if len(parts) != len(event_type.split(".")):
        assert not matches(pattern, event_type)


@given(st.lists(segments.filter(bool), min_size=1, max_size=5), st.data())
def test_any_non_empty_segments_can_be_replaced_by_a_star(
    parts: list[str], data: st.DataObject
) -> None:
    starred = data.draw(st.lists(st.booleans(), min_size=len(parts), max_size=len(parts)))
    pattern = ".".join("*" if star else part for part, star in zip(parts, starred, strict=True))
    assert matches(pattern, ".".join(parts))


@given(st.text(alphabet="ab.*", max_size=8))
def test_the_schema_regexes_say_what_the_validators_do(text: str) -> None:
    pattern_refused = re.search(PATTERN_FORBIDDEN_REGEX, text) is not None
    try:
        validate_pattern(text)
    except ValueError:
        assert pattern_refused
    else:
        assert not pattern_refused
    type_refused = re.search(EVENT_TYPE_FORBIDDEN_REGEX, text) is not None
    try:
        validate_event_type(text)
    except ValueError:
        assert type_refused
    else:
        assert not type_refused
