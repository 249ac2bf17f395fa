"""Issue 8, "one bad row must never stop the others": deliver through crashes and bad answers.

Two scenarios, each on loopback with servers of its own:

- distributed: a private PostgreSQL and a private Redis (free ports, killed and restarted by the
  test), ``hookline migrate``, one ``hookline api`` and two ``hookline worker`` processes;
- embedded: ``hookline serve`` on SQLite (its own data directory), SIGKILLed and started again
  on the same data directory and port.

Publishers POST events over HTTP with idempotency keys (a 503 waits ``Retry-After``, a refused
connection a moment, then the same key is sent again) while a seeded fault plan SIGKILLs workers,
restarts Redis empty, restarts PostgreSQL (``-m fast``) or SIGKILLs ``serve``. The receiver
answers each attempt with 5xx, 429, timeouts, resets, slow bodies, NUL bytes or huge bodies, but
always 200 from attempt 3 on, so every delivery can succeed. At the end, with a bounded wait:
every accepted event reached every receiver with a 2xx; every delivery succeeded, at the attempt
the receiver acknowledged; no two attempts of one delivery overlapped unless a crash explains it;
duplicates are counted (allowed only after a crash); hookline never answered a 5xx other than 503.

Quick by default (a few hundred events, a few faults per scenario); ``--chaos-long`` (or
``HOOKLINE_CHAOS=long``) runs >= 10,000 events per scenario with more faults. The summary is
printed, written to ``tmp_path/chaos-<scenario>.json`` and, with ``HOOKLINE_CHAOS_REPORT=<path>``,
to that file; ``HOOKLINE_CHAOS_ARTIFACTS=<dir>`` keeps every process log, the receiver's record
of each request (``receiver.jsonl``) and the final deliveries there, per scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import pytest

from tests.chaos.harness import (
    ApiClient,
    ChaosProfile,
    ChaosReceiver,
    FaultInjector,
    HooklineProcess,
    PublishState,
    Verdict,
    base_env,
    free_port,
    log_evidence,
    publish_all,
    report_text,
    run_migrate,
    settings_env,
    verify,
    wait_settled,
    warm_bytecode,
)
from tests.fixtures.processes import PYCACHE_DIR
from tests.fixtures.servers import PostgresServer, RedisServer

_LONG_RUN: Final = "--chaos-long" in sys.argv or os.environ.get("HOOKLINE_CHAOS") == "long"
# The quick form takes about a minute; 900 s leaves its start-up, publish and settle deadlines
# (START_TIMEOUT_S, publish_timeout_s, settle_timeout_s: 180 s each) room to fire first.
pytestmark = [pytest.mark.chaos, pytest.mark.timeout(3600 if _LONG_RUN else 900)]

WEBHOOK_PATHS: Final = ("/hooks/a", "/hooks/b")


@pytest.fixture(scope="session")
def chaos_pycache() -> Path:
    """The bytecode directory every hookline test process shares (compiled once)."""
    warm_bytecode(PYCACHE_DIR)
    return PYCACHE_DIR


async def _stop_quietly(stoppers: Sequence[Callable[[], Any]]) -> list[str]:
    """Run every stopper even when some fail; what failed."""
    failures: list[str] = []
    for stop in stoppers:
        try:
            result = stop()
            if asyncio.iscoroutine(result):
                await result
        except Exception as exc:
            failures.append(repr(exc))
    return failures


def _finish(
    verdict: Verdict,
    *,
    name: str,
    record: Callable[[str, dict[str, Any]], Path],
    processes: Sequence[HooklineProcess],
    extra_logs: str = "",
) -> None:
    path = record(name, verdict.summary)
    keep = os.environ.get("HOOKLINE_CHAOS_ARTIFACTS")
    if keep:  # logs, receiver.jsonl, deliveries.json: the evidence, beyond pytest's rotation
        shutil.copytree(path.parent, Path(keep) / name, dirs_exist_ok=True)
    print(f"\n=== chaos {name} ({verdict.summary['profile']}) -> {path}")
    print(report_text(verdict.summary))
    if verdict.problems:
        print("problems:\n- " + "\n- ".join(verdict.problems))
    if verdict.problems:
        tails = "\n".join(p.describe(15) for p in processes[-4:])
        pytest.fail(
            f"chaos {name}: {len(verdict.problems)} problems (logs, receiver.jsonl and "
            f"deliveries.json in {path.parent})\n- "
            + "\n- ".join(verdict.problems)
            + f"\n\nsummary:\n{report_text(verdict.summary)}"
            + f"\n\nerror log lines:\n{log_evidence(processes, limit=5)}{extra_logs}"
            + f"\n\nlog tails:\n{tails}",
            pytrace=False,
        )


async def test_distributed_api_and_workers_survive_chaos(
    tmp_path: Path,
    chaos_profile: ChaosProfile,
    chaos_pycache: Path,
    record_chaos_report: Callable[[str, dict[str, Any]], Path],
) -> None:
    profile = chaos_profile
    rng = random.Random(f"distributed:{profile.seed}")
    started = time.monotonic()
    receiver = ChaosReceiver(seed=profile.seed)
    receiver.start()
    pg = PostgresServer(tmp_path)
    redis = RedisServer(tmp_path)
    processes: list[HooklineProcess] = []
    live_workers: list[HooklineProcess] = []
    api: ApiClient | None = None
    try:
        await asyncio.to_thread(pg.start)
        await asyncio.to_thread(redis.start)
        env = base_env(chaos_pycache) | settings_env(
            tmp_path / "data",
            DATABASE_URL=pg.url,
            REDIS_URL=redis.url,
            HOOKLINE_QUEUE_BACKEND="redis",
            DATABASE_POOL_SIZE="10",
        )
        await asyncio.to_thread(run_migrate, env, tmp_path)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        api_process = HooklineProcess(
            "api", ["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path
        )
        processes.append(api_process)
        api_process.start()

        def new_worker() -> HooklineProcess:
            worker = HooklineProcess(f"worker{len(processes)}", ["worker"], env, tmp_path)
            processes.append(worker)
            live_workers.append(worker)
            worker.start()
            return worker

        first_workers = [new_worker(), new_worker()]
        await api_process.wait_http_ready(base_url)
        for worker in first_workers:
            await worker.wait_log("worker.started")

        api = ApiClient(base_url)
        phases = {"start_s": time.monotonic() - started}
        webhooks = {
            path: await api.create_webhook(receiver.url_for(path)) for path in WEBHOOK_PATHS
        }
        state = PublishState(total=profile.events)

        async def kill_worker() -> str:
            victim = rng.choice([w for w in live_workers if w.running])
            pid = victim.popen.pid if victim.popen else None
            injector.crash_times.append(await asyncio.to_thread(victim.kill))
            live_workers.remove(victim)
            replacement = new_worker()
            return f"SIGKILL {victim.name} (pid {pid}); started {replacement.name}"

        async def restart_redis() -> str:
            await asyncio.to_thread(redis.restart_empty)
            return f"redis on {redis.port} restarted empty"

        async def restart_postgres() -> str:
            begun = time.monotonic()
            await asyncio.to_thread(pg.restart, "fast")
            return f"pg_ctl restart -m fast equivalent, down/up in {time.monotonic() - begun:.1f} s"

        plan = FaultInjector.make_plan(
            rng,
            {
                "kill_worker": profile.worker_kills,
                "restart_redis_empty": profile.redis_restarts,
                "restart_postgres": profile.postgres_restarts,
            },
            profile.events,
        )
        injector = FaultInjector(
            plan,
            {
                "kill_worker": kill_worker,
                "restart_redis_empty": restart_redis,
                "restart_postgres": restart_postgres,
            },
            state,
        )
        publish_began = time.monotonic()
        await asyncio.gather(
            publish_all(api, state, prefix=f"dist-{profile.seed}", profile=profile),
            injector.run(),
        )
        phases["publish_s"] = time.monotonic() - publish_began
        settle_began = time.monotonic()
        settled = await wait_settled(
            api,
            list(webhooks.values()),
            expected_each=len(state.accepted),
            timeout_s=profile.settle_timeout_s,
            processes=lambda: [api_process, *live_workers],
        )
        phases["settle_s"] = time.monotonic() - settle_began
        deliveries = (  # a dead API answers nothing; verify() reports the death
            [d for wid in webhooks.values() for d in await api.deliveries(wid)]
            if api_process.running
            else []
        )
        receiver.dump(tmp_path / "receiver.jsonl")
        (tmp_path / "deliveries.json").write_text(json.dumps(deliveries))
        verdict = verify(
            scenario="distributed",
            profile=profile,
            state=state,
            webhooks=webhooks,
            deliveries=deliveries,
            records=receiver.records,
            faults=injector,
            api=api,
            processes=[api_process, *live_workers],
            duration_s=time.monotonic() - started,
            phases=phases,
            settled=settled,
        )
    finally:
        failures = await _stop_quietly(
            [
                *([api.close] if api is not None else []),
                *(p.stop for p in reversed(processes)),
                receiver.stop,
                redis.close,
                pg.close,
            ]
        )
    assert not failures, f"cleanup failed: {failures}"
    pg_log = ""
    with contextlib.suppress(OSError):
        pg_log = "\n--- postgres log tail:\n" + "\n".join(
            pg.log_path.read_text(errors="replace").splitlines()[-15:]
        )
    _finish(
        verdict,
        name="distributed",
        record=record_chaos_report,
        processes=processes,
        extra_logs=pg_log,
    )


async def test_embedded_serve_survives_sigkill(
    tmp_path: Path,
    chaos_profile: ChaosProfile,
    chaos_pycache: Path,
    record_chaos_report: Callable[[str, dict[str, Any]], Path],
) -> None:
    profile = chaos_profile
    rng = random.Random(f"embedded:{profile.seed}")
    started = time.monotonic()
    receiver = ChaosReceiver(seed=profile.seed)
    receiver.start()
    serve: HooklineProcess | None = None
    api: ApiClient | None = None
    try:
        env = base_env(chaos_pycache) | settings_env(tmp_path / "data")
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        serve = HooklineProcess(
            "serve", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path
        )
        serve.start()
        await serve.wait_http_ready(base_url)
        api = ApiClient(base_url)
        phases = {"start_s": time.monotonic() - started}
        webhooks = {
            path: await api.create_webhook(receiver.url_for(path)) for path in WEBHOOK_PATHS
        }
        state = PublishState(total=profile.events)
        running: HooklineProcess = serve

        async def kill_serve() -> str:
            pid = running.popen.pid if running.popen else None
            injector.crash_times.append(await asyncio.to_thread(running.kill))
            running.start()
            await running.wait_http_ready(base_url)
            return f"SIGKILL serve (pid {pid}); generation {running.generation} ready"

        plan = FaultInjector.make_plan(rng, {"kill_serve": profile.serve_kills}, profile.events)
        injector = FaultInjector(plan, {"kill_serve": kill_serve}, state)
        publish_began = time.monotonic()
        await asyncio.gather(
            publish_all(api, state, prefix=f"serve-{profile.seed}", profile=profile),
            injector.run(),
        )
        phases["publish_s"] = time.monotonic() - publish_began
        settle_began = time.monotonic()
        settled = await wait_settled(
            api,
            list(webhooks.values()),
            expected_each=len(state.accepted),
            timeout_s=profile.settle_timeout_s,
            processes=lambda: [running],
        )
        phases["settle_s"] = time.monotonic() - settle_began
        deliveries = (  # a dead serve answers nothing; verify() reports the death
            [d for wid in webhooks.values() for d in await api.deliveries(wid)]
            if running.running
            else []
        )
        receiver.dump(tmp_path / "receiver.jsonl")
        (tmp_path / "deliveries.json").write_text(json.dumps(deliveries))
        verdict = verify(
            scenario="embedded",
            profile=profile,
            state=state,
            webhooks=webhooks,
            deliveries=deliveries,
            records=receiver.records,
            faults=injector,
            api=api,
            processes=[running],
            duration_s=time.monotonic() - started,
            phases=phases,
            settled=settled,
        )
    finally:
        failures = await _stop_quietly(
            [
                *([api.close] if api is not None else []),
                *([serve.stop] if serve is not None else []),
                receiver.stop,
            ]
        )
    assert not failures, f"cleanup failed: {failures}"
    _finish(
        verdict, name="embedded", record=record_chaos_report, processes=[serve] if serve else []
    )
