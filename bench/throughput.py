"""End-to-end delivery throughput of the real worker path, on this machine, over loopback only.

    .venv/bin/python bench/throughput.py --deployment sqlite --events 5000 --concurrency 100
    .venv/bin/python bench/throughput.py --deployment postgres-redis --compare-bare-client

One run builds ``Settings`` for a fresh deployment (``sqlite``: a SQLite file in a temporary
directory with the SQL queue; ``postgres-redis``: a new PostgreSQL database on the test server and
a private Redis key prefix), opens the runtime with migrations, creates one endpoint pointing at a
loopback receiver (``loopback_receiver.py``, a child process that answers 200), publishes N events
through ``runtime.events.publish``, then runs ``RetryWorker.run`` on a ``SystemClock`` until the
receiver has N requests, and stops it. ``--compare-bare-client`` then POSTs N requests to the same
receiver from a bare aiohttp ``ClientSession`` at the same concurrency: the ceiling of this machine.

It reports the publish rate, the delivery rate (N / time from worker start to the last request),
publish-to-receive latency, peak RSS, and checks that every webhook-id arrived exactly once and that
the database holds N succeeded deliveries with N attempts and an empty queue. One line per metric,
then one JSON line. Exit status 0: all checks passed; 1: a check failed or a deadline passed.

Everything is bounded: N and C have upper limits, each phase has a deadline (``--deadline-s``), the
whole run and the receiver child have a hard lifetime; the temporary directory, the PostgreSQL
database and the Redis keys it created are removed at the end, whatever happened. Traffic goes to
127.0.0.1 only (the PostgreSQL and Redis URLs are refused unless they are loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import resource
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from hookline.clock import SystemClock
from hookline.observability.logging import configure_logging
from hookline.runtime import Runtime, open_runtime
from hookline.settings import Settings
from hookline.storage.db import normalize_url
from hookline.worker.retry_worker import RetryWorker

RECEIVER_SCRIPT: Final = Path(__file__).resolve().with_name("loopback_receiver.py")

DEFAULT_EVENTS: Final = 5000
MAX_EVENTS: Final = 200_000
DEFAULT_CONCURRENCY: Final = 100
MAX_CONCURRENCY: Final = 1000
DEFAULT_DEADLINE_S: Final = 300.0
MAX_DEADLINE_S: Final = 600.0
DEFAULT_PAYLOAD_BYTES: Final = 256
MAX_PAYLOAD_BYTES: Final = 64 * 1024
"""Bounds of the arguments: a benchmark run cannot be asked to go on for ever."""

DEFAULT_PG_ADMIN_URL: Final = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})

EVENT_TYPE: Final = "bench.tick"
BATCH_SIZE: Final = 100
POLL_INTERVAL_S: Final = 0.05
RECEIVER_START_TIMEOUT_S: Final = 30.0
"""How long the receiver child may take to import aiohttp and listen."""
RECEIVER_STOP_TIMEOUT_S: Final = 5.0
"""How long the receiver child gets to exit after its stdin closes before it is killed."""
WORKER_STOP_TIMEOUT_S: Final = 60.0
"""How long ``RetryWorker.run`` gets to finish (settle, release) once ``stop`` is set."""
SETUP_ALLOWANCE_S: Final = 120.0
"""Time allowed on top of the phases' deadlines for migrations, cleanup and process start."""
RECEIVER_READ_LIMIT_BYTES: Final = 64 * 1024 * 1024
"""Longest line read from the receiver: its DUMP of up to MAX_EVENTS requests fits."""


class BenchFailure(Exception):
    """A deadline passed, a check failed, or a service the benchmark needs misbehaved."""


# the receiver child ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrivals:
    """What the receiver recorded in one round: (webhook-id, arrival monotonic s) in order."""

    requests: list[tuple[str, float]]
    receiver_max_rss_kib: int


