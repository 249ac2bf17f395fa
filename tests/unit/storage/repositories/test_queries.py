"""The event-type filter in SQL decides exactly what ``hookline.domain.event_types.matches``
decides, run on an in-memory SQLite: the GLOB form SQLite gets, and the LIKE form PostgreSQL gets
(on SQLite with ``case_sensitive_like``, as PostgreSQL's LIKE is). The integration test
``tests/integration/api/test_events_list.py`` runs it on both real databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, create_engine, select

from hookline.domain.event_types import matches, validate_pattern
from hookline.storage.repositories.queries import event_type_matches

# Characters that mean something to LIKE (% _ \), to GLOB (* ? [ ]), both cases of a letter (the
# LIKE of SQLite ignores ASCII case) and one beyond ASCII. No `*`: a published type cannot have it.
_CHARS = "aA%_\\?[]é-"
segments = st.text(alphabet=_CHARS, min_size=0, max_size=3)
pattern_segments = st.one_of(st.just("*"), segments)
patterns = st.lists(pattern_segments, min_size=1, max_size=4).map(".".join)
event_types = st.lists(segments, min_size=1, max_size=4).map(".".join)

_TYPES = Table(
    "types",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("event_type", String(255), nullable=False),
)
TRICKY_TYPES = [
    "order.created",
    "order.created.v2",
    "order",
    "order.",
    ".created",
    "Order.Created",
    "or_er.x",
    "orXer.x",
    "100%.x",
    "1000.x",
    "a\\b.c",
    "a\\\\b.c",
    "ab.c",
    "a?.b",
    "a[b].c",
    "a..c",
    "a.b.c",
]
TRICKY_PATTERNS = [
    "order.*",
    "*.created",
    "*",
    "*.*",
    "*.*.*",
    "order.*.v2",
    "or_er.*",
    "100%.*",
    "a\\b.*",
    "a?.*",
    "a[b].*",
    "a.*.c",
    "order.created",
    "Order.*",
]


@pytest.fixture(scope="module")
def sqlite() -> Iterator[Connection]:
    """SQLite as the embedded deployment runs it (LIKE ignoring ASCII case)."""
    engine = create_engine("sqlite://")
    with engine.connect() as connection:
        _TYPES.create(connection)
        yield connection
    engine.dispose()


@pytest.fixture(scope="module")
def sqlite_like_as_postgresql() -> Iterator[Connection]:
    """SQLite whose LIKE is case-sensitive, as PostgreSQL's is: runs the PostgreSQL form."""
    engine = create_engine("sqlite://")
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA case_sensitive_like = ON")
        _TYPES.create(connection)
        yield connection
    engine.dispose()


def _selected(connection: Connection, types: list[str], pattern: str, *, sqlite: bool) -> set[str]:
    connection.execute(_TYPES.delete())
    if types:
        connection.execute(_TYPES.insert(), [{"event_type": t} for t in types])
    condition = event_type_matches(_TYPES.c.event_type, pattern, sqlite=sqlite)
    return set(connection.execute(select(_TYPES.c.event_type).where(condition)).scalars())


@pytest.mark.parametrize("pattern", TRICKY_PATTERNS)
def test_tricky_types_match_as_the_domain_says(
    sqlite: Connection, sqlite_like_as_postgresql: Connection, pattern: str
) -> None:
    expected = {t for t in TRICKY_TYPES if matches(pattern, t)}
    assert _selected(sqlite, TRICKY_TYPES, pattern, sqlite=True) == expected
    assert _selected(sqlite_like_as_postgresql, TRICKY_TYPES, pattern, sqlite=False) == expected


def test_the_tricky_cases_are_not_vacuous() -> None:
    assert {t for t in TRICKY_TYPES if matches("or_er.*", t)} == {"or_er.x"}
    assert {t for t in TRICKY_TYPES if matches("*.created", t)} == {"order.created"}
    assert {t for t in TRICKY_TYPES if matches("a\\b.*", t)} == {"a\\b.c"}


@st.composite
def types_and_pattern(draw: st.DrawFn) -> tuple[list[str], str]:
    """A pattern and types to test it on: arbitrary ones, and ones made from the pattern by
    filling each `*` (so that matches are common, not luck)."""
    pattern = draw(patterns)
    filled = [
        ".".join(draw(segments) if part == "*" else part for part in pattern.split("."))
        for _ in range(draw(st.integers(min_value=0, max_value=4)))
    ]
    return draw(st.lists(event_types, max_size=6)) + filled, pattern


@given(case=types_and_pattern())
@example(case=(["Order.created", "order.created"], "order.*"))  # case matters
@example(case=(["or_er.x", "orXer.x"], "or_er.*"))  # `_` is itself
@example(case=(["100%.x", "1000.x"], "100%.*"))  # `%` is itself
@example(case=(["a\\b.c", "ab.c"], "a\\b.*"))  # `\` is itself
@example(case=(["a?.b", "ab.b", "a[b].c", "ab.c"], "a?.*"))  # GLOB's own characters too
@example(case=(["a..c", "a.b.c", "a.b.b.c"], "a.*.c"))  # one non-empty segment, no dot
def test_sql_selects_exactly_what_the_domain_matches(
    sqlite: Connection, sqlite_like_as_postgresql: Connection, case: tuple[list[str], str]
) -> None:
    types, pattern = case
    assert validate_pattern(pattern) == pattern  # only valid patterns reach the query
    expected = {t for t in types if matches(pattern, t)}
    assert _selected(sqlite, types, pattern, sqlite=True) == expected
    assert _selected(sqlite_like_as_postgresql, types, pattern, sqlite=False) == expected
