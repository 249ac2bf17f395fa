"""Fresh hookline deployments and the hookline processes that run on them.

``DeploymentFactory`` migrates one template per kind with ``hookline migrate`` (PostgreSQL: a
database ``hookline_bench_<hex>_t``; SQLite: a file), then ``fresh(name)`` gives each scenario a
deployment of its own in a fraction of a second: a PostgreSQL database ``hookline_bench_<hex>_<n>``
made ``TEMPLATE`` the migrated one plus a private Redis key prefix, or a copy of the SQLite file
in a new directory. A deployment opens hookline's runtime in this process (to create endpoints
and bulk-load deliveries through hookline's own layers) and starts real ``hookline worker`` /
``hookline api`` / ``hookline serve`` processes configured by environment variables, as users
run them. On the way out every process is stopped by PID, every database dropped ``WITH
(FORCE)``, every key under the run's Redis prefix deleted (never FLUSHDB), every directory
removed.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import shutil
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from bench import processes
from bench.common import HOOKLINE, BenchFailure, child_env
from hookline.clock import SystemClock
from hookline.observability.logging import configure_logging
from hookline.runtime import Runtime, open_runtime
from hookline.settings import Settings
from hookline.storage.db import normalize_url

POSTGRES_REDIS: Final = "postgres-redis"
SQLITE: Final = "sqlite"
KINDS: Final = (POSTGRES_REDIS, SQLITE)

MIGRATE_TIMEOUT_S: Final = 180.0
START_TIMEOUT_S: Final = 120.0
"""Longest a hookline process may take to answer /readyz or reach Redis (a loaded 2-core box)."""
API_TOKEN_BYTES: Final = 24

BASE_SETTINGS: Final = {
    "ALLOWED_NETWORKS": "127.0.0.1/32",
    "LOG_LEVEL": "WARNING",
}
"""What every hookline process of the harness gets on top of the deployment's storage settings;
everything else is at hookline's defaults unless a scenario (or ``--set``) says otherwise."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, f"/{database}", parts.query, parts.fragment))


async def delete_redis_keys(redis_url: str, prefix: str) -> int:
    """Delete every key under ``prefix``; how many."""
    client = aioredis.from_url(redis_url, socket_connect_timeout=5)
    deleted = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await client.delete(*batch)
                batch = []
        if batch:
            deleted += await client.delete(*batch)
    finally:
        await client.aclose()
    return deleted


@dataclass
class Hookline:
    """Running hookline processes: ``workers`` deliver, ``api_url`` (if any) takes requests."""

    deployment: Deployment
    extra_env: dict[str, str]
    workers: list[processes.Child] = field(default_factory=list)
    api: processes.Child | None = None
    api_url: str | None = None
    prepared: Any = None
    start_s: float | None = None
    """How long the processes took to be ready (imports, connections, migrations on serve)."""

    @property
    def worker_pids(self) -> list[int]:
        return [child.pid for child in self.workers]

    @property
    def all_children(self) -> list[processes.Child]:
        children = list(self.workers)
        if self.api is not None and self.api not in children:
            children.append(self.api)
        return children

    async def add_workers(self, count: int) -> None:
        """Start ``count`` more ``hookline worker`` processes (PostgreSQL + Redis only) and wait
        until each has reached Redis."""
        if self.deployment.kind != POSTGRES_REDIS:
            raise BenchFailure("more than one worker process needs PostgreSQL + Redis")
        new = [
            await self.deployment.start_process(
                f"worker{len(self.workers) + i + 1}", ["worker"], self.extra_env
            )
            for i in range(count)
        ]
        self.workers += new
        await asyncio.gather(*(self.deployment.wait_worker_ready(child) for child in new))

    async def stop(self) -> None:
        await processes.stop_all(self.all_children)


