"""Every dashboard panel and every alert rule, evaluated by a real Prometheus scraping a real
hookline that has delivered, retried, honoured a Retry-After, dead-lettered and disabled.

``hookline serve`` (embedded SQLite) delivers one event to five loopback webhooks: one answers 200,
one 503, 503, 200, one 429 with ``Retry-After: 2`` then 200, one always 500 (one retry allowed,
then a dead letter) and one 410 (the endpoint is disabled). A Prometheus started here (Debian's
binary, loopback, its own storage, scrape_interval 1 s, alerts.yml loaded) scrapes hookline's
``/metrics``. Then every ``targets[].expr`` of config/grafana/dashboards/webhook-retries.json
(Grafana's interval macros replaced by ``1m``) must come back from ``/api/v1/query`` with status
success and at least one sample, and so must every vector selector in it on its own (an
``or vector(0)`` cannot hide a misspelt label value); every alert rule's expression must evaluate,
every metric it reads must have data, Prometheus must report every rule healthy, and it must
raise the alerts the scenario calls for (endpoint disabled, dead letters growing).

prometheus missing is a failure (``scripts/services`` installs it), never a skip.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.api_server import (
    STARTUP_TIMEOUT_S,
    HooklineServer,
    free_port,
    running_hookline,
)
from tests.fixtures.processes import STOP_TIMEOUT_S, Child, child_process, wait_http_ok
from tests.receiver import Receiver
from tests.unit.test_alert_rules import ALERTS, alert_rules
from tests.unit.test_dashboard import (
    PanelQuery,
    load_dashboard,
    metric_names,
    panel_queries,
    selectors,
    with_macros,
)

pytestmark = pytest.mark.e2e

INTERVAL = "1m"
"""What Grafana's ``$__rate_interval``, ``$__interval`` and ``$__range`` become (60 scrapes)."""
SCRAPE_INTERVAL = "1s"
DELIVERY_TIMEOUT_S = 120.0
"""Longest the five deliveries may take to settle (a few seconds of retry delays; a loaded box)."""
DATA_TIMEOUT_S = 240.0
"""Longest Prometheus may take to have every query answered once hookline is done (rates need
two scrapes after the last change; a loaded 2-core machine)."""
POLL_S = 0.5
QUERY_TIMEOUT_S = 30.0

RECEIVER_PATHS = {
    "ok": [200],
    "flaky": [503, 503, 200],
    "throttled": [429, 200],
    "down": [500],
    "gone": [410],
}
"""What each webhook's receiver path answers, in turn (the last one repeats)."""

# Retries one second apart (the minimum base_delay), within a one-minute window.
QUICK = {"base_delay": 1, "max_delay": 1, "jitter": "none", "max_retry_duration": 60}
RETRY_CONFIGS: dict[str, dict[str, Any]] = {
    "flaky": {**QUICK, "max_retries": 2},
    # Retry-After: 2 is longer than the computed 1 s delay, so it sets the delay (capped at 2).
    "throttled": {**QUICK, "max_retries": 1, "max_delay": 2},
    "down": {**QUICK, "max_retries": 1},
    "gone": QUICK,
}
FINAL_STATES = {
    "ok": "succeeded",
    "flaky": "succeeded",
    "throttled": "succeeded",
    "down": "failed",
    "gone": "failed",
}
SCENARIO_TOTALS = {
    # What hookline has counted once the scenario is done (PromQL -> least value).
    'sum(webhook_delivery_total{outcome="delivered"})': 3,
    "sum(webhook_retry_total)": 4,  # flaky 2, throttled 1, down 1
    "sum(webhook_dead_letter_total)": 2,  # down (exhausted), gone (endpoint_gone)
    'sum(webhook_endpoint_disabled_total{reason="gone"})': 1,
    "sum(webhook_events_published_total)": 1,
}


EXPECTED_ALERTS = {
    # (alertname, reason) -> the states that count: the 410 disabled an endpoint (for: 0m), and
    # dead letters of two reasons appeared (for: 5m, so pending is all this test waits for).
    ("HookLineEndpointDisabled", "gone"): {"firing"},
    ("HookLineDeadLettersGrowing", "exhausted"): {"pending", "firing"},
    ("HookLineDeadLettersGrowing", "endpoint_gone"): {"pending", "firing"},
}
"""Alerts Prometheus must raise from the scenario. A labelled counter whose series first appears
at 1 (prometheus_client creates a label's child on its first ``inc``) has no increase for
Prometheus: these alerts fire only if hookline exports every reason at 0 from the start."""


@dataclass(frozen=True)
class RunningPrometheus:
    base_url: str
    child: Child


