"""The figures hookline is compared with in the same run: a bare aiohttp client (the ceiling
of this machine's HTTP stack against the same receiver) and the Celery peer
(``bench/celery_peer.py``) draining the same backlog."""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import redis.asyncio as aioredis

from bench import processes
from bench.common import (
    CELERY,
    ROOT,
    BenchFailure,
    child_env,
    exactly_once,
    payload_bytes,
    percentile,
    require_exactly_once,
    rounded,
)
from bench.deployments import delete_redis_keys
from bench.receiver_client import ReceiverClient

CELERY_CONCURRENCY: Final = 2
CELERY_START_TIMEOUT_S: Final = 120.0
SIGNING_SECRET: Final = "bench-peer-secret"


async def bare_client(
    receiver: ReceiverClient, *, count: int, concurrency: int, timeout_s: float
) -> dict[str, Any]:
    """POST ``count`` 1 KiB bodies from one pooled ClientSession at ``concurrency``."""
    group = f"bare{secrets.token_hex(3)}"
    url = receiver.url("ok", group)
    round_trips: list[float] = []
    statuses: Counter[int] = Counter()
    bodies = [payload_bytes(i) for i in range(64)]
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=15, sock_connect=5),
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    indexes = iter(range(count))

    async def lane() -> None:
        for index in indexes:
            headers = {
                "content-type": "application/json",
                "webhook-id": f"bare_{index}",
                "webhook-timestamp": str(int(time.time())),
                "webhook-signature": "v1,bare",
            }
            started = time.monotonic()
            async with session.post(url, data=bodies[index % 64], headers=headers) as response:
                await response.read()
                statuses[response.status] += 1
            round_trips.append(time.monotonic() - started)

    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s), asyncio.TaskGroup() as lanes:
            for _ in range(min(concurrency, count)):
                lanes.create_task(lane())
    except TimeoutError:
        raise BenchFailure(
            f"bare client: {len(round_trips)} of {count} requests within {timeout_s:g} s"
        ) from None
    finally:
        await session.close()
    arrivals = await receiver.dump(group)
    await receiver.forget(group)
    check = exactly_once(arrivals.requests, {f"bare_{i}" for i in range(count)})
    require_exactly_once(check, "bare client")
    elapsed = (arrivals.last_ok_monotonic() or started) - started
    return {
        "count": count,
        "concurrency": concurrency,
        "rate_per_s": rounded(count / elapsed if elapsed > 0 else None),
        "round_trip_p50_ms": rounded((percentile(round_trips, 0.5) or 0) * 1000, 2),
        "round_trip_p99_ms": rounded((percentile(round_trips, 0.99) or 0) * 1000, 2),
        "statuses": {str(k): v for k, v in statuses.items()},
        "exactly_once": check,
    }


@dataclass
class CeleryWorker:
    """A running Celery peer worker and the app this process sends its tasks with."""

    app: Any
    child: processes.Child
    node: str
    keyprefix: str
    redis_url: str
    receiver: ReceiverClient

    def pids(self) -> list[int]:
        return [self.child.pid, *processes.descendants(self.child.pid)]

    def cpu_s(self) -> float:
        return processes.tree_cpu_s([self.child.pid])

    def rss_kib(self) -> dict[str, int]:
        """VmRSS of the main (consumer) process and the sum over it and its pool."""
        return {
            "main": processes.rss_kib(self.child.pid),
            "all": sum(processes.rss_kib(pid) for pid in self.pids()),
        }

    async def send(
        self,
        queue: str,
        url_for: Callable[[int], str],
        count: int,
        *,
        countdown_s: float | None = None,
        id_prefix: str = "cel",
    ) -> set[str]:
        """Send ``count`` tasks to ``queue`` (from a thread: the client is synchronous); the
        webhook-ids they will carry."""
        bodies = [payload_bytes(i).decode() for i in range(64)]

        def send_all() -> None:
            with self.app.producer_or_acquire() as producer:
                for index in range(count):
                    self.app.send_task(
                        "bench.deliver",
                        args=[
                            url_for(index),
                            f"{id_prefix}_{index}",
                            bodies[index % 64],
                            SIGNING_SECRET,
                        ],
                        queue=queue,
                        countdown=countdown_s,
                        producer=producer,
                    )

        await asyncio.to_thread(send_all)
        return {f"{id_prefix}_{index}" for index in range(count)}

    async def add_consumer(self, queue: str) -> None:
        def call() -> list[Any]:
            return list(
                self.app.control.add_consumer(
                    queue, destination=[self.node], reply=True, timeout=10
                )
                or []
            )

        replies = await asyncio.to_thread(call)
        if not replies:
            raise BenchFailure(f"celery worker {self.node} did not answer add_consumer")

    async def queue_length(self, queue: str) -> int:
        client = aioredis.from_url(self.redis_url)
        try:
            return int(await client.llen(f"{self.keyprefix}{queue}"))
        finally:
            await client.aclose()


@asynccontextmanager
async def celery_worker(
    receiver: ReceiverClient,
    *,
    run_dir: Path,
    redis_url: str,
    queues: list[str],
    name: str,
) -> AsyncIterator[CeleryWorker]:
    """Start ``celery -A bench.celery_peer worker --pool prefork --concurrency 2`` consuming
    ``queues`` (plus a warm-up queue), wait until a warm-up task has reached the receiver (the
    pool is up), and on the way out stop it by PID and delete its Redis keys."""
    from bench.celery_peer import make_app

    token = secrets.token_hex(4)
    keyprefix = f"hookline-bench-celery:{token}:"
    node = f"bench{token}@localhost"
    warm_queue = "warm"
    env = child_env(
        {
            "BENCH_CELERY_BROKER_URL": redis_url,
            "BENCH_CELERY_KEYPREFIX": keyprefix,
            "PYTHONPATH": str(ROOT),
        }
    )
    app = make_app(redis_url, keyprefix)
    child = await processes.start(
        f"celery worker ({name})",
        [
            CELERY,
            "-A",
            "bench.celery_peer",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(CELERY_CONCURRENCY),
            "--loglevel",
            "WARNING",
            "-n",
            node,
            # No gossip, mingle or heartbeat: one worker needs no cluster events, and they cost
            # it a second at start and some CPU while idle.
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-Q",
            ",".join([warm_queue, *queues]),
        ],
        env=env,
        cwd=run_dir,
        log_path=run_dir / f"celery-{name}.log",
    )
    worker = CeleryWorker(
        app=app,
        child=child,
        node=node,
        keyprefix=keyprefix,
        redis_url=redis_url,
        receiver=receiver,
    )
    try:
        group = f"celwarm{token}"
        warm_ids = await worker.send(
            warm_queue,
            lambda i: receiver.url("ok", group),
            CELERY_CONCURRENCY * 2,
            id_prefix="warm",
        )
        done = await receiver.expect(group, len(warm_ids))
        waiter = asyncio.create_task(done.wait())
        exited = asyncio.create_task(child.process.wait())
        finished, _ = await asyncio.wait(
            {waiter, exited}, timeout=CELERY_START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        exited.cancel()
        if waiter not in finished:
            raise BenchFailure(f"the celery worker did not warm up: {child.describe()}")
        await receiver.forget(group)
        yield worker
    finally:
        try:
            # Cold shutdown (SIGQUIT): its figures are taken, nothing it holds is needed, and a
            # warm one takes seconds; the pool goes with its process group.
            await processes.stop(child, stop_signal=signal.SIGQUIT)
        finally:
            app.close()
            await delete_redis_keys(redis_url, keyprefix)