@dataclass
class Deployment:
    """One fresh deployment: its settings, a runtime in this process, and its processes."""

    kind: str
    name: str
    env: dict[str, str]
    runtime: Runtime
    work_dir: Path
    log_dir: Path
    api_token: str
    redis_port: int | None
    running: list[Hookline] = field(default_factory=list)

    async def start_process(
        self, name: str, args: list[str], extra_env: dict[str, str]
    ) -> processes.Child:
        return await processes.start(
            f"hookline {args[0]} ({self.name}/{name})",
            [HOOKLINE, *args],
            env=child_env({**self.env, **extra_env}),
            cwd=self.work_dir,
            log_path=self.log_dir / f"{self.name}-{name}.log",
        )

    async def wait_worker_ready(self, child: processes.Child) -> None:
        """A ``hookline worker`` is up once it holds a connection to Redis: it pings the queue
        after connecting to the database and right before its loops start."""
        port = self.redis_port

        async def connected() -> bool:
            return port in processes.connected_ports(child.pid)

        await processes.wait_for(
            connected, timeout_s=START_TIMEOUT_S, what=f"{child.name} start", children=[child]
        )

    async def wait_api_ready(self, url: str, child: processes.Child) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

            async def ready() -> bool:
                try:
                    async with session.get(f"{url}/readyz") as response:
                        return response.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    return False

            await processes.wait_for(
                ready, timeout_s=START_TIMEOUT_S, what=f"{child.name} /readyz", children=[child]
            )

    @asynccontextmanager
    async def hookline(
        self,
        *,
        workers: int = 1,
        api: bool = False,
        extra_env: dict[str, str] | None = None,
        prepare: Callable[[], Coroutine[Any, Any, Any]] | None = None,
    ) -> AsyncIterator[Hookline]:
        """Run hookline as users do and stop it on the way out.

        PostgreSQL + Redis: ``workers`` x ``hookline worker`` and, with ``api``, one
        ``hookline api``. SQLite: one ``hookline serve`` (API, worker and sweeper in one
        process, the embedded mode), whatever ``workers`` and ``api`` say, as long as
        ``workers`` ≤ 1. ``prepare()`` (endpoints, a held backlog) runs while the processes
        start; its result is ``Hookline.prepared``.
        """
        extra = dict(extra_env or {})
        running = Hookline(deployment=self, extra_env=extra)
        self.running.append(running)
        started = time.monotonic()
        try:
            waits: list[Callable[[], Coroutine[Any, Any, None]]] = []
            if self.kind == SQLITE:
                if workers > 1:
                    raise BenchFailure("hookline serve on SQLite is one process")
                port = free_port()
                child = await self.start_process("serve", ["serve", "--port", str(port)], extra)
                running.workers = [child]
                running.api, running.api_url = child, f"http://127.0.0.1:{port}"
                waits.append(functools.partial(self.wait_api_ready, running.api_url, child))
            else:
                if api:
                    port = free_port()
                    child = await self.start_process("api", ["api", "--port", str(port)], extra)
                    running.api, running.api_url = child, f"http://127.0.0.1:{port}"
                    waits.append(functools.partial(self.wait_api_ready, running.api_url, child))
                for i in range(workers):
                    child = await self.start_process(f"worker{i + 1}", ["worker"], extra)
                    running.workers.append(child)
                    waits.append(functools.partial(self.wait_worker_ready, child))
            try:
                async with asyncio.TaskGroup() as group:
                    for wait in waits:
                        group.create_task(wait())
                    prepared: asyncio.Task[Any] | None = (
                        group.create_task(prepare()) if prepare is not None else None
                    )
            except BaseExceptionGroup as failed:
                raise failed.exceptions[0] from None
            running.prepared = prepared.result() if prepared is not None else None
            running.start_s = round(time.monotonic() - started, 2)
            yield running
        finally:
            await running.stop()
            self.running.remove(running)

    def settings(self, **extra: Any) -> Settings:
        return _settings({**self.env, **extra})

    async def count(self, sql: str, **params: Any) -> int:
        async with self.runtime.engine.connect() as conn:
            return int((await conn.execute(text(sql), params)).scalar_one())


def _settings(env: dict[str, str]) -> Settings:
    return Settings(**{**env, "_env_file": None})  # type: ignore[arg-type]


