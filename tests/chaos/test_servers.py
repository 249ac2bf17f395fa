"""The private servers the chaos suite kills: they start, answer, restart, die and come back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.fixtures.servers import PostgresServer, RedisServer

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]


async def _pg_value(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM kept"))
    finally:
        await conn.close()


async def _pg_execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_postgres_server_starts_restarts_and_survives_sigkill(tmp_path: Path) -> None:
    with PostgresServer(tmp_path) as pg:
        assert pg.port != 5432
        assert pg.url == f"postgresql+asyncpg://postgres@127.0.0.1:{pg.port}/hookline"
        await _pg_execute(pg.dsn, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)")
        first_pid = pg.postmaster_pid()

        # a connection held across a restart is cut; a new one works and sees the data
        held = await asyncpg.connect(pg.dsn, timeout=10)
        await asyncio.to_thread(pg.restart)
        with pytest.raises((asyncpg.PostgresError, OSError, asyncpg.InterfaceError)):
            await held.fetchval("SELECT 1")
        held.terminate()
        assert pg.postmaster_pid() not in (None, first_pid)
        assert await _pg_value(pg.dsn) == 1

        await asyncio.to_thread(pg.kill)
        assert not pg.running
        with pytest.raises(OSError):
            await _pg_value(pg.dsn)
        await asyncio.to_thread(pg.start)
        assert await _pg_value(pg.dsn) == 1
        root = pg.root
    assert not await asyncio.to_thread(root.exists), "the cluster directory is removed on close"
    logs = await asyncio.to_thread(lambda: list(tmp_path.glob("postgres-*.log")))
    assert logs, "the server log is kept in tmp_dir"


async def _redis(url: str, *command: str) -> object:
    """One command on a fresh connection (an old one is cut by a restart)."""
    client = aioredis.from_url(url, socket_connect_timeout=5)
    try:
        return await client.execute_command(*command)
    finally:
        await client.aclose()


async def test_redis_server_restarts_empty(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        assert server.port != 6379
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        await _redis(server.url, "SET", "kept", "1")
        assert await _redis(server.url, "GET", "kept") == b"1"
        first_pid = server.popen.pid if server.popen else None

        await asyncio.to_thread(server.restart_empty)
        assert server.popen is not None
        assert server.popen.pid != first_pid
        assert await _redis(server.url, "GET", "kept") is None, "restart_empty drops every key"

        await _redis(server.url, "SET", "again", "2")
        await asyncio.to_thread(server.kill)
        assert not server.running
        with pytest.raises(aioredis.ConnectionError):
            await _redis(server.url, "GET", "again")
        await asyncio.to_thread(server.start)
        assert await _redis(server.url, "GET", "again") is None
        popen = server.popen
    assert popen.returncode is not None, "closing reaps the server"
