"""The engine harness: a real runtime on a ManualClock, a loopback receiver, a worker, a sweeper.

Parametrised over the two deployments we ship: the embedded default (SQLite + SQL queue) and
production (PostgreSQL + Redis).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hookline.clock import ManualClock
from hookline.runtime import Runtime, open_runtime
from hookline.service.events import PublishResult
from hookline.settings import Settings
from hookline.storage.models import Delivery, DeliveryAttempt, Endpoint
from hookline.worker.retry_worker import RetryWorker
from hookline.worker.sweeper import Sweeper
from tests.factories import make_endpoint
from tests.receiver import Receiver

DEPLOYMENTS = ["sqlite+sql", "postgres+redis"]


@dataclass
class Harness:
    """One deployment under test, driven step by step."""

    runtime: Runtime
    clock: ManualClock
    receiver: Receiver
    sweeper: Sweeper
    deployment: str

    def worker(self, *, batch_size: int = 100, endpoint_concurrency: int = 100) -> RetryWorker:
        return RetryWorker(
            delivery=self.runtime.delivery,
            queue=self.runtime.queue,
            clock=self.clock,
            batch_size=batch_size,
            concurrency=100,
            endpoint_concurrency=endpoint_concurrency,
            lease_s=60,
            poll_interval_s=1,
            shutdown_grace_s=1,
        )

    async def run(self) -> int:
        """Attempt everything due now; returns the number of attempts."""
        return await self.worker().drain()

    async def add_endpoint(
        self, path: str = "/hook", *, url: str | None = None, **columns: Any
    ) -> str:
        async with self.runtime.sessions.begin() as session:
            endpoint = await make_endpoint(
                session, now=self.clock.now(), url=url or self.receiver.url_for(path), **columns
            )
        return endpoint.id

    async def publish(
        self, event_type: str = "order.created", payload: Any = None, **kwargs: Any
    ) -> PublishResult:
        return await self.runtime.events.publish(
            event_type=event_type, payload=payload or {"order_id": 42}, **kwargs
        )

    async def delivery(self, delivery_id: str) -> Delivery:
        async with self.runtime.sessions() as session:
            found = await session.get(Delivery, delivery_id)
        assert found is not None
        return found

    async def endpoint(self, endpoint_id: str) -> Endpoint:
        async with self.runtime.sessions() as session:
            found = await session.get(Endpoint, endpoint_id)
        assert found is not None
        return found

    async def attempts(self, delivery_id: str) -> list[DeliveryAttempt]:
        async with self.runtime.sessions() as session:
            rows = await session.execute(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(DeliveryAttempt.attempt_number)
            )
        return list(rows.scalars())

    async def run_until_settled(self, delivery_id: str, *, max_attempts: int = 50) -> Delivery:
        """Attempt, jump the clock to the next due time, repeat until the delivery is final."""
        await self.run()
        for _ in range(max_attempts):
            delivery = await self.delivery(delivery_id)
            if delivery.state != "retrying":
                return delivery
            assert delivery.next_attempt_at is not None
            self.clock.set(delivery.next_attempt_at)
            assert await self.run() >= 1
        raise AssertionError(f"{delivery_id} still retrying after {max_attempts} rounds")


def deployment_settings(
    deployment: str, *, tmp_path: Path, database_url: str, redis_url: str, redis_prefix: str
) -> Settings:
    env: dict[str, Any] = {
        "HOOKLINE_DATA_DIR": str(tmp_path),
        "DATABASE_URL": database_url,
        "ALLOWED_NETWORKS": "127.0.0.1/32",
        # Generous: the receiver shares this test's event loop, which a loaded machine starves;
        # a 5 s timeout once failed 20 loopback requests at once. No test here waits for one.
        "DELIVERY_TIMEOUT": "60",
        "DELIVERY_CONNECT_TIMEOUT": "30",
        "HOOKLINE_API_TOKENS": "test-token-0123456789abcdef",
    }
    if deployment.endswith("+redis"):
        env |= {"REDIS_URL": redis_url, "HOOKLINE_REDIS_PREFIX": redis_prefix}
    else:
        env |= {"HOOKLINE_QUEUE_BACKEND": "sql"}
    return Settings(_env_file=None, **env)  # type: ignore[call-arg]


@pytest.fixture(params=DEPLOYMENTS)
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Settings]:
    """Settings for a migrated, empty database (and a Redis key prefix of its own)."""
    name: str = request.param
    engine: AsyncEngine = request.getfixturevalue(
        "pg_engine" if name.startswith("postgres") else "sqlite_engine"
    )
    redis = name.endswith("+redis")
    settings = deployment_settings(
        name,
        tmp_path=tmp_path,
        database_url=engine.url.render_as_string(hide_password=False),
        redis_url=request.getfixturevalue("redis_url") if redis else "",
        redis_prefix=request.getfixturevalue("redis_prefix") if redis else "",
    )
    return name, settings


@pytest.fixture
async def harness(deployment: tuple[str, Settings], clock: ManualClock) -> AsyncIterator[Harness]:
    name, settings = deployment
    async with Receiver(clock=clock) as receiver, open_runtime(settings, clock=clock) as runtime:
        yield Harness(
            runtime=runtime,
            clock=clock,
            receiver=receiver,
            sweeper=Sweeper.from_runtime(runtime),
            deployment=name,
        )