class DeploymentFactory:
    """Fresh deployments of one kind, made from a template migrated once by ``hookline
    migrate``; everything it made is removed by ``close``."""

    def __init__(
        self,
        kind: str,
        *,
        run_dir: Path,
        pg_admin_url: str,
        redis_url: str,
        extra_env: dict[str, str],
    ) -> None:
        self.kind = kind
        self.run_dir = run_dir / kind
        self.pg_admin_url = pg_admin_url
        self.redis_url = redis_url
        self.extra_env = extra_env
        self.token = secrets.token_hex(4)
        self.api_token = secrets.token_urlsafe(API_TOKEN_BYTES)
        self.redis_prefix = f"hookline-bench:{self.token}:"
        self._databases: list[str] = []
        self._count = 0
        self._admin = create_async_engine(
            normalize_url(pg_admin_url),
            isolation_level="AUTOCOMMIT",
            poolclass=NullPool,
            connect_args={"timeout": 10},
        )
        self._template: str | Path | None = None
        self._redis_reached = False

    def _base_env(self, work_dir: Path) -> dict[str, str]:
        return {
            **BASE_SETTINGS,
            "HOOKLINE_DATA_DIR": str(work_dir / ".hookline"),
            "HOOKLINE_API_TOKENS": self.api_token,
            **self.extra_env,
        }

    async def _migrate(self, env: dict[str, str], work_dir: Path) -> None:
        await processes.run_to_end(
            f"hookline migrate ({self.kind})",
            [HOOKLINE, "migrate"],
            env=child_env(env),
            cwd=work_dir,
            log_path=self.run_dir / "migrate.log",
            timeout_s=MIGRATE_TIMEOUT_S,
        )

    async def prepare(self) -> None:
        """Create and migrate the template (also checks that PostgreSQL and Redis answer)."""
        work_dir = self.run_dir / "template"
        work_dir.mkdir(parents=True)
        env = self._base_env(work_dir)
        if self.kind == POSTGRES_REDIS:
            client = aioredis.from_url(self.redis_url, socket_connect_timeout=5)
            try:
                await client.ping()
                self._redis_reached = True
            except (OSError, aioredis.RedisError) as exc:
                raise BenchFailure(f"Redis at {self.redis_url} does not answer: {exc!r}") from exc
            finally:
                await client.aclose()
            database = f"hookline_bench_{self.token}_t"
            await self._create_database(database)
            env["DATABASE_URL"] = _with_database(self.pg_admin_url, database)
            await self._migrate(env, work_dir)
            self._template = database
        else:
            path = work_dir / "hookline.db"
            env["DATABASE_URL"] = f"sqlite:///{path}"
            await self._migrate(env, work_dir)
            self._template = path

    async def _create_database(self, database: str, *, template: str | None = None) -> None:
        statement = f'CREATE DATABASE "{database}"'
        if template:
            statement += f' TEMPLATE "{template}"'
        try:
            async with self._admin.connect() as conn:
                await conn.execute(text(statement))
                self._databases.append(database)
        except OSError as exc:
            raise BenchFailure(
                f"PostgreSQL at {self.pg_admin_url} does not answer: {exc!r}"
            ) from exc

    @asynccontextmanager
    async def fresh(self, name: str) -> AsyncIterator[Deployment]:
        """A new deployment for one scenario; removed on the way out."""
        assert self._template is not None, "prepare() first"
        self._count += 1
        work_dir = self.run_dir / f"{self._count}-{name}"
        (work_dir / ".hookline").mkdir(parents=True)
        env = self._base_env(work_dir)
        redis_port: int | None = None
        if self.kind == POSTGRES_REDIS:
            database = f"hookline_bench_{self.token}_{self._count}"
            await self._create_database(database, template=str(self._template))
            env["DATABASE_URL"] = _with_database(self.pg_admin_url, database)
            env["REDIS_URL"] = self.redis_url
            env["HOOKLINE_REDIS_PREFIX"] = f"{self.redis_prefix}{self._count}:"
            redis_port = urlsplit(self.redis_url).port or 6379
        else:
            template = Path(self._template)
            for suffix in ("", "-wal", "-shm"):
                source = template.with_name(template.name + suffix)
                if source.exists():
                    shutil.copy(source, work_dir / (template.name + suffix))
            env["DATABASE_URL"] = f"sqlite:///{work_dir / template.name}"
            env["HOOKLINE_QUEUE_BACKEND"] = "sql"
        try:
            async with AsyncExitStack() as stack:
                runtime = await stack.enter_async_context(
                    open_runtime(_settings(env), clock=SystemClock(), migrate=False)
                )
                deployment = Deployment(
                    kind=self.kind,
                    name=f"{self._count}-{name}",
                    env=env,
                    runtime=runtime,
                    work_dir=work_dir,
                    log_dir=self.run_dir,
                    api_token=self.api_token,
                    redis_port=redis_port,
                )
                try:
                    yield deployment
                finally:
                    for running in list(deployment.running):
                        await running.stop()
        finally:
            if self.kind == POSTGRES_REDIS:
                await self._drop(database)
                await delete_redis_keys(self.redis_url, env["HOOKLINE_REDIS_PREFIX"])
            else:
                for path in work_dir.glob("hookline.db*"):
                    path.unlink()

    async def _drop(self, database: str) -> None:
        async with self._admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        if database in self._databases:
            self._databases.remove(database)

    async def close(self) -> None:
        """Drop every database, delete every key and directory this factory made."""
        try:
            for database in list(self._databases):
                await self._drop(database)
            if self._redis_reached:
                await delete_redis_keys(self.redis_url, self.redis_prefix)
        finally:
            await self._admin.dispose()


def configure_bench_logging() -> None:
    """hookline's own loggers in this process: warnings only, like its processes."""
    configure_logging(level="WARNING", json_format=True)
