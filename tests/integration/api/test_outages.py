"""Database and queue outages reach clients as 503 + Retry-After on every route, never 500.

Runs against private PostgreSQL and Redis servers (``tests.fixtures.servers``) that the test can
stop, restart and kill without touching the machine's own.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hookline.api.app import create_app
from hookline.api.openapi import openapi_document
from hookline.clock import SystemClock
from hookline.runtime import Runtime, open_runtime
from hookline.worker.sweeper import Sweeper
from tests.fixtures.servers import PostgresServer, RedisServer
from tests.integration.api.conftest import BASE_URL, make_settings
from tests.integration.api.helpers import TOKEN, FakeDns

pytestmark = pytest.mark.timeout(300)

BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/webhooks"): {"url": "https://example.com/outage"},
    ("PATCH", "/webhooks/{webhook_id}"): {"description": "changed"},
    ("PUT", "/webhooks/{webhook_id}/retry-config"): {"max_retries": 3},
    ("POST", "/events"): {"event_type": "order.created", "payload": {"n": 1}},
    ("POST", "/dead-letters/replay"): {},
    ("POST", "/webhooks/{webhook_id}/enable"): {},
    ("POST", "/webhooks/{webhook_id}/secret/rotate"): {},
}
OPERATIONS = {"/healthz", "/readyz", "/metrics"}


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    with PostgresServer(tmp_path / "pg") as server:
        yield server


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
async def runtime(
    postgres: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[Runtime]:
    settings = make_settings(
        postgres.url,
        tmp_path / "data",
        HOOKLINE_QUEUE_BACKEND="redis",
        REDIS_URL=redis_server.url,
    )
    async with open_runtime(
        settings, clock=SystemClock(), migrate=True, resolver=FakeDns()
    ) as opened:
        yield opened


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime), raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE_URL, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        yield http


async def _seed(client: httpx.AsyncClient, runtime: Runtime) -> dict[str, str]:
    webhook = (await client.post("/webhooks", json={"url": "https://example.com/hook"})).json()
    published = await client.post("/events", json={"event_type": "order.created", "payload": {}})
    assert published.status_code == 202, published.text
    event = published.json()
    return {
        "webhook_id": webhook["id"],
        "event_id": event["id"],
        "delivery_id": event["deliveries"][0]["id"],
    }


def _resource_requests(ids: dict[str, str]) -> list[tuple[str, str, Any]]:
    """Every resource operation of the API document, with real ids and a valid body."""
    requests = []
    for template, operations in openapi_document()["paths"].items():
        if template in OPERATIONS:
            continue
        for method in sorted(operations):
            method = method.upper()
            if method in {"HEAD", "OPTIONS"}:
                continue
            path = template.format(**ids)
            requests.append((method, path, BODIES.get((method, template))))
    assert len(requests) >= 15, requests  # the whole API, not a handful
    return requests


async def test_every_route_answers_503_while_postgresql_is_down(
    client: httpx.AsyncClient, runtime: Runtime, postgres: PostgresServer
) -> None:
    # Given a webhook, an event and a delivery, and then PostgreSQL stopped
    ids = await _seed(client, runtime)
    requests = _resource_requests(ids)
    await asyncio.to_thread(postgres.stop, "fast")

    # When every resource operation is called, each answers 503 with Retry-After
    answers = {}
    for method, path, body in requests:
        response = await client.request(method, path, json=body)
        answers[(method, path)] = response.status_code
        if response.status_code == 503:
            assert int(response.headers["Retry-After"]) >= 1
    assert set(answers.values()) == {503}, answers

    # And /readyz says which dependency is missing
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["database"] == "unavailable"

    # When PostgreSQL is back, the API answers again without a restart of hookline
    await asyncio.to_thread(postgres.start)
    response = await client.get(f"/webhooks/{ids['webhook_id']}")
    assert response.status_code == 200, response.text


async def test_publishing_while_redis_is_down_loses_nothing_and_answers_no_500(
    client: httpx.AsyncClient, runtime: Runtime, redis_server: RedisServer
) -> None:
    # Given Redis (the queue) killed
    ids = await _seed(client, runtime)
    await asyncio.to_thread(redis_server.kill)

    # When an event is published, it is either accepted (committed to the database, which is
    # the source of truth) or refused with 503 + Retry-After; never a 500
    response = await client.post("/events", json={"event_type": "order.created", "payload": {}})
    assert response.status_code in {202, 503}, response.text
    if response.status_code == 503:
        assert "Retry-After" in response.headers
    # while what needs only the database still answers, and /readyz names the queue
    assert (await client.get(f"/webhooks/{ids['webhook_id']}")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["queue"] == "unavailable"

    # When Redis is back, empty, one sweeper pass puts every accepted delivery in the queue
    await asyncio.to_thread(redis_server.start)
    await Sweeper.from_runtime(runtime).run_once()
    expected = 2 if response.status_code == 202 else 1
    assert await runtime.queue.depth() == expected


async def test_a_postgresql_restart_under_load_answers_no_500(
    client: httpx.AsyncClient, runtime: Runtime, postgres: PostgresServer
) -> None:
    # Given clients publishing and reading without pause
    ids = await _seed(client, runtime)
    statuses: Counter[int] = Counter()
    restarted = asyncio.Event()

    async def hammer(n: int) -> None:
        i = 0
        while not restarted.is_set() or i < 5:
            i += 1
            if n % 2:
                response = await client.post(
                    "/events", json={"event_type": "order.created", "payload": {"n": i}}
                )
            else:
                response = await client.get(f"/webhooks/{ids['webhook_id']}")
            statuses[response.status_code] += 1
            if i > 5_000:  # bounded whatever happens
                break

    # When PostgreSQL restarts (fast: every connection is cut) in the middle of it
    async def restart() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(postgres.restart, "fast")
        restarted.set()

    await asyncio.gather(restart(), *(hammer(n) for n in range(4)))

    # Then no request answered 500: each was served, or refused with 503 to retry
    assert set(statuses) <= {200, 202, 503}, statuses
    assert statuses[200] + statuses[202] > 0