class ReceiverProcess:
    """The ``loopback_receiver.py`` child, driven over its stdin and stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def read_port(self) -> None:
        """Read the port the child listens on (its first line)."""
        line = await self._read_line()
        verb, _, port = line.partition(" ")
        if verb != "PORT":
            raise BenchFailure(f"receiver said {line[:80]!r}, expected PORT")
        self.port = int(port)

    async def expect(self, count: int) -> None:
        """Start a new round: forget what arrived, report when ``count`` requests have."""
        await self._send(f"EXPECT {count}")

    async def wait_done(self) -> None:
        """Return when the receiver says this round's requests have all arrived."""
        line = await self._read_line()
        if not line.startswith("DONE"):
            raise BenchFailure(f"receiver said {line[:80]!r}, expected DONE")

    async def dump(self) -> Arrivals:
        """What arrived in this round (a late ``DONE`` still in the pipe is skipped)."""
        await self._send("DUMP")
        line = await self._read_line()
        while line.startswith("DONE"):
            line = await self._read_line()
        data = json.loads(line)
        return Arrivals(
            requests=[(str(wid), float(at)) for wid, at in data["requests"]],
            receiver_max_rss_kib=int(data["max_rss_kib"]),
        )

    async def _send(self, line: str) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        stdin.write(line.encode() + b"\n")
        await stdin.drain()

    async def _read_line(self) -> str:
        stdout = self._process.stdout
        assert stdout is not None
        raw = await stdout.readline()
        if not raw:
            raise BenchFailure(f"the receiver exited (status {await self._process.wait()})")
        return raw.decode().strip()


@asynccontextmanager
async def running_receiver(*, lifetime_s: float) -> AsyncIterator[ReceiverProcess]:
    """Start the receiver child; on exit close its stdin, wait for it, kill it if it lingers."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(RECEIVER_SCRIPT),
        "--lifetime-s",
        str(lifetime_s),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=RECEIVER_READ_LIMIT_BYTES,
    )
    try:
        receiver = ReceiverProcess(process)
        try:
            async with asyncio.timeout(RECEIVER_START_TIMEOUT_S):
                await receiver.read_port()
        except TimeoutError:
            raise BenchFailure("the receiver did not start listening in time") from None
        yield receiver
    finally:
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        try:
            async with asyncio.timeout(RECEIVER_STOP_TIMEOUT_S):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


# deployments ----------------------------------------------------------------------------------


def _require_loopback(url: str, flag: str) -> str:
    host = urlsplit(url).hostname
    if host not in LOOPBACK_HOSTS:
        raise BenchFailure(f"{flag} must point at 127.0.0.1 (got host {host!r})")
    return url


def _with_database(url: str, database: str, *, scheme: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@asynccontextmanager
async def sqlite_deployment() -> AsyncIterator[dict[str, Any]]:
    """A SQLite file and the SQL queue in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="hookline-bench-") as tmp:
        yield {
            "HOOKLINE_DATA_DIR": tmp,
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'hookline.db'}",
            "REDIS_URL": None,
            "HOOKLINE_QUEUE_BACKEND": "sql",
        }


@asynccontextmanager
async def postgres_redis_deployment(
    *, pg_admin_url: str, redis_url: str
) -> AsyncIterator[dict[str, Any]]:
    """A new PostgreSQL database and a private Redis key prefix, dropped and deleted afterwards."""
    token = secrets.token_hex(6)
    database = f"hookline_bench_{token}"
    prefix = f"hookline-bench:{token}:"
    admin = create_async_engine(
        normalize_url(pg_admin_url),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"timeout": 5},
    )
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{database}"'))
        try:
            with tempfile.TemporaryDirectory(prefix="hookline-bench-") as tmp:
                yield {
                    "HOOKLINE_DATA_DIR": tmp,
                    "DATABASE_URL": _with_database(pg_admin_url, database, scheme="postgresql"),
                    "REDIS_URL": redis_url,
                    "HOOKLINE_REDIS_PREFIX": prefix,
                    "HOOKLINE_QUEUE_BACKEND": "redis",
                }
        finally:
            try:
                async with admin.connect() as conn:
                    await conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            finally:
                await _delete_redis_keys(redis_url, prefix)
    finally:
        await admin.dispose()


