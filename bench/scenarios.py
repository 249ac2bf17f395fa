"""The scenarios of issue 10, each on every selected deployment kind, with its peers.

Each one takes a ``Context`` and returns a ``ScenarioResult``; every deployment it uses is
fresh (``DeploymentFactory.fresh``) and every process it starts is stopped before it returns.
What each measures is told in bench/README.md; the code says how.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Final

from bench import processes
from bench.common import BenchFailure, percentile, rounded
from bench.deployments import POSTGRES_REDIS, SQLITE, DeploymentFactory
from bench.kit import (
    Context,
    ScenarioResult,
    celery_drain,
    group_name,
    steady_latencies,
    timed_drain,
    wait_event,
    warm_up,
)
from bench.loading import (
    ApiClient,
    Backlog,
    Target,
    create_endpoints,
    delivery_states,
    event_body,
    insert_backlog,
    release,
    set_due,
    utcnow,
    wait_settled,
)
from bench.peers import bare_client, celery_worker
from hookline.domain.retry_config import RetryConfig

LATENCY_RATE_BOUNDS_PER_S: Final = (5.0, 2000.0)
"""The steady load of the drain scenario is half the measured drain rate, within these."""
RETRY_CONFIG: Final = RetryConfig(base_delay=1)
"""The retry-heavy endpoints' policy: first retry after 1-1.5 s (default jitter)."""
FAR_AHEAD: Final = timedelta(hours=3)
"""Memory scenario: how far ahead the pending deliveries (and Celery's ETA tasks) are due."""


async def _for_each_kind(
    ctx: Context,
    result: ScenarioResult,
    run: Callable[[DeploymentFactory], Awaitable[dict[str, Any]]],
    *,
    kinds: tuple[str, ...] = (POSTGRES_REDIS, SQLITE),
) -> None:
    for kind, factory in ctx.factories.items():
        if kind not in kinds:
            result.skipped.append(f"{kind}: not measured in this scenario")
            continue
        await result.capture(kind, functools.partial(run, factory))


# b. drain --------------------------------------------------------------------------------------


async def drain(ctx: Context) -> ScenarioResult:
    """A backlog of N deliveries to 10 endpoints, all 2xx; then a steady load at half the
    measured rate for publish-to-receipt latency."""
    result = ScenarioResult("drain")
    plan = ctx.plan

    async def on(factory: DeploymentFactory) -> dict[str, Any]:
        kind = factory.kind
        async with factory.fresh("drain") as deployment:
            group = group_name("drain", kind)
            live_group = group_name("live", kind)

            async def prepare() -> tuple[Backlog, list[Target]]:
                targets = await create_endpoints(
                    deployment, ctx.receiver, group=group, count=plan.endpoints
                )
                live = await create_endpoints(
                    deployment, ctx.receiver, group=live_group, count=plan.endpoints
                )
                return await insert_backlog(deployment, targets, count=plan.drain_count), live

            async with deployment.hookline(workers=1, api=True, prepare=prepare) as hookline:
                backlog, live = hookline.prepared
                await warm_up(ctx, deployment, hookline)
                figures = await timed_drain(ctx, deployment, hookline, backlog, group=group)
                low, high = LATENCY_RATE_BOUNDS_PER_S
                rate = min(max((figures["rate_per_s"] or 0) / 2, low), high)
                count = int(min(rate * plan.latency_duration_s, plan.latency_max_count))
                assert hookline.api_url is not None
                api = ApiClient(hookline.api_url, deployment.api_token, connections=64)
                try:
                    figures["latency"] = await steady_latencies(
                        ctx,
                        api,
                        live,
                        group=live_group,
                        rate_per_s=rate,
                        count=max(count, 1),
                        children=hookline.all_children,
                    )
                finally:
                    await api.close()
        return figures

    await _for_each_kind(ctx, result, on)
    await result.capture("celery", lambda: _celery_drain(ctx, "drain"), peer=True)
    await result.capture(
        "bare_client",
        lambda: bare_client(
            ctx.receiver,
            count=plan.drain_count,
            concurrency=plan.bare_concurrency,
            timeout_s=plan.phase_timeout_s(plan.drain_count),
        ),
        peer=True,
    )
    return result


