"""``bench/run --quick`` as CI runs it: every scenario on both deployments, figures in the JSON.

The harness is a subprocess, as a person runs it. It needs PostgreSQL and Redis like the rest of
the suite: without them it exits 1 and this test fails (it never skips). Nothing is judged in a
quick run; what is checked is that the harness worked (exit 0: every exactly-once, database and
deadline check inside it passed), that each scenario left numbers where the table reads them,
and that it removed what it created.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.fixtures.processes import PYCACHE_DIR
from tests.fixtures.services import TEST_DATABASE_URL, TEST_REDIS_URL

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parents[2]
BENCH_RUN = ROOT / "bench" / "run"
RUN_TIMEOUT_S = 420.0
"""The harness stops itself after 300 s (a quick run takes about a minute); this is for a
harness that hangs anyway."""
STOP_TIMEOUT_S = 120.0
"""After SIGTERM the harness stops its processes and drops its databases before it exits."""
DEPLOYMENTS = ("postgres-redis", "sqlite")

NUMERIC_FIGURES: dict[str, list[tuple[str, ...]]] = {
    "drain": [
        ("deployments", "*", "rate_per_s"),
        ("deployments", "*", "cpu_us_per_delivery"),
        ("deployments", "*", "latency", "p99_ms"),
        ("peers", "celery", "rate_per_s"),
        ("peers", "celery", "cpu_us_per_delivery"),
        ("peers", "bare_client", "rate_per_s"),
    ],
    "retry": [
        ("deployments", "*", "rate_per_s"),
        ("deployments", "*", "cpu_us_per_delivery"),
        ("peers", "celery", "rate_per_s"),
    ],
    "ingest": [
        ("deployments", "*", "durable_per_s"),
        ("deployments", "*", "p99_ms"),
        ("deployments", "*", "server_cpu_us_per_request"),
        ("deployments", "*", "status_503"),
    ],
    "scaleout": [
        ("deployments", "postgres-redis", "runs", "1", "rate_per_s"),
        ("deployments", "postgres-redis", "runs", "2", "rate_per_s"),
        ("deployments", "postgres-redis", "speedup", "2"),
    ],
    "isolation": [
        ("deployments", "*", "alone", "p99_ms"),
        ("deployments", "*", "beside_timing_out", "p99_ms"),
    ],
    "lateness": [("deployments", "*", "p50_ms"), ("deployments", "*", "p99_ms")],
    "memory": [
        ("deployments", "*", "rss_idle_mib"),
        ("deployments", "*", "rss_pending_mib"),
        ("peers", "celery", "rss_pending_mib"),
    ],
}
"""Where each scenario's figures live in the report (``*``: every deployment)."""


def _run_bench(output: Path) -> subprocess.CompletedProcess[str]:
    """``bench/run --quick`` to completion; on a hang, SIGTERM (it cleans up), then SIGKILL."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE_DIR)
    command = [
        str(BENCH_RUN),
        "--quick",
        "--deployment",
        "both",
        "--output",
        str(output),
        "--pg-admin-url",
        TEST_DATABASE_URL,
        "--redis-url",
        TEST_REDIS_URL,
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            try:
                stdout, stderr = process.communicate(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                stdout, stderr = process.communicate()
            pytest.fail(f"bench/run --quick ran past {RUN_TIMEOUT_S:g} s:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _figures(report: dict[str, Any], path: tuple[str, ...]) -> list[tuple[str, Any]]:
    """Every value at ``path`` (``*`` expands to each deployment), with where it was."""
    found: list[tuple[str, Any]] = [("", report)]
    for part in path:
        step: list[tuple[str, Any]] = []
        for where, node in found:
            keys = DEPLOYMENTS if part == "*" else (part,)
            for key in keys:
                value = node.get(key) if isinstance(node, dict) else None
                step.append((f"{where}.{key}", value))
        found = step
    return found


async def _leftovers(resources: dict[str, dict[str, str]]) -> list[str]:
    """Databases and Redis keys of this run that still exist."""
    left: list[str] = []
    conn = await asyncpg.connect(TEST_DATABASE_URL, timeout=10)
    try:
        for names in resources.values():
            pattern = names["databases"].replace("*", "%")
            rows = await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", pattern
            )
            left += [row["datname"] for row in rows]
    finally:
        await conn.close()
    client = aioredis.from_url(TEST_REDIS_URL)
    try:
        for names in resources.values():
            left += [k.decode() async for k in client.scan_iter(match=names["redis_prefix"] + "*")]
    finally:
        await client.aclose()
    return left


@pytest.mark.timeout(RUN_TIMEOUT_S + STOP_TIMEOUT_S + 60)
def test_bench_quick_exercises_every_scenario_on_both_deployments(tmp_path: Path) -> None:
    # Given PostgreSQL and Redis (as for every test) and a report path of this test's own
    output = tmp_path / "quick.json"

    # When the harness runs its quick plan on both deployments
    finished = _run_bench(output)

    # Then it worked: exit 0, one table on stdout, a report naming the run
    assert finished.returncode == 0, f"exit {finished.returncode}:\n{finished.stderr[-4000:]}"
    assert "scenario" in finished.stdout
    report = json.loads(output.read_text())
    meta = report["meta"]
    assert meta["quick"] is True
    assert meta["commit"]
    assert meta["machine"]["cores"] >= 1
    assert report["ok"] is True

    # and every scenario has its figures as numbers, nothing failed and nothing was judged
    assert set(report["scenarios"]) == set(NUMERIC_FIGURES)
    for name, paths in NUMERIC_FIGURES.items():
        scenario = report["scenarios"][name]
        assert scenario["errors"] == [], f"{name}: {scenario['errors']}"
        for path in paths:
            for where, value in _figures(scenario, path):
                assert isinstance(value, int | float), f"{name}{where} is {value!r}"
    assert report["rows"]
    assert report["targets"]
    assert all(check["met"] is None for check in report["targets"])

    # and what it created is gone: its databases and its Redis keys
    assert asyncio.run(_leftovers(meta["resources"])) == []