async def _delete_redis_keys(redis_url: str, prefix: str) -> None:
    client = aioredis.from_url(redis_url, socket_connect_timeout=5)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


def deployment(args: argparse.Namespace) -> AbstractAsyncContextManager[dict[str, Any]]:
    """The deployment context manager ``--deployment`` names."""
    if args.deployment == "sqlite":
        return sqlite_deployment()
    return postgres_redis_deployment(pg_admin_url=args.pg_admin_url, redis_url=args.redis_url)


def build_settings(environment: dict[str, Any], *, concurrency: int) -> Settings:
    """Settings from explicit values only (no ``.env``; these win over the environment)."""
    values: dict[str, Any] = {
        **environment,
        "ALLOWED_NETWORKS": "127.0.0.1/32",
        "RETRY_WORKER_POLL_INTERVAL": POLL_INTERVAL_S,
        "WORKER_CONCURRENCY": concurrency,
        "WORKER_ENDPOINT_CONCURRENCY": concurrency,
        "WORKER_BATCH_SIZE": BATCH_SIZE,
        "LOG_LEVEL": "WARNING",
        "_env_file": None,
    }
    return Settings(**values)


# measuring ------------------------------------------------------------------------------------


async def run_pool(count: int, concurrency: int, job: Callable[[int], Awaitable[None]]) -> None:
    """Run ``job(0) … job(count - 1)`` with at most ``concurrency`` at a time."""
    indexes = iter(range(count))

    async def lane() -> None:
        for index in indexes:  # shared: each index is taken by exactly one lane
            await job(index)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, count)):
            group.create_task(lane())


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def check_exactly_once(arrivals: Arrivals, expected_ids: set[str]) -> dict[str, Any]:
    """How the arrived webhook-ids compare with the expected ones."""
    counts = Counter(wid for wid, _ in arrivals.requests)
    result = {
        "requests": len(arrivals.requests),
        "distinct": len(counts),
        "duplicated": sum(n - 1 for n in counts.values() if n > 1),
        "missing": len(expected_ids - counts.keys()),
        "unknown": len(counts.keys() - expected_ids),
    }
    result["ok"] = result["duplicated"] == result["missing"] == result["unknown"] == 0
    return result


def _payload(index: int, pad: str) -> dict[str, Any]:
    return {"seq": index, "order_id": index, "total": "19.99", "pad": pad}


async def measure_worker(args: argparse.Namespace, receiver: ReceiverProcess) -> dict[str, Any]:
    """Publish N events and run the worker until the receiver has them; see the module doc."""
    async with deployment(args) as environment:
        settings = build_settings(environment, concurrency=args.concurrency)
        configure_logging(level=settings.log_level, json_format=True)
        async with open_runtime(settings, clock=SystemClock(), migrate=True) as runtime:
            result = await _drive_worker(args, runtime, receiver)
    result["deployment"] = args.deployment
    return result