async def _celery_drain(ctx: Context, name: str, *, mode: str = "ok") -> dict[str, Any]:
    count = ctx.plan.retry_count if mode == "flaky" else ctx.plan.drain_count
    async with celery_worker(
        ctx.receiver, run_dir=ctx.run_dir, redis_url=ctx.redis_url, queues=[], name=name
    ) as worker:
        return await celery_drain(
            ctx, worker, queue=name, group=group_name(name, "cel"), count=count, mode=mode
        )


# c. retry-heavy --------------------------------------------------------------------------------


async def retry_heavy(ctx: Context) -> ScenarioResult:
    """Every delivery's first attempt answered 503, its second 200 (retry after ~1 s)."""
    result = ScenarioResult("retry")
    plan = ctx.plan

    async def on(factory: DeploymentFactory) -> dict[str, Any]:
        async with factory.fresh("retry") as deployment:
            group = group_name("retry", factory.kind)

            async def prepare() -> Backlog:
                targets = await create_endpoints(
                    deployment,
                    ctx.receiver,
                    group=group,
                    count=plan.endpoints,
                    mode="flaky",
                    retry_config=RETRY_CONFIG,
                )
                return await insert_backlog(deployment, targets, count=plan.retry_count)

            async with deployment.hookline(workers=1, prepare=prepare) as hookline:
                backlog = hookline.prepared
                await warm_up(ctx, deployment, hookline)
                return await timed_drain(
                    ctx, deployment, hookline, backlog, group=group, flaky=True
                )

    await _for_each_kind(ctx, result, on)
    await result.capture("celery", lambda: _celery_drain(ctx, "retry", mode="flaky"), peer=True)
    return result


# a. ingest -------------------------------------------------------------------------------------


async def ingest(ctx: Context) -> ScenarioResult:
    """``POST /events`` over HTTP from 50 concurrent clients, 1 KiB, one matching endpoint:
    durable events/s, latency, answers by status, server CPU per request."""
    result = ScenarioResult("ingest")
    plan = ctx.plan

    async def on(factory: DeploymentFactory) -> dict[str, Any]:
        async with (
            factory.fresh("ingest") as deployment,
            deployment.hookline(workers=0, api=True) as hookline,
        ):
            assert hookline.api_url is not None
            assert hookline.api is not None
            api = ApiClient(hookline.api_url, deployment.api_token, connections=plan.ingest_clients)
            try:
                event_type = "bench.ingest"
                await api.create_webhook(
                    ctx.receiver.url("ok", group_name("ingest", factory.kind)), [event_type]
                )
                bodies = [event_body(event_type, seq) for seq in range(64)]
                statuses: Counter[str] = Counter()
                latencies_ms: list[float] = []
                sent = 0
                server = hookline.api.pid
                cpu_before = processes.cpu_s(server)
                started = time.monotonic()
                stop_at = started + plan.ingest_duration_s

                async def client() -> None:
                    nonlocal sent
                    while sent < plan.ingest_max_requests and time.monotonic() < stop_at:
                        sent += 1
                        at = time.monotonic()
                        try:
                            status = await api.post_event(bodies[sent % 64])
                        except (OSError, TimeoutError) as exc:
                            statuses[type(exc).__name__] += 1
                            continue
                        statuses[str(status)] += 1
                        latencies_ms.append((time.monotonic() - at) * 1000)

                async with asyncio.TaskGroup() as clients:
                    for _ in range(plan.ingest_clients):
                        clients.create_task(client())
                elapsed_s = time.monotonic() - started
                cpu_s = processes.cpu_s(server) - cpu_before
            finally:
                await api.close()
            accepted = statuses["202"]
            durable = await deployment.count(
                "SELECT count(*) FROM events WHERE event_type = :t", t=event_type
            )
            if durable < accepted:
                raise BenchFailure(f"{accepted} events acknowledged 202, only {durable} committed")
            requests = sum(statuses.values())
            return {
                "clients": plan.ingest_clients,
                "requests": requests,
                "elapsed_s": round(elapsed_s, 3),
                "accepted": accepted,
                "durable": durable,
                "durable_per_s": rounded(durable / elapsed_s),
                "statuses": dict(statuses),
                "non_2xx": {s: n for s, n in statuses.items() if s not in ("200", "202")},
                "status_503": statuses["503"],
                "p50_ms": rounded(percentile(latencies_ms, 0.5)),
                "p99_ms": rounded(percentile(latencies_ms, 0.99)),
                "server_cpu_us_per_request": rounded(cpu_s / requests * 1e6, 0)
                if requests
                else None,
                "server": "hookline api" if factory.kind == POSTGRES_REDIS else "hookline serve",
            }

    await _for_each_kind(ctx, result, on)
    return result


