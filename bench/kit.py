"""What the scenarios share: their context, the warm-up, a timed drain, steady publishing."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import processes
from bench.common import BenchFailure, exactly_once, percentile, require_exactly_once, rounded
from bench.deployments import POSTGRES_REDIS, Deployment, DeploymentFactory, Hookline
from bench.loading import (
    ApiClient,
    Backlog,
    Target,
    attempt_count,
    create_endpoints,
    insert_backlog,
    publish_steady,
    release,
    wait_settled,
)
from bench.plan import Plan
from bench.receiver_client import ReceiverClient

WARM_UP_COUNT = 20
"""Deliveries a fresh worker makes before a timed phase (connections, statement caches)."""
SHORT = {POSTGRES_REDIS: "pg", "sqlite": "sq"}


@dataclass
class Context:
    plan: Plan
    receiver: ReceiverClient
    factories: dict[str, DeploymentFactory]
    run_dir: Path
    redis_url: str


@dataclass
class ScenarioResult:
    """Figures of one scenario: per deployment kind, of the peers, and what went wrong."""

    name: str
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    peers: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    wall_s: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "deployments": self.deployments,
            "peers": self.peers,
            "errors": self.errors,
            "skipped": self.skipped,
            "wall_s": self.wall_s,
        }

    async def capture(
        self, where: str, work: Callable[[], Awaitable[dict[str, Any]]], *, peer: bool = False
    ) -> None:
        """Run one part of the scenario (a deployment kind, or a ``peer``) and keep its
        figures; a failure is recorded and the scenario goes on."""
        started = time.monotonic()
        try:
            figures = await work()
        except (BenchFailure, TimeoutError, OSError) as exc:
            self.errors.append(f"{where}: {exc or type(exc).__name__}")
            return
        except Exception as exc:  # a bug of the harness or hookline: keep the trace
            self.errors.append(f"{where}: {exc!r}\n{traceback.format_exc(limit=8)}")
            return
        finally:
            self.wall_s[where] = round(time.monotonic() - started, 1)
            print(f"   {where}: {self.wall_s[where]:g} s", file=sys.stderr, flush=True)
        if peer:
            self.peers[where] = figures
        else:
            self.deployments[where] = figures


def group_name(stem: str, kind: str) -> str:
    """A receiver group (URL path segment) unique to this run."""
    return f"{stem}-{SHORT.get(kind, kind)}-{secrets.token_hex(2)}"


async def wait_event(
    event: asyncio.Event,
    *,
    timeout_s: float,
    children: Sequence[processes.Child],
    on_timeout: Callable[[], Awaitable[str]],
) -> None:
    """Wait for ``event``; fail at once if a child exits, or with ``on_timeout()`` when late."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not event.is_set():
        for child in children:
            if not child.running:
                raise BenchFailure(f"{child.name} exited: {child.describe()}")
        if loop.time() >= deadline:
            raise BenchFailure(await on_timeout())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), min(0.5, max(deadline - loop.time(), 0.01)))


async def warm_up(ctx: Context, deployment: Deployment, hookline: Hookline) -> None:
    """Deliver ``WARM_UP_COUNT`` deliveries and wait until they are settled."""
    group = group_name("warm", deployment.kind)
    targets = await create_endpoints(deployment, ctx.receiver, group=group, count=1)
    backlog = await insert_backlog(deployment, targets, count=WARM_UP_COUNT)
    done = await ctx.receiver.expect(group, WARM_UP_COUNT)
    await release(deployment, backlog)
    await wait_event(
        done,
        timeout_s=ctx.plan.phase_timeout_s(WARM_UP_COUNT),
        children=hookline.all_children,
        on_timeout=lambda: _late("warm-up", ctx.receiver, group, WARM_UP_COUNT),
    )
    await wait_settled(deployment, backlog.endpoint_ids, count=WARM_UP_COUNT, timeout_s=60)
    await ctx.receiver.forget(group)


async def _late(what: str, receiver: ReceiverClient, group: str, count: int) -> str:
    ok, total = await receiver.count(group)
    return f"{what}: {ok} of {count} answered 2xx ({total} requests) before the deadline"