async def _drive_worker(
    args: argparse.Namespace, runtime: Runtime, receiver: ReceiverProcess
) -> dict[str, Any]:
    n: int = args.events
    deadline_s: float = args.deadline_s
    await runtime.endpoints.create(url=receiver.url, description="throughput benchmark")
    await receiver.expect(n)
    pad = "x" * args.payload_bytes
    published_at: dict[str, float] = {}

    async def publish_one(index: int) -> None:
        published = await runtime.events.publish(
            event_type=EVENT_TYPE, payload=_payload(index, pad)
        )
        if len(published.deliveries) != 1:
            raise BenchFailure(f"an event fanned out to {len(published.deliveries)} deliveries")
        published_at[published.event.id] = time.monotonic()

    stop = asyncio.Event()
    worker = RetryWorker.from_runtime(runtime)
    worker_task: asyncio.Task[None] | None = None
    done = asyncio.create_task(receiver.wait_done())
    delivered = False
    worker_started_s = publish_started_s = time.monotonic()
    try:
        if args.overlap:
            worker_started_s = time.monotonic()
            worker_task = asyncio.create_task(worker.run(stop), name="bench-worker")
        publish_started_s = time.monotonic()
        try:
            async with asyncio.timeout(deadline_s):
                await run_pool(n, args.publish_concurrency, publish_one)
        except TimeoutError:
            raise BenchFailure(
                f"publishing stopped at {len(published_at)} of {n} events: "
                f"the {deadline_s:g} s deadline passed"
            ) from None
        publish_s = time.monotonic() - publish_started_s
        if worker_task is None:
            worker_started_s = time.monotonic()
            worker_task = asyncio.create_task(worker.run(stop), name="bench-worker")
        remaining_s = deadline_s - (time.monotonic() - worker_started_s)
        finished, _ = await asyncio.wait(
            {done, worker_task}, timeout=max(remaining_s, 0.0), return_when=asyncio.FIRST_COMPLETED
        )
        if worker_task in finished:
            raise BenchFailure(f"the worker stopped on its own: {worker_task.exception()!r}")
        if done in finished:
            done.result()
            delivered = True
    finally:
        stop.set()
        done.cancel()
        if worker_task is not None:
            try:
                await asyncio.wait_for(worker_task, timeout=WORKER_STOP_TIMEOUT_S)
            except TimeoutError:
                raise BenchFailure(
                    f"the worker did not stop within {WORKER_STOP_TIMEOUT_S:g} s"
                ) from None
    arrivals = await receiver.dump()
    if not delivered:
        raise BenchFailure(
            f"only {len(arrivals.requests)} of {n} deliveries reached the receiver within "
            f"{deadline_s:g} s of the worker's start"
        )

    exactly_once = check_exactly_once(arrivals, set(published_at))
    last_arrival_s = max(at for _, at in arrivals.requests)
    delivery_s = last_arrival_s - worker_started_s
    first_arrival: dict[str, float] = {}
    for wid, at in arrivals.requests:
        first_arrival.setdefault(wid, at)
    latencies_s = [
        at - published_at[wid] for wid, at in first_arrival.items() if wid in published_at
    ]

    async with runtime.engine.connect() as conn:
        state_rows = await conn.execute(
            text("SELECT state, count(*) FROM deliveries GROUP BY state")
        )
        states = {str(state): int(count) for state, count in state_rows}
        attempts = int(
            (await conn.execute(text("SELECT count(*) FROM delivery_attempts"))).scalar_one()
        )
    queue_depth = await runtime.queue.depth()
    database_ok = states == {"succeeded": n} and attempts == n and queue_depth == 0

    return {
        "events": n,
        "concurrency": args.concurrency,
        "publish_concurrency": args.publish_concurrency,
        "overlap": bool(args.overlap),
        "publish_s": round(publish_s, 3),
        "publish_events_per_s": round(n / publish_s, 1),
        "delivery_s": round(delivery_s, 3),
        "deliveries_per_s": round(n / delivery_s, 1),
        "latency_p50_s": round(percentile(latencies_s, 0.50), 3),
        "latency_p99_s": round(percentile(latencies_s, 0.99), 3),
        "exactly_once": exactly_once,
        "database": {"states": states, "attempts": attempts, "queue_depth": queue_depth},
        "database_ok": database_ok,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "receiver_peak_rss_mib": round(arrivals.receiver_max_rss_kib / 1024, 1),
        "ok": bool(exactly_once["ok"]) and database_ok,
    }