@contextmanager
def running_prometheus(tmp_path: Path, *, target: str) -> Iterator[RunningPrometheus]:
    """Debian's ``prometheus`` on a free loopback port, scraping ``target`` every second and
    evaluating alerts.yml; stopped (SIGTERM, then SIGKILL) on every way out."""
    binary = shutil.which("prometheus")
    assert binary, (
        "prometheus is missing: scripts/services installs it (apt-get install prometheus)"
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {
                    "scrape_interval": SCRAPE_INTERVAL,
                    "scrape_timeout": SCRAPE_INTERVAL,
                    "evaluation_interval": SCRAPE_INTERVAL,
                },
                "rule_files": [str(ALERTS)],
                "scrape_configs": [
                    {
                        "job_name": "hookline",
                        "metrics_path": "/metrics",
                        "static_configs": [{"targets": [target]}],
                    }
                ],
            }
        )
    )
    port = free_port()
    with child_process(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        log_path=tmp_path / "prometheus.log",
        cwd=tmp_path,
        name="prometheus",
        stop_timeout_s=STOP_TIMEOUT_S,
    ) as child:
        base_url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{base_url}/-/ready", child=child, timeout_s=STARTUP_TIMEOUT_S)
        yield RunningPrometheus(base_url, child)


async def poll(
    check: Callable[[], Awaitable[str | None]],
    *,
    what: str,
    timeout_s: float,
    context: Callable[[], str],
) -> None:
    """Await ``check`` until it returns None; a string is what it saw instead. Fails after
    ``timeout_s`` with the last thing seen and ``context()``."""
    deadline = time.monotonic() + timeout_s
    while (seen := await check()) is not None:
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"{what}: not within {timeout_s} s; last seen:\n{seen}\n{context()}"
            )
        await asyncio.sleep(POLL_S)


async def query(prometheus: httpx.AsyncClient, expr: str) -> dict[str, Any]:
    """``/api/v1/query`` at the current time; the whole answer (status, data or error)."""
    response = await prometheus.get("/api/v1/query", params={"query": expr})
    answer: dict[str, Any] = response.json()
    return answer


def _samples(answer: dict[str, Any]) -> list[Any]:
    if answer.get("status") != "success":
        return []
    data = answer["data"]
    result = data["result"]
    if data["resultType"] in ("scalar", "string"):
        return [result]
    assert isinstance(result, list)
    return result


async def _publish_scenario(api: httpx.AsyncClient, receiver: Receiver) -> dict[str, str]:
    """Create the five webhooks, publish one event; the delivery id of each webhook's name."""
    webhook_names: dict[str, str] = {}
    for name, statuses in RECEIVER_PATHS.items():
        headers = {"Retry-After": "2"} if name == "throttled" else None
        receiver.on(f"/{name}", statuses=statuses, headers=headers)
        body: dict[str, Any] = {"url": receiver.url_for(f"/{name}"), "description": name}
        if name in RETRY_CONFIGS:
            body["retry_config"] = RETRY_CONFIGS[name]
        created = await api.post("/webhooks", json=body)
        assert created.status_code == 201, created.text
        webhook_names[created.json()["id"]] = name
    published = await api.post(
        "/events", json={"event_type": "order.created", "payload": {"order": 11}}
    )
    assert published.status_code == 202, published.text
    deliveries = {webhook_names[d["webhook_id"]]: d["id"] for d in published.json()["deliveries"]}
    assert set(deliveries) == set(RECEIVER_PATHS)
    return deliveries


@pytest.mark.timeout(
    2 * STARTUP_TIMEOUT_S + DELIVERY_TIMEOUT_S + 3 * DATA_TIMEOUT_S + 2 * STOP_TIMEOUT_S + 60
)
async def test_every_panel_and_alert_rule_evaluates_on_a_real_hookline(tmp_path: Path) -> None:
    queries = panel_queries(load_dashboard())
    rules = alert_rules()
    env = {"ALLOWED_NETWORKS": "127.0.0.1/32", "RETRY_WORKER_POLL_INTERVAL": "0.1"}
    with (
        running_hookline(tmp_path / "hookline", env=env) as server,
        running_prometheus(tmp_path, target=server.base_url.removeprefix("http://")) as prom,
    ):
        async with (
            httpx.AsyncClient(base_url=prom.base_url, timeout=QUERY_TIMEOUT_S) as prometheus,
            httpx.AsyncClient(base_url=server.base_url, headers=server.auth, timeout=60) as api,
        ):

            def context() -> str:
                return f"{_log_tail(server)}\n{prom.child.describe(tail_lines=20)}"

            # Given Prometheus scraping hookline
            await poll(
                lambda: _target_up(prometheus),
                what="hookline's /metrics up in Prometheus",
                timeout_s=STARTUP_TIMEOUT_S,
                context=context,
            )

            # When hookline delivers, retries, honours a Retry-After, dead-letters and disables
            async with Receiver() as receiver:
                deliveries = await _publish_scenario(api, receiver)
                await poll(
                    lambda: _settled(api, deliveries),
                    what="every delivery in its final state",
                    timeout_s=DELIVERY_TIMEOUT_S,
                    context=context,
                )
            assert len(receiver.requests_to("/flaky")) == 3
            first, second = receiver.requests_to("/throttled")
            # The Retry-After (2 s), not the 1 s backoff, set the delay.
            assert second.received_monotonic_s - first.received_monotonic_s >= 1.9

            # Then Prometheus sees what hookline counted ...
            await poll(
                lambda: _totals_reached(prometheus),
                what="the scenario's counters in Prometheus",
                timeout_s=DATA_TIMEOUT_S,
                context=context,
            )
            # ... every panel's query returns data, and every selector in it does too
            await poll(
                lambda: _empty_panel_queries(prometheus, queries),
                what="every dashboard query returning data",
                timeout_s=DATA_TIMEOUT_S,
                context=context,
            )
            # ... every alert rule evaluates on metrics that exist, healthy in Prometheus
            await poll(
                lambda: _alert_rule_problems(prometheus, rules),
                what="every alert rule evaluating on existing metrics",
                timeout_s=DATA_TIMEOUT_S,
                context=context,
            )
            # ... and Prometheus raised the alerts this scenario must raise
            await poll(
                lambda: _missing_alerts(prometheus),
                what="the scenario's alerts raised by Prometheus",
                timeout_s=DATA_TIMEOUT_S,
                context=context,
            )


