"""Empty databases for the migration tests, which must start from nothing and may go to base.

They cannot use the session's migrated PostgreSQL database (other tests rely on it being at
head), so each PostgreSQL case gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from hookline.storage.db import create_engine
from tests.fixtures.db import DB_BACKENDS


async def _admin(pg_url: str, sql: str) -> None:
    dsn = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def empty_pg_url(pg_url: str) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database on the test server (asyncpg URL)."""
    name = f"hookline_mig_{secrets.token_hex(6)}"
    await _admin(pg_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=DB_BACKENDS, ids=DB_BACKENDS)
def empty_db_url(request: pytest.FixtureRequest) -> str:
    """A URL of an empty database: a new SQLite file, or a new PostgreSQL database."""
    url: str = request.getfixturevalue(
        "sqlite_url" if request.param == "sqlite" else "empty_pg_url"
    )
    return url


@pytest.fixture
async def empty_engine(empty_db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on ``empty_db_url``; nothing has been migrated."""
    engine = create_engine(empty_db_url, pool_size=2)
    try:
        yield engine
    finally:
        await engine.dispose()
