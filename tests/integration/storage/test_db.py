"""Engines on real databases: SQLite pragmas and files, PostgreSQL pools, ping, sessions."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hookline.errors import Unavailable
from hookline.storage.db import create_engine, create_session_factory, is_sqlite, ping
from hookline.storage.models import Base, Endpoint
from tests.factories import make_endpoint


async def test_every_sqlite_connection_gets_the_pragmas(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        # two connections open at once, so the second one is new too
        async with engine.connect() as first, engine.connect() as second:
            for conn in (first, second):
                values = {
                    pragma: (await conn.exec_driver_sql(f"PRAGMA {pragma}")).scalar()
                    for pragma in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
                }
                # synchronous: 0 OFF, 1 NORMAL, 2 FULL
                assert values == {
                    "journal_mode": "wal",
                    "busy_timeout": 5000,
                    "foreign_keys": 1,
                    "synchronous": 1,
                }
    finally:
        await engine.dispose()


async def test_a_plain_sqlite_url_gets_aiosqlite_and_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "there" / "hookline.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        assert engine.url.drivername == "sqlite+aiosqlite"
        assert is_sqlite(engine)
        assert path.parent.is_dir()  # created before anything connects
        await ping(engine)
        assert path.is_file()
    finally:
        await engine.dispose()


async def test_an_in_memory_sqlite_database_is_shared_by_all_sessions() -> None:
    engine = create_engine("sqlite://")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        sessions = create_session_factory(engine)
        async with sessions() as session:
            endpoint = await make_endpoint(session)
            await session.commit()
        async with sessions() as session:
            found = await session.scalar(select(Endpoint.url).where(Endpoint.id == endpoint.id))
        assert found == "https://example.com/hook"
    finally:
        await engine.dispose()


async def test_postgres_engine_uses_asyncpg_with_the_pool_size(migrated_pg_url: str) -> None:
    plain = migrated_pg_url.replace("postgresql+asyncpg://", "postgresql://")
    engine = create_engine(plain, pool_size=3)
    try:
        assert engine.url.drivername == "postgresql+asyncpg"
        assert not is_sqlite(engine)
        assert engine.pool.size() == 3  # type: ignore[attr-defined]
        await ping(engine)
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:1/nothing",  # nothing listens on port 1
        "sqlite:///{tmp_path}",  # a directory, not a database file
    ],
    ids=["postgres-refused", "sqlite-unopenable"],
)
async def test_ping_reports_an_unreachable_database_as_unavailable(
    url: str, tmp_path: Path
) -> None:
    engine = create_engine(url.format(tmp_path=tmp_path))
    try:
        with pytest.raises(Unavailable, match="database unreachable") as caught:
            await ping(engine)
        assert caught.value.__cause__ is not None  # the driver's error is kept
    finally:
        await engine.dispose()


async def test_session_objects_stay_readable_after_commit(db_engine: AsyncEngine) -> None:
    sessions = create_session_factory(db_engine)
    async with sessions() as session:
        endpoint = await make_endpoint(session, url="https://example.com/kept")
        await session.commit()
        # no expiry on commit: reading does not need a (lazy, async-unsafe) reload
        assert endpoint.url == "https://example.com/kept"
        async with db_engine.begin() as conn:
            await conn.execute(
                text("UPDATE webhook_endpoints SET url = 'https://example.com/changed'")
            )
        assert endpoint.url == "https://example.com/kept"
