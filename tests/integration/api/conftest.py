"""The API over a real runtime: ``open_runtime`` on SQLite or PostgreSQL, the SQL queue, a
``ManualClock``, and an ``httpx.AsyncClient`` talking to the app in-process (ASGI).

Names resolve through ``dns`` (a ``FakeDns``: ``localhost`` and what a test adds; any other name
does not resolve), so vetting a webhook URL never looks up a real name; loopback
(``127.0.0.1/32``) is in ALLOWED_NETWORKS, as in the worker tests.

``api`` is parametrised over both databases; ``sqlite_api`` is SQLite only (for the tests whose
point is not the database).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hookline.api.app import create_app
from hookline.clock import ManualClock
from hookline.runtime import Runtime, open_runtime
from hookline.settings import Settings
from tests.integration.api.helpers import TOKEN, Api, FakeDns

if TYPE_CHECKING:
    from tests.integration.api.console_helpers import Console

BASE_URL = "http://hookline.test"
MAX_PAYLOAD_BYTES = 4096
ROTATION_GRACE_S = 3600


def make_settings(database_url: str, data_dir: Path, **over: Any) -> Settings:
    """Settings for a test runtime; nothing is read from the environment or a ``.env``."""
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "HOOKLINE_DATA_DIR": str(data_dir),
        "HOOKLINE_QUEUE_BACKEND": "sql",
        "REDIS_URL": None,
        "HOOKLINE_API_TOKENS": [TOKEN],
        "MAX_PAYLOAD_BYTES": MAX_PAYLOAD_BYTES,
        "SECRET_ROTATION_GRACE": ROTATION_GRACE_S,
        "DATABASE_POOL_SIZE": 5,
        "ALLOWED_NETWORKS": "127.0.0.1/32",
    }
    values.update(over)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


RuntimeFactory = Callable[..., AbstractAsyncContextManager[Runtime]]


@pytest.fixture
def dns() -> FakeDns:
    """The resolver of every runtime a test opens; add names to ``dns.table``."""
    return FakeDns()


@pytest.fixture
def runtime_factory(
    tmp_path: Path, clock: ManualClock, dns: FakeDns
) -> Callable[[str], RuntimeFactory]:
    """``runtime_factory(url)(**settings)`` opens a runtime on ``url`` with overrides."""

    def for_url(url: str) -> RuntimeFactory:
        @asynccontextmanager
        async def open_one(**over: Any) -> AsyncIterator[Runtime]:
            settings = make_settings(url, tmp_path / "data", **over)
            async with open_runtime(settings, clock=clock, resolver=dns) as runtime:
                yield runtime

        return open_one

    return for_url


@asynccontextmanager
async def client_for(runtime: Runtime, *, token: str | None = TOKEN) -> AsyncIterator[Api]:
    """An ``Api`` (httpx client + helpers) on ``create_app(runtime)``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as client:
        yield Api(client=client, runtime=runtime)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """A migrated, empty database: a fresh SQLite file, or the session's PostgreSQL emptied."""
    if request.param == "sqlite":
        request.getfixturevalue("sqlite_engine")  # copies the migrated file to sqlite_url
        return sqlite_url
    request.getfixturevalue("pg_engine")  # truncates every table
    url: str = request.getfixturevalue("migrated_pg_url")
    return url


@pytest.fixture
async def api(
    database_url: str, runtime_factory: Callable[[str], RuntimeFactory]
) -> AsyncIterator[Api]:
    """The API on SQLite and on PostgreSQL, authenticated."""
    async with runtime_factory(database_url)() as runtime, client_for(runtime) as client:
        yield client


@pytest.fixture
async def sqlite_api(
    sqlite_url: str,
    sqlite_engine: AsyncEngine,
    runtime_factory: Callable[[str], RuntimeFactory],
) -> AsyncIterator[Api]:
    """The API on SQLite only, authenticated."""
    async with runtime_factory(sqlite_url)() as runtime, client_for(runtime) as client:
        yield client


@pytest.fixture
async def console(api: Api) -> AsyncIterator[Console]:
    """The console on SQLite and on PostgreSQL (``api``'s runtime), signed out."""
    from tests.integration.api.console_helpers import console_for  # it imports this module

    async with console_for(api.runtime) as opened:
        yield opened