async def measure_bare_client(
    args: argparse.Namespace, receiver: ReceiverProcess
) -> dict[str, Any]:
    """POST N times from one pooled ClientSession at concurrency C: the machine's ceiling."""
    n: int = args.events
    concurrency: int = args.concurrency
    deadline_s: float = args.deadline_s
    await receiver.expect(n)
    pad = "x" * args.payload_bytes
    round_trips_s: list[float] = []
    statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=15, sock_connect=5),
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )

    async def post_one(index: int) -> None:
        headers = {
            "content-type": "application/json",
            "webhook-id": f"bare_{index}",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": "v1,bare",
        }
        started_s = time.monotonic()
        body = orjson.dumps(_payload(index, pad))
        async with session.post(receiver.url, data=body, headers=headers) as response:
            await response.read()
            statuses[response.status] += 1
        round_trips_s.append(time.monotonic() - started_s)

    done = asyncio.create_task(receiver.wait_done())
    started_s = time.monotonic()
    try:
        async with asyncio.timeout(deadline_s):
            await run_pool(n, concurrency, post_one)
            await done
    except TimeoutError:
        raise BenchFailure(
            f"the bare client made {len(round_trips_s)} of {n} requests within {deadline_s:g} s"
        ) from None
    finally:
        done.cancel()
        await session.close()
    arrivals = await receiver.dump()
    exactly_once = check_exactly_once(arrivals, {f"bare_{index}" for index in range(n)})
    elapsed_s = max(at for _, at in arrivals.requests) - started_s
    return {
        "events": n,
        "concurrency": concurrency,
        "elapsed_s": round(elapsed_s, 3),
        "requests_per_s": round(n / elapsed_s, 1),
        "round_trip_p50_ms": round(percentile(round_trips_s, 0.50) * 1000, 2),
        "round_trip_p99_ms": round(percentile(round_trips_s, 0.99) * 1000, 2),
        "statuses": {str(status): count for status, count in statuses.items()},
        "exactly_once": exactly_once,
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "ok": bool(exactly_once["ok"]) and statuses == Counter({200: n}),
    }


# reporting ------------------------------------------------------------------------------------


def _line(label: str, value: str) -> None:
    print(f"{label:<22} {value}", flush=True)


def _exactly_once_text(check: dict[str, Any]) -> str:
    verdict = "yes" if check["ok"] else "NO"
    return (
        f"{verdict}: {check['distinct']} distinct webhook-ids in {check['requests']} requests, "
        f"{check['missing']} missing, {check['duplicated']} duplicated, {check['unknown']} unknown"
    )


def report_worker(result: dict[str, Any]) -> None:
    n = result["events"]
    database = result["database"]
    states = ", ".join(f"{state}={count}" for state, count in sorted(database["states"].items()))
    _line("deployment", result["deployment"])
    _line(
        "workload",
        f"{n} events, worker concurrency {result['concurrency']}, batch {BATCH_SIZE}, "
        f"publish concurrency {result['publish_concurrency']}"
        + (", worker running while publishing" if result["overlap"] else ""),
    )
    _line("publish", f"{result['publish_events_per_s']:.0f} events/s ({result['publish_s']:.2f} s)")
    _line(
        "delivery",
        f"{result['deliveries_per_s']:.0f} deliveries/s "
        f"({result['delivery_s']:.2f} s from worker start to last request)",
    )
    _line(
        "latency p50 / p99",
        f"{result['latency_p50_s']:.3f} s / {result['latency_p99_s']:.3f} s "
        "(publish returned → request received"
        + ("" if result["overlap"] else "; includes waiting for the worker to start")
        + ")",
    )
    _line("exactly once", _exactly_once_text(result["exactly_once"]))
    _line(
        "database",
        f"{'ok' if result['database_ok'] else 'NOT OK'}: deliveries {states}; "
        f"attempts {database['attempts']}; queue depth {database['queue_depth']}",
    )
    _line(
        "peak rss",
        f"{result['peak_rss_mib']:.1f} MiB this process; "
        f"receiver {result['receiver_peak_rss_mib']:.1f} MiB",
    )


def report_bare_client(result: dict[str, Any]) -> None:
    _line(
        "bare client",
        f"{result['requests_per_s']:.0f} requests/s ({result['elapsed_s']:.2f} s for "
        f"{result['events']} POSTs at concurrency {result['concurrency']}; "
        f"round trip p50 {result['round_trip_p50_ms']:.1f} ms, "
        f"p99 {result['round_trip_p99_ms']:.1f} ms)",
    )
    _line("bare client once", _exactly_once_text(result["exactly_once"]))
    _line("bare client peak rss", f"{result['peak_rss_mib']:.1f} MiB this process (cumulative)")


