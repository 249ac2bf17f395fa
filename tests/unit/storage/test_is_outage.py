"""is_outage: what the worker retries later and the API answers 503, versus one bad row."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from hookline.errors import Unavailable
from hookline.storage.db import is_outage


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def _caused_by(outer: Exception, inner: BaseException) -> Exception:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError("refused"),
        TimeoutError(),
        Unavailable("redis down"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        DBAPIError("SELECT 1", {}, _DriverError("57P03")),
        DBAPIError("SELECT 1", {}, _DriverError("40P01")),  # deadlock: try again
        OperationalError("SELECT 1", {}, Exception("database is locked")),
        _caused_by(RuntimeError("wrapped"), ConnectionResetError("reset")),
    ],
)
def test_outages(exc: BaseException) -> None:
    assert is_outage(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("row cannot be decoded"),
        KeyError("bug"),
        DataError("INSERT", {}, _DriverError("22021")),  # NUL byte in text
        IntegrityError("INSERT", {}, _DriverError("23505")),
        asyncpg.CharacterNotInRepertoireError("invalid byte sequence"),
    ],
)
def test_not_outages(exc: BaseException) -> None:
    assert not is_outage(exc)


def test_a_cause_cycle_ends() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    assert not is_outage(first)