async def timed_drain(
    ctx: Context,
    deployment: Deployment,
    hookline: Hookline,
    backlog: Backlog,
    *,
    group: str,
    flaky: bool = False,
) -> dict[str, Any]:
    """Release a held backlog and time it until the receiver has every delivery answered 2xx;
    check exactly-once arrival and the database; worker CPU per delivery.

    The clock starts just before the release (one UPDATE, plus the queue calls on Redis) and
    stops at the last 2xx arrival. CPU is read from ``/proc`` of every worker process just
    before the release and once the database says every delivery succeeded (so the last
    settle is counted).
    """
    count = len(backlog.delivery_by_event)
    timeout_s = ctx.plan.phase_timeout_s(count * (2 if flaky else 1))
    done = await ctx.receiver.expect(group, count)
    cpu_before = processes.tree_cpu_s(hookline.worker_pids)
    started = time.monotonic()
    await release(deployment, backlog)
    released_s = time.monotonic() - started
    await wait_event(
        done,
        timeout_s=timeout_s,
        children=hookline.all_children,
        on_timeout=lambda: _late("drain", ctx.receiver, group, count),
    )
    states = await wait_settled(deployment, backlog.endpoint_ids, count=count, timeout_s=60)
    cpu_s = processes.tree_cpu_s(hookline.worker_pids) - cpu_before
    arrivals = await ctx.receiver.dump(group)
    await ctx.receiver.forget(group)
    check = exactly_once(arrivals.requests, set(backlog.delivery_by_event))
    require_exactly_once(check, "hookline")
    attempts = await attempt_count(deployment, backlog.endpoint_ids)
    expected_attempts = count * (2 if flaky else 1)
    if flaky:
        failed_first = Counter(str(r[0]) for r in arrivals.requests if r[3] == 503)
        if len(failed_first) != count or any(n != 1 for n in failed_first.values()):
            raise BenchFailure(
                f"flaky receiver: {len(failed_first)} of {count} ids saw one 503 "
                f"({sum(failed_first.values())} 503s)"
            )
    if attempts != expected_attempts or states["succeeded"] != count:
        raise BenchFailure(
            f"database: {dict(states)}, {attempts} attempts; expected {count} succeeded and "
            f"{expected_attempts} attempts"
        )
    elapsed_s = (arrivals.last_ok_monotonic() or started) - started
    return {
        "count": count,
        "processes": len(hookline.workers),
        "processes_ready_s": hookline.start_s,
        "elapsed_s": round(elapsed_s, 3),
        "release_s": round(released_s, 3),
        "rate_per_s": rounded(count / elapsed_s if elapsed_s > 0 else None),
        "worker_cpu_s": round(cpu_s, 3),
        "cpu_us_per_delivery": rounded(cpu_s / count * 1e6, 0),
        "attempts": attempts,
        "states": dict(states),
        "exactly_once": check,
    }


async def celery_drain(
    ctx: Context, worker: Any, *, queue: str, group: str, count: int, mode: str = "ok"
) -> dict[str, Any]:
    """The Celery peer's drain of ``count`` tasks sent to ``queue`` before its worker consumes
    it: timed from ``add_consumer`` to the last 2xx arrival; CPU over its processes."""
    endpoints = ctx.plan.endpoints
    ids = await worker.send(
        queue, lambda i: ctx.receiver.url(mode, group, f"e{i % endpoints}"), count
    )
    done = await ctx.receiver.expect(group, count)
    cpu_before = worker.cpu_s()
    started = time.monotonic()
    await worker.add_consumer(queue)
    timeout_s = ctx.plan.phase_timeout_s(count * (2 if mode == "flaky" else 1))
    await wait_event(
        done,
        timeout_s=timeout_s,
        children=[worker.child],
        on_timeout=lambda: _late("celery drain", ctx.receiver, group, count),
    )
    await asyncio.sleep(0.2)  # the last task's bookkeeping after its request
    cpu_s = worker.cpu_s() - cpu_before
    arrivals = await ctx.receiver.dump(group)
    await ctx.receiver.forget(group)
    check = exactly_once(arrivals.requests, ids)
    require_exactly_once(check, "celery")
    elapsed_s = (arrivals.last_ok_monotonic() or started) - started
    return {
        "count": count,
        "concurrency": 2,
        "elapsed_s": round(elapsed_s, 3),
        "rate_per_s": rounded(count / elapsed_s if elapsed_s > 0 else None),
        "worker_cpu_s": round(cpu_s, 3),
        "cpu_us_per_delivery": rounded(cpu_s / count * 1e6, 0),
        "requests": len(arrivals.requests),
        "exactly_once": check,
    }


async def steady_latencies(
    ctx: Context,
    api: ApiClient,
    targets: Sequence[Target],
    *,
    group: str,
    rate_per_s: float,
    count: int,
    children: Sequence[processes.Child],
) -> dict[str, Any]:
    """Publish ``count`` events over HTTP at ``rate_per_s`` and measure publish-to-receipt:
    from the start of each ``POST /events`` to the request's arrival at the receiver."""
    steady = await publish_steady(api, targets, rate_per_s=rate_per_s, count=count)
    published = len(steady.published_at)
    done = await ctx.receiver.expect(group, published)
    await wait_event(
        done,
        timeout_s=ctx.plan.phase_timeout_s(published),
        children=children,
        on_timeout=lambda: _late("steady traffic", ctx.receiver, group, published),
    )
    arrivals = await ctx.receiver.dump(group)
    await ctx.receiver.forget(group)
    check = exactly_once(arrivals.requests, set(steady.published_at))
    require_exactly_once(check, "steady traffic")
    first: dict[str, float] = {}
    for webhook_id, mono, _wall, status in arrivals.requests:
        if 200 <= status < 300:
            first.setdefault(webhook_id, mono)
    latencies_ms = [(first[w] - at) * 1000 for w, at in steady.published_at.items() if w in first]
    refused = {str(s): n for s, n in steady.statuses.items() if s not in (200, 202)}
    return {
        "asked_rate_per_s": round(rate_per_s, 1),
        "publish_rate_per_s": round(steady.rate, 1),
        "published": published,
        "refused": refused,
        "p50_ms": rounded(percentile(latencies_ms, 0.5)),
        "p99_ms": rounded(percentile(latencies_ms, 0.99)),
        "max_ms": rounded(max(latencies_ms) if latencies_ms else None),
    }