# entry point ----------------------------------------------------------------------------------


def total_bound_s(deadline_s: float) -> float:
    """The hard limit of a whole run: two phases of the worker, two of the bare client, setup."""
    return 4 * deadline_s + SETUP_ALLOWANCE_S


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every phase the arguments ask for, inside the run's hard time limit."""
    summary: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    bound_s = total_bound_s(args.deadline_s)
    async with asyncio.timeout(bound_s), running_receiver(lifetime_s=bound_s + 30) as receiver:
        if args.deployment != "none":
            worker = await measure_worker(args, receiver)
            report_worker(worker)
            summary["worker"] = worker
        if args.compare_bare_client:
            bare = await measure_bare_client(args, receiver)
            report_bare_client(bare)
            summary["bare_client"] = bare
            if "worker" in summary:
                share = summary["worker"]["deliveries_per_s"] / bare["requests_per_s"]
                _line("worker / bare client", f"{share:.1%} of the bare client's rate")
                summary["worker_share_of_bare"] = round(share, 3)
    summary["ok"] = all(
        summary[phase]["ok"] for phase in ("worker", "bare_client") if phase in summary
    )
    return summary


def _bounded(kind: type[float] | type[int], low: float, high: float) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        value = kind(raw)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}")
        return value

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="End-to-end delivery throughput of hookline's worker, over loopback only."
    )
    parser.add_argument(
        "--deployment",
        choices=("sqlite", "postgres-redis", "none"),
        default="sqlite",
        help="storage to measure; 'none' runs only --compare-bare-client (default: sqlite)",
    )
    parser.add_argument(
        "--events",
        type=_bounded(int, 1, MAX_EVENTS),
        default=DEFAULT_EVENTS,
        help=f"N, events published and deliveries expected (default {DEFAULT_EVENTS})",
    )
    parser.add_argument(
        "--concurrency",
        type=_bounded(int, 1, MAX_CONCURRENCY),
        default=DEFAULT_CONCURRENCY,
        help="C, worker (and per-endpoint, and bare client) concurrency "
        f"(default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--publish-concurrency",
        type=_bounded(int, 1, MAX_CONCURRENCY),
        default=1,
        help="publish calls in flight at once (default 1: one publisher)",
    )
    parser.add_argument(
        "--payload-bytes",
        type=_bounded(int, 0, MAX_PAYLOAD_BYTES),
        default=DEFAULT_PAYLOAD_BYTES,
        help=f"padding added to each event's payload (default {DEFAULT_PAYLOAD_BYTES})",
    )
    parser.add_argument(
        "--overlap",
        action="store_true",
        help="start the worker before publishing (latency of a live system, not of a backlog)",
    )
    parser.add_argument(
        "--compare-bare-client",
        action="store_true",
        help="also POST N times from a bare aiohttp ClientSession at concurrency C (the ceiling)",
    )
    parser.add_argument(
        "--deadline-s",
        type=_bounded(float, 1, MAX_DEADLINE_S),
        default=DEFAULT_DEADLINE_S,
        help=f"limit of each phase in seconds (default {DEFAULT_DEADLINE_S:g})",
    )
    parser.add_argument("--pg-admin-url", default=DEFAULT_PG_ADMIN_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args(argv)
    if args.deployment == "none" and not args.compare_bare_client:
        parser.error("--deployment none measures nothing without --compare-bare-client")
    try:
        _require_loopback(args.pg_admin_url, "--pg-admin-url")
        _require_loopback(args.redis_url, "--redis-url")
    except BenchFailure as exc:
        parser.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary = asyncio.run(run(args))
    except BenchFailure as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: what the run created has been removed", file=sys.stderr)
        return 130
    except TimeoutError:
        print(
            f"FAILED: the run passed its {total_bound_s(args.deadline_s):g} s limit",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(summary, sort_keys=True))
    if not summary["ok"]:
        print("FAILED: a check did not pass (see the lines above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
