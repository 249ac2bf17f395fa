"""Engines and sessions: one async engine per process, built from a URL, tuned per backend.

``DATABASE_URL`` may be written the plain way (``postgresql://…``, ``sqlite:///…``); the async
driver (asyncpg, aiosqlite) is filled in here. SQLite gets the pragmas an embedded, concurrent
deployment needs on every new connection; PostgreSQL gets a sized pool with pre-ping.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import StaticPool

from hookline.errors import ConfigurationError, Unavailable

SQLITE_BUSY_TIMEOUT_MS: Final = 5000
"""How long a SQLite writer waits for another one instead of failing with "database is locked"."""

_SQLITE_PRAGMAS: Final = (
    "PRAGMA journal_mode=WAL",  # readers do not block the writer, nor the writer the readers
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys=ON",  # off by default in SQLite; deliveries rely on their FKs
    "PRAGMA synchronous=NORMAL",  # durable with WAL except on power loss; much faster than FULL
)
_ASYNC_DRIVERS: Final = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}


def normalize_url(url: str) -> str:
    """``url`` with the async driver filled in; libpq's ``sslmode`` becomes asyncpg's ``ssl``.

    ``postgresql://`` and ``postgres://`` become ``postgresql+asyncpg://``; ``sqlite://`` becomes
    ``sqlite+aiosqlite://``. A URL that already names a driver is returned unchanged (apart from
    ``sslmode``). The password is kept (the result is meant for ``create_engine``, not for logs).
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigurationError(f"not a database URL: {_redacted(url)!r}") from exc
    drivername = _ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername)
    parsed = parsed.set(drivername=drivername)
    if drivername == "postgresql+asyncpg" and "sslmode" in parsed.query:
        query = dict(parsed.query)
        query["ssl"] = query.pop("sslmode")
        parsed = parsed.set(query=query)
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An ``AsyncEngine`` for ``url`` (see ``normalize_url``); nothing connects until first use.

    SQLite: the database file's parent directory is created, and every new connection runs the
    ``_SQLITE_PRAGMAS`` (WAL, busy timeout, foreign keys, synchronous=NORMAL); an in-memory URL
    shares one connection so every session sees the same database. PostgreSQL: a pool of
    ``pool_size`` connections (plus as many overflow) that checks a connection before handing it
    out, so a restarted server costs one failed ping rather than a failed request.
    """
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(parsed)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "postgresql":
        kwargs.update(pool_size=pool_size, max_overflow=pool_size)
    return _create_async_engine(parsed, **kwargs)


def _create_sqlite_engine(url: URL) -> AsyncEngine:
    database = url.database
    in_memory = not database or database == ":memory:" or database.startswith("file::memory:")
    if in_memory:
        engine = _create_async_engine(
            url, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        assert database is not None
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        engine = _create_async_engine(url)

    @event.listens_for(engine.sync_engine, "connect")
    def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for pragma in _SQLITE_PRAGMAS:
                cursor.execute(pragma)
        finally:
            cursor.close()

    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions bound to ``engine``; objects stay readable after commit (no expiry, no reload)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    """Whether ``engine`` talks to SQLite (the embedded deployment)."""
    return engine.dialect.name == "sqlite"


async def begin_write(connection: AsyncConnection) -> None:
    """Make the transaction just begun on ``connection`` a writing one from its first statement.

    SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock now, waiting for another writer
    up to ``SQLITE_BUSY_TIMEOUT_MS``, so the transaction's reads and writes all happen under the
    lock: nobody writes between what it read and what it writes. Without it the driver begins
    the transaction only at the first write (the reads before it run outside any transaction);
    and a transaction that read before asking for the lock fails at once in WAL mode, without
    waiting, if another connection wrote meanwhile ("database is locked"): writing
    transactions start IMMEDIATE. (The driver has not begun one itself: this is the first
    statement.) Other databases: nothing to do, rows are locked as they are written.
    """
    if connection.dialect.name == "sqlite":
        await connection.exec_driver_sql("BEGIN IMMEDIATE")


async def ping(engine: AsyncEngine) -> None:
    """Run ``SELECT 1``; raise ``Unavailable`` when the database cannot answer."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:  # OSError covers refused connections and timeouts
        raise Unavailable(f"database unreachable: {type(exc).__name__}: {exc}") from exc


OUTAGE_SQLSTATE_CLASSES: Final = ("08", "40", "53", "57", "58")
"""SQLSTATE classes that mean the server or the moment, not the statement or the row, failed:
connection exception, transaction rollback (deadlock, serialization failure: try again),
insufficient resources, operator intervention (restart, shutdown), system error."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from (``__cause__``, ``__context__``, a
    ``DBAPIError``'s driver exception), each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)  # a DBAPIError's driver exception
        current = (
            current.__cause__
            or current.__context__
            or (orig if isinstance(orig, BaseException) else None)
        )


def _sqlstate(exc: BaseException) -> str | None:
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return sqlstate if isinstance(sqlstate, str) else None


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` (or one it was raised from) is a transaction the database rolled back
    to settle a conflict with another (SQLSTATE class 40: a deadlock victim, a serialization
    failure): running the same transaction again is expected to succeed."""
    return any((_sqlstate(e) or "").startswith("40") for e in _chain(exc))


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) means the database or the queue is
    unreachable or restarting, rather than that this statement or this row is wrong.

    Outages are retried later (and answered 503 by the API); everything else is the fault of
    one request or one row and must fail alone.
    """
    return any(_is_outage_itself(e) for e in _chain(exc))


def _is_outage_itself(current: BaseException) -> bool:
    if isinstance(current, Unavailable | OSError | TimeoutError | PoolTimeoutError):
        return True  # OSError: refused, reset, unreachable; TimeoutError: no answer
    if isinstance(current, DBAPIError) and current.connection_invalidated:
        return True
    if isinstance(current, OperationalError | InterfaceError):
        return True  # SQLite "database is locked", a closed connection
    if (_sqlstate(current) or "").startswith(OUTAGE_SQLSTATE_CLASSES):
        return True
    # asyncpg's own: "connection is closed", "another operation is in progress"
    return type(current).__name__ in {"InterfaceError", "ConnectionDoesNotExistError"}


def _redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # not parseable at all: show only the scheme
        return url.split(":", 1)[0] + ":…"
