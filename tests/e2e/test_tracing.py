"""Traces across processes: ``hookline api`` and ``hookline worker`` (PostgreSQL + Redis) export
OTLP/HTTP to a loopback collector, and a delivery answered 503, 503, 200 forms one trace with the
request that published it.

The publisher sends its own ``traceparent``; the API's server span, the publish span and, seconds
later and in the worker process, each attempt span are in that trace, each attempt a child of the
publish span (its context was stored with the event). The subscriber saw each attempt's own
``traceparent``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hookline.observability.tracing import ATTEMPT_SPAN, PUBLISH_SPAN
from tests.e2e.api_server import API_TOKEN, free_port
from tests.fixtures.otlp import ExportedSpan, OtlpReceiver
from tests.fixtures.processes import (
    HOOKLINE,
    STARTUP_TIMEOUT_S,
    STOP_TIMEOUT_S,
    Child,
    child_process,
    hookline_env,
    wait_http_ok,
)
from tests.receiver import Receiver

pytestmark = pytest.mark.e2e

WAIT_S = 120.0
"""Longest each wait on the processes takes (a loaded machine)."""
QUICK_RETRIES = {
    "max_retries": 3,
    "base_delay": 1,
    "max_delay": 1,
    "jitter": "none",
    "max_retry_duration": 120,
}
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER
ERROR = 2  # Status.StatusCode.STATUS_CODE_ERROR


@pytest.fixture
def collector() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def processes(
    tmp_path: Path,
    collector: OtlpReceiver,
    migrated_pg_url: str,
    pg_engine: object,  # every table emptied
    redis_url: str,
    redis_prefix: str,
) -> Iterator[tuple[str, Child, Child]]:
    """``hookline api`` and ``hookline worker``, tracing to ``collector``; yields the API's URL."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HOOKLINE_", "DATABASE_", "REDIS_", "OTEL_"))
    }
    clean |= {
        "HOOKLINE_DATA_DIR": str(tmp_path / "data"),
        "HOOKLINE_API_TOKENS": API_TOKEN,
        "DATABASE_URL": migrated_pg_url,
        "REDIS_URL": redis_url,
        "HOOKLINE_REDIS_PREFIX": redis_prefix,
        "ALLOWED_NETWORKS": "127.0.0.1/32",
        "RETRY_WORKER_POLL_INTERVAL": "0.1",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within 0.2 s instead of 5 s
    }
    port = free_port()
    with (
        child_process(
            [HOOKLINE, "api", "--host", "127.0.0.1", "--port", str(port)],
            log_path=tmp_path / "api.log",
            cwd=tmp_path,
            env=hookline_env(clean | {"OTEL_SERVICE_NAME": "hookline-api"}),
            name="hookline api",
            stop_timeout_s=STOP_TIMEOUT_S,
        ) as api,
        child_process(
            [HOOKLINE, "worker"],
            log_path=tmp_path / "worker.log",
            cwd=tmp_path,
            env=hookline_env(clean | {"OTEL_SERVICE_NAME": "hookline-worker"}),
            name="hookline worker",
            stop_timeout_s=STOP_TIMEOUT_S,
        ) as worker,
    ):
        base_url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{base_url}/readyz", child=api, timeout_s=STARTUP_TIMEOUT_S)
        yield base_url, api, worker


def _one(spans: list[ExportedSpan], **match: object) -> ExportedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, f"{len(found)} spans match {match}: {found}"
    return found[0]


@pytest.mark.timeout(STARTUP_TIMEOUT_S + 3 * WAIT_S + 2 * STOP_TIMEOUT_S + 30)
async def test_a_retried_delivery_is_one_trace_with_its_publish(
    processes: tuple[str, Child, Child], collector: OtlpReceiver
) -> None:
    base_url, api_process, worker_process = processes

    def logs() -> str:
        return f"{api_process.describe()}\n{worker_process.describe()}"

    async with (
        Receiver() as receiver,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=60
        ) as api,
    ):
        # Given a webhook whose receiver answers 503, 503, then 200, retried after 1 s
        receiver.on("/hook", statuses=[503, 503, 200])
        created = await api.post(
            "/webhooks", json={"url": receiver.url_for("/hook"), "retry_config": QUICK_RETRIES}
        )
        assert created.status_code == 201, created.text
        webhook_id = created.json()["id"]

        # When a publisher that traces publishes an event inside its own span
        published = await api.post(
            "/events",
            json={"event_type": "order.created", "payload": {"order": 1}},
            headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
        )
        assert published.status_code == 202, published.text
        event_id = published.json()["id"]
        [delivery] = published.json()["deliveries"]

        # Then the subscriber gets three attempts, each with a traceparent in the client's trace
        requests = await receiver.wait_for(3, path="/hook", timeout_s=WAIT_S)
        parents = [r.headers["traceparent"].split("-") for r in requests]
        assert [p[1] for p in parents] == [CLIENT_TRACE] * 3
        assert len({p[2] for p in parents}) == 3  # a span of its own per attempt

    # And the collector gets the whole trace: request → publish → three attempts
    def complete(spans: list[ExportedSpan]) -> bool:
        return sum(s.name == ATTEMPT_SPAN for s in spans) >= 3 and any(
            s.name == PUBLISH_SPAN for s in spans
        )

    spans = await asyncio.to_thread(
        collector.wait_for, complete, timeout_s=WAIT_S, what="the attempt spans", context=logs
    )
    server = _one(spans, kind=SERVER_KIND, trace_id=CLIENT_TRACE, service="hookline-api")
    assert server.parent_span_id == CLIENT_SPAN
    assert server.name.startswith("POST /events")
    publish = _one(spans, name=PUBLISH_SPAN)
    assert (publish.service, publish.trace_id) == ("hookline-api", CLIENT_TRACE)
    assert publish.parent_span_id == server.span_id
    assert publish.attributes["hookline.event.id"] == event_id

    attempts = sorted(
        (s for s in spans if s.name == ATTEMPT_SPAN),
        key=lambda s: s.attributes["retry.attempt_number"],
    )
    assert [s.attributes["retry.attempt_number"] for s in attempts] == [1, 2, 3]
    for span, header in zip(attempts, parents, strict=True):
        assert span.service == "hookline-worker"  # another process, seconds later
        assert (span.trace_id, span.parent_span_id) == (CLIENT_TRACE, publish.span_id)
        assert span.span_id == header[2]  # the subscriber can join this very span
        assert span.attributes["hookline.delivery.id"] == delivery["id"]
        assert span.attributes["hookline.event.id"] == event_id
        assert span.attributes["hookline.endpoint.id"] == webhook_id
    assert [s.attributes["http.response.status_code"] for s in attempts] == [503, 503, 200]
    assert [s.attributes.get("retry.delay_ms") for s in attempts] == [1000, 1000, None]
    assert [s.attributes.get("error.type") for s in attempts] == ["503", "503", None]
    assert [s.status_code == ERROR for s in attempts] == [True, True, False]

    # And the API's SQL and Redis calls are child spans of its requests
    create_trace = {s.trace_id for s in spans if s.name.startswith("POST /webhooks")}
    sql = [
        s
        for s in spans
        if s.trace_id in create_trace and s.attributes.get("db.system") == "postgresql"
    ]
    assert sql, "no SQL span in the POST /webhooks trace"
    redis = [
        s for s in spans if s.trace_id == CLIENT_TRACE and s.attributes.get("db.system") == "redis"
    ]
    assert redis, "no Redis span in the POST /events trace"
