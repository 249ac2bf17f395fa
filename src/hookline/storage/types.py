"""Column types shared by the models: UTC timestamps on every backend, JSON that is JSONB on PG."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC ``datetime`` in, the same instant as aware UTC out.

    Writing a naive datetime is a bug (whose local time would it be?) and raises ``ValueError``.
    Aware values are converted to UTC before they are stored, so every stored value is UTC:
    PostgreSQL keeps ``timestamptz``; SQLite keeps the text SQLAlchemy writes, without an offset,
    which still compares and sorts correctly because every row is UTC. On the way out a naive
    value (SQLite returns those) gets ``tzinfo=UTC`` attached.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UtcDateTime needs a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"UtcDateTime needs a timezone-aware datetime, got naive {value!r}")
        utc = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return utc.replace(tzinfo=None)  # stored text is UTC by construction
        return utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json_variant() -> TypeEngine[Any]:
    # none_as_null: a Python None is stored as SQL NULL, never as the JSON literal 'null', so that
    # "retry_config IS NULL" (null = defaults) finds every row without a custom config.
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


JSONVariant: TypeEngine[Any] = _json_variant()
"""JSON everywhere, JSONB on PostgreSQL; None is SQL NULL. Mutate by assigning a new value:
in-place changes to a loaded list or dict are not tracked."""