# g. scale-out ----------------------------------------------------------------------------------


async def scale_out(ctx: Context) -> ScenarioResult:
    """The same backlog drained by 1, 2 and 4 ``hookline worker`` processes."""
    result = ScenarioResult("scaleout")
    plan = ctx.plan

    async def on(factory: DeploymentFactory) -> dict[str, Any]:
        runs: dict[str, Any] = {}
        async with (
            factory.fresh("scaleout") as deployment,
            deployment.hookline(workers=1) as hookline,
        ):
            for count in plan.scale_processes:
                if len(hookline.workers) < count:
                    await hookline.add_workers(count - len(hookline.workers))
                group = group_name(f"scale{count}", factory.kind)
                targets = await create_endpoints(
                    deployment, ctx.receiver, group=group, count=plan.endpoints
                )
                backlog = await insert_backlog(deployment, targets, count=plan.scale_count)
                await warm_up(ctx, deployment, hookline)
                runs[str(count)] = await timed_drain(
                    ctx, deployment, hookline, backlog, group=group
                )
        one = runs.get("1", {}).get("rate_per_s")
        return {
            "runs": runs,
            "speedup": {
                k: rounded(run["rate_per_s"] / one, 2) if one and run["rate_per_s"] else None
                for k, run in runs.items()
            },
        }

    await _for_each_kind(ctx, result, on, kinds=(POSTGRES_REDIS,))
    await result.capture(
        "bare_client",
        lambda: bare_client(
            ctx.receiver,
            count=plan.scale_count,
            concurrency=plan.bare_concurrency,
            timeout_s=plan.phase_timeout_s(plan.scale_count),
        ),
        peer=True,
    )
    return result


# f. isolation ----------------------------------------------------------------------------------


async def isolation(ctx: Context) -> ScenarioResult:
    """A healthy endpoint's publish-to-receipt p99 alone, then beside an endpoint whose every
    request times out, with a backlog of N deliveries."""
    result = ScenarioResult("isolation")
    plan = ctx.plan
    timeout_s = plan.isolation_timeout_s
    extra_env = {
        "DELIVERY_TIMEOUT": f"{timeout_s:g}",
        "DELIVERY_CONNECT_TIMEOUT": f"{min(timeout_s, 1.0):g}",
    }

    async def on(factory: DeploymentFactory) -> dict[str, Any]:
        kind = factory.kind
        async with factory.fresh("isolation") as deployment:
            quiet_group = group_name("isoquiet", kind)
            busy_group = group_name("isobusy", kind)
            hang_group = group_name("isohang", kind)
            receiver = ctx.receiver
            count = max(int(plan.isolation_rate_per_s * plan.isolation_duration_s), 1)

            async def prepare() -> tuple[list[Target], list[Target], list[Target], Backlog]:
                quiet = await create_endpoints(deployment, receiver, group=quiet_group, count=1)
                busy = await create_endpoints(deployment, receiver, group=busy_group, count=1)
                hang = await create_endpoints(
                    deployment, receiver, group=hang_group, count=1, mode="hang"
                )
                backlog = await insert_backlog(deployment, hang, count=plan.isolation_hang_count)
                return quiet, busy, hang, backlog

            async with deployment.hookline(
                workers=1, api=True, extra_env=extra_env, prepare=prepare
            ) as hookline:
                quiet, busy, hang, backlog = hookline.prepared
                await warm_up(ctx, deployment, hookline)
                assert hookline.api_url is not None
                api = ApiClient(hookline.api_url, deployment.api_token, connections=64)
                try:
                    alone = await steady_latencies(
                        ctx,
                        api,
                        quiet,
                        group=quiet_group,
                        rate_per_s=plan.isolation_rate_per_s,
                        count=count,
                        children=hookline.all_children,
                    )
                    await release(deployment, backlog)
                    wanted = min(plan.isolation_hang_count, 10)

                    async def hanging() -> bool:
                        return (await receiver.count(hang_group))[1] >= wanted

                    await processes.wait_for(
                        hanging,
                        timeout_s=60,
                        what="requests to the timing-out endpoint",
                        children=hookline.all_children,
                    )
                    hang_before = (await receiver.count(hang_group))[1]
                    beside = await steady_latencies(
                        ctx,
                        api,
                        busy,
                        group=busy_group,
                        rate_per_s=plan.isolation_rate_per_s,
                        count=count,
                        children=hookline.all_children,
                    )
                    hang_during = (await receiver.count(hang_group))[1] - hang_before
                finally:
                    await api.close()
                states = await delivery_states(deployment, backlog.endpoint_ids)
                await deployment.runtime.endpoints.delete(endpoint_id=hang[0].endpoint_id)
            await receiver.forget(hang_group)
        ratio = beside["p99_ms"] / alone["p99_ms"] if alone["p99_ms"] and beside["p99_ms"] else None
        return {
            "delivery_timeout_s": timeout_s,
            "timing_out_backlog": plan.isolation_hang_count,
            "alone": alone,
            "beside_timing_out": beside,
            "p99_ratio": rounded(ratio, 2),
            "timing_out_requests_during": hang_during,
            "timing_out_states_after": dict(states),
        }

    await _for_each_kind(ctx, result, on)
    return result


