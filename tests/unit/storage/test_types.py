"""UtcDateTime's conversions, checked against both dialects without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects import postgresql, sqlite

from hookline.storage.types import JSONVariant, UtcDateTime

PG = postgresql.asyncpg.dialect()
SQLITE = sqlite.aiosqlite.dialect()
MINUS_5 = timezone(timedelta(hours=-5))


def test_aware_values_are_stored_as_utc() -> None:
    value = datetime(2026, 1, 1, 7, 30, tzinfo=MINUS_5)
    column = UtcDateTime()

    on_pg = column.process_bind_param(value, PG)
    on_sqlite = column.process_bind_param(value, SQLITE)

    assert on_pg == datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    assert on_pg is not None
    assert on_pg.tzinfo is UTC
    assert on_sqlite == datetime(2026, 1, 1, 12, 30)  # naive, UTC by construction


def test_naive_values_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        UtcDateTime().process_bind_param(datetime(2026, 1, 1), PG)


def test_non_datetimes_are_refused() -> None:
    with pytest.raises(TypeError, match="needs a datetime"):
        UtcDateTime().process_bind_param("2026-01-01", SQLITE)  # type: ignore[arg-type]


@pytest.mark.parametrize("dialect", [PG, SQLITE], ids=["postgres", "sqlite"])
def test_none_passes_through(dialect: object) -> None:
    column = UtcDateTime()
    assert column.process_bind_param(None, dialect) is None  # type: ignore[arg-type]
    assert column.process_result_value(None, dialect) is None  # type: ignore[arg-type]


def test_values_read_back_are_aware_utc() -> None:
    column = UtcDateTime()
    naive = column.process_result_value(datetime(2026, 1, 1, 12), SQLITE)
    offset = column.process_result_value(datetime(2026, 1, 1, 7, tzinfo=MINUS_5), PG)

    assert naive == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert naive is not None
    assert naive.tzinfo is UTC
    assert offset == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert offset is not None
    assert offset.tzinfo is UTC


def test_json_is_jsonb_on_postgres_only() -> None:
    on_pg = JSONVariant.dialect_impl(PG)
    on_sqlite = JSONVariant.dialect_impl(SQLITE)

    assert isinstance(on_pg, postgresql.JSONB)
    assert isinstance(on_sqlite, sqltypes.JSON)
    assert not isinstance(on_sqlite, postgresql.JSONB)
    assert on_pg.none_as_null is True
    assert on_sqlite.none_as_null is True