def _log_tail(server: HooklineServer) -> str:
    return "hookline log tail:\n" + "\n".join(server.log().splitlines()[-30:])


async def _target_up(prometheus: httpx.AsyncClient) -> str | None:
    try:
        answer = (await prometheus.get("/api/v1/targets", params={"state": "active"})).json()
    except httpx.TransportError as exc:
        return f"{type(exc).__name__}: {exc}"
    targets = answer["data"]["activeTargets"]
    if [t["health"] for t in targets] == ["up"]:
        return None
    return str([(t["scrapeUrl"], t["health"], t["lastError"]) for t in targets])


async def _settled(api: httpx.AsyncClient, deliveries: dict[str, str]) -> str | None:
    states = {}
    for name, delivery_id in deliveries.items():
        states[name] = (await api.get(f"/deliveries/{delivery_id}")).json()["state"]
    if states == FINAL_STATES:
        return None
    return f"states {states}, expected {FINAL_STATES}"


async def _totals_reached(prometheus: httpx.AsyncClient) -> str | None:
    short = []
    for expr, least in SCENARIO_TOTALS.items():
        samples = _samples(await query(prometheus, expr))
        value = float(samples[0]["value"][1]) if samples else None
        if value is None or value < least:
            short.append(f"{expr} = {value}, expected >= {least}")
    return "\n".join(short) or None


async def _empty_panel_queries(
    prometheus: httpx.AsyncClient, queries: list[PanelQuery]
) -> str | None:
    problems = []
    for panel_query in queries:
        expr = with_macros(panel_query.expr, INTERVAL)
        answer = await query(prometheus, expr)
        if answer.get("status") != "success":
            problems.append(f"{panel_query.describe()}\n    error: {answer.get('error')}")
            continue
        if not _samples(answer):
            problems.append(f"{panel_query.describe()}\n    returned no data")
        empty = [s for s in sorted(selectors(expr)) if not _samples(await query(prometheus, s))]
        problems.extend(f"{panel_query.describe()}\n    selector {s} has no data" for s in empty)
    return "\n".join(problems) or None


async def _alert_rule_problems(
    prometheus: httpx.AsyncClient, rules: list[dict[str, Any]]
) -> str | None:
    problems = []
    for rule in rules:
        name, expr = rule["alert"], rule["expr"]
        answer = await query(prometheus, expr)
        if answer.get("status") != "success":  # an empty result is fine: it is not firing
            problems.append(f"{name}: {answer.get('errorType')}: {answer.get('error')}")
        reads = sorted(metric_names(expr) | selectors(expr))
        empty = [s for s in reads if not _samples(await query(prometheus, s))]
        problems.extend(f"{name}: {s} has no data" for s in empty)
    loaded = (await prometheus.get("/api/v1/rules", params={"type": "alert"})).json()
    health = {
        rule["name"]: (rule["health"], rule.get("lastError", ""))
        for group in loaded["data"]["groups"]
        for rule in group["rules"]
    }
    for rule in rules:
        state = health.get(rule["alert"])
        if state is None or state[0] != "ok":
            problems.append(f"{rule['alert']}: Prometheus reports {state or 'no such rule'}")
    return "\n".join(problems) or None


async def _missing_alerts(prometheus: httpx.AsyncClient) -> str | None:
    answer = (await prometheus.get("/api/v1/alerts")).json()
    raised = {
        (alert["labels"]["alertname"], alert["labels"].get("reason")): alert["state"]
        for alert in answer["data"]["alerts"]
    }
    missing = {
        key: raised.get(key)
        for key, states in EXPECTED_ALERTS.items()
        if raised.get(key) not in states
    }
    if not missing:
        return None
    return f"alerts not raised (alert, reason) -> state: {missing}; raised: {raised}"