# e. lateness -----------------------------------------------------------------------------------


async def lateness(ctx: Context) -> ScenarioResult:
    """Retries falling due at a steady rate: how late each attempt reaches the receiver."""
    result = ScenarioResult("lateness")
    plan = ctx.plan

    async def on(factory: DeploymentFactory) -> dict[str, Any]:
        async with factory.fresh("lateness") as deployment:
            group = group_name("late", factory.kind)
            count = plan.lateness_count

            async def prepare() -> Backlog:
                targets = await create_endpoints(
                    deployment, ctx.receiver, group=group, count=plan.endpoints
                )
                return await insert_backlog(deployment, targets, count=count, retrying=True)

            async with deployment.hookline(workers=1, prepare=prepare) as hookline:
                backlog = hookline.prepared
                await warm_up(ctx, deployment, hookline)
                lead = timedelta(seconds=plan.lateness_lead_s + count * 0.0003)
                first_due = utcnow() + lead
                due_by_event: dict[str, float] = {}
                items = []
                for index, (event_id, delivery_id) in enumerate(backlog.delivery_by_event.items()):
                    due = first_due + timedelta(seconds=index / plan.lateness_rate_per_s)
                    due_by_event[event_id] = due.timestamp()
                    items.append((delivery_id, due))
                done = await ctx.receiver.expect(group, count)
                await set_due(deployment, items)
                written_ahead_s = (first_due - utcnow()).total_seconds()
                cpu_before = processes.tree_cpu_s(hookline.worker_pids)
                span_s = count / plan.lateness_rate_per_s
                await wait_event(
                    done,
                    timeout_s=ctx.plan.phase_timeout_s(count) + span_s + lead.total_seconds(),
                    children=hookline.all_children,
                    on_timeout=lambda: _late_text(ctx, group, count),
                )
                await wait_settled(deployment, backlog.endpoint_ids, count=count, timeout_s=60)
                cpu_s = processes.tree_cpu_s(hookline.worker_pids) - cpu_before
            arrivals = await ctx.receiver.dump(group)
            await ctx.receiver.forget(group)
        first: dict[str, float] = {}
        for webhook_id, _mono, wall, status in arrivals.requests:
            if 200 <= status < 300:
                first.setdefault(webhook_id, wall)
        late_ms = [(first[e] - due) * 1000 for e, due in due_by_event.items() if e in first]
        early = sum(1 for value in late_ms if value < -5)
        if early:
            raise BenchFailure(f"{early} attempts reached the receiver before they were due")
        if written_ahead_s < 0:
            raise BenchFailure(f"writing the due times took {-written_ahead_s:.2f} s too long")
        return {
            "count": count,
            "rate_per_s": plan.lateness_rate_per_s,
            "p50_ms": rounded(percentile(late_ms, 0.5)),
            "p99_ms": rounded(percentile(late_ms, 0.99)),
            "max_ms": rounded(max(late_ms) if late_ms else None),
            "cpu_us_per_delivery": rounded(cpu_s / count * 1e6, 0),
            "written_ahead_s": round(written_ahead_s, 2),
        }

    await _for_each_kind(ctx, result, on)
    return result


async def _late_text(ctx: Context, group: str, count: int) -> str:
    ok, total = await ctx.receiver.count(group)
    return f"lateness: {ok} of {count} answered 2xx ({total} requests) before the deadline"


# d. memory -------------------------------------------------------------------------------------


async def memory(ctx: Context) -> ScenarioResult:
    """Worker RSS idle, then with N deliveries pending hours ahead; Celery's with ETA tasks."""
    result = ScenarioResult("memory")
    plan = ctx.plan

    async def on(factory: DeploymentFactory) -> dict[str, Any]:
        async with factory.fresh("memory") as deployment:
            group = group_name("mem", factory.kind)
            targets = await create_endpoints(
                deployment, ctx.receiver, group=group, count=plan.endpoints
            )
            async with deployment.hookline(workers=1) as hookline:
                pid = hookline.workers[0].pid
                await warm_up(ctx, deployment, hookline)
                idle = await _idle_sample(pid, plan.memory_idle_s)
                started = time.monotonic()
                await insert_backlog(
                    deployment,
                    targets,
                    count=plan.memory_count,
                    due_at=utcnow() + FAR_AHEAD,
                    fanout=True,
                    queue=True,
                )
                load_s = time.monotonic() - started
                depth = await deployment.runtime.queue.depth()
                pending = await deployment.count(
                    "SELECT count(*) FROM deliveries WHERE state = 'pending'"
                )
                loaded = await _idle_sample(pid, plan.memory_settle_s)
                if not hookline.workers[0].running:
                    raise BenchFailure(f"the worker exited: {hookline.workers[0].describe()}")
        return {
            "pending": pending,
            "queue_depth": depth,
            "load_s": round(load_s, 1),
            "load_per_s": rounded(plan.memory_count / load_s if load_s else None),
            "rss_idle_mib": idle["rss_mib"],
            "rss_pending_mib": loaded["rss_mib"],
            "rss_delta_mib": round(loaded["rss_mib"] - idle["rss_mib"], 1),
            "peak_rss_mib": loaded["peak_mib"],
            "idle_cpu_percent": idle["cpu_percent"],
            "pending_cpu_percent": loaded["cpu_percent"],
        }

    await _for_each_kind(ctx, result, on)
    await result.capture("celery", lambda: _celery_memory(ctx), peer=True)
    return result


async def _idle_sample(pid: int, wait_s: float) -> dict[str, float]:
    """RSS after ``wait_s`` of the process polling, and its CPU share over that time."""
    cpu_before, started = processes.cpu_s(pid), time.monotonic()
    await asyncio.sleep(wait_s)
    cpu_s, elapsed = processes.cpu_s(pid) - cpu_before, time.monotonic() - started
    return {
        "rss_mib": round(processes.rss_kib(pid) / 1024, 1),
        "peak_mib": round(processes.rss_kib(pid, "VmHWM") / 1024, 1),
        "cpu_percent": round(cpu_s / elapsed * 100, 1),
    }


async def _celery_memory(ctx: Context) -> dict[str, Any]:
    plan = ctx.plan
    count = plan.celery_eta_count
    queue = "eta"
    async with celery_worker(
        ctx.receiver, run_dir=ctx.run_dir, redis_url=ctx.redis_url, queues=[queue], name="memory"
    ) as worker:
        await asyncio.sleep(plan.memory_idle_s)
        idle = worker.rss_kib()
        group = group_name("celmem", "cel")
        await worker.send(
            queue,
            lambda i: ctx.receiver.url("ok", group),
            count,
            countdown_s=FAR_AHEAD.total_seconds(),
        )

        async def all_reserved() -> bool:
            return await worker.queue_length(queue) == 0

        await processes.wait_for(
            all_reserved,
            timeout_s=plan.phase_timeout_s(count),
            what="celery reserving its ETA tasks",
            children=[worker.child],
        )
        await asyncio.sleep(plan.memory_settle_s)
        pending = worker.rss_kib()
    delta_kib = pending["main"] - idle["main"]
    return {
        "eta_tasks": count,
        "rss_idle_mib": round(idle["main"] / 1024, 1),
        "rss_pending_mib": round(pending["main"] / 1024, 1),
        "rss_delta_mib": round(delta_kib / 1024, 1),
        "kib_per_task": round(delta_kib / count, 2),
        "rss_all_processes_idle_mib": round(idle["all"] / 1024, 1),
        "rss_all_processes_pending_mib": round(pending["all"] / 1024, 1),
    }


SCENARIOS: Final[dict[str, Callable[[Context], Awaitable[ScenarioResult]]]] = {
    "drain": drain,
    "retry": retry_heavy,
    "ingest": ingest,
    "scaleout": scale_out,
    "isolation": isolation,
    "lateness": lateness,
    "memory": memory,
}
"""Every scenario, in the order a run takes them (the issue's priority order)."""
