"""Metrics, traces and gauges that tell the truth (issue 11, items 1 and 2).

Real database and queue (SQLite + SQL queue, PostgreSQL + Redis), a real loopback receiver, a
ManualClock. Counters, histograms, the ``delivery.attempt`` log line and the attempt span are
emitted only for outcomes that were committed; tracing, when on, links every attempt to the
publish that caused it and tells the subscriber through ``traceparent``; the gauges of stored
state are read at scrape time, cached, and survive a failing query.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, StatusCode
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update
from structlog.testing import capture_logs

from hookline.api.app import create_app
from hookline.clock import ManualClock
from hookline.domain.retry_config import JitterMode, RetryConfig
from hookline.domain.states import DisabledReason
from hookline.observability.tracing import ATTEMPT_SPAN, PUBLISH_SPAN
from hookline.runtime import open_runtime
from hookline.service import stats as stats_module
from hookline.settings import Settings
from hookline.storage.models import Delivery, Event
from hookline.storage.repositories.stats import StoredStats
from hookline.worker.sweeper import Sweeper
from tests.integration.conftest import Harness
from tests.receiver import Receiver

QUICK_NO_JITTER = RetryConfig(jitter=JitterMode.NONE, base_delay=2, multiplier=2)
"""Retries 2 s, then 4 s after a failure: quick, and exactly known."""
GAUGES = (
    "webhook_queue_depth",
    "webhook_backlog_due",
    "webhook_backlog_oldest_age_seconds",
    "webhook_dead_letters",
    "webhook_parked_deliveries",
    "webhook_endpoints_recovering",
)


# --- reading the registry ------------------------------------------------------------------------


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """One sample's value; 0 for a labelled child that was never touched."""
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def summed(registry: CollectorRegistry, name: str) -> float:
    """A sample summed over all its label values."""
    return sum(s.value for m in registry.collect() for s in m.samples if s.name == name)


def non_gauge_samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[Any, ...]], float]:
    """Every counter and histogram sample (gauges are state, not events, and move on their own)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for m in registry.collect()
        if m.type != "gauge"
        for s in m.samples
    }


def context_of(span: ReadableSpan) -> SpanContext:
    context = span.get_span_context()
    assert context is not None
    return context


def traceparent(span: ReadableSpan) -> str:
    """The W3C ``traceparent`` naming ``span``, with its flags (sampled, and the random-trace-id
    bit the SDK sets)."""
    context = context_of(span)
    assert context.trace_flags.sampled
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


# --- a harness with tracing on -------------------------------------------------------------------


@asynccontextmanager
async def traced_harness(
    deployment: tuple[str, Settings], clock: ManualClock, **settings_changes: Any
) -> AsyncIterator[tuple[Harness, InMemorySpanExporter]]:
    """The ``harness`` fixture's deployment, with tracing on (spans kept in memory)."""
    name, settings = deployment
    exporter = InMemorySpanExporter()
    async with (
        Receiver(clock=clock) as receiver,
        open_runtime(
            settings.model_copy(update=settings_changes), clock=clock, span_exporter=exporter
        ) as runtime,
    ):
        yield (
            Harness(
                runtime=runtime,
                clock=clock,
                receiver=receiver,
                sweeper=Sweeper.from_runtime(runtime),
                deployment=name,
            ),
            exporter,
        )


@pytest.fixture
async def traced(
    deployment: tuple[str, Settings], clock: ManualClock
) -> AsyncIterator[tuple[Harness, InMemorySpanExporter]]:
    async with traced_harness(deployment, clock) as pair:
        yield pair


def finished_spans(
    harness: Harness, exporter: InMemorySpanExporter, name: str
) -> list[ReadableSpan]:
    """The spans named ``name`` exported so far (after flushing the batch processor)."""
    tracing = harness.runtime.tracing
    assert tracing is not None
    assert tracing.provider.force_flush(timeout_millis=30_000)
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def stored_trace_context(harness: Harness, event_id: str) -> str | None:
    async with harness.runtime.sessions() as session:
        return await session.scalar(select(Event.trace_context).where(Event.id == event_id))


# --- 1. counters move by exactly what was committed ----------------------------------------------


async def test_503_503_200_moves_each_metric_by_exactly_what_happened(harness: Harness) -> None:
    # Given an endpoint that answers 503, 503, then 200
    registry = harness.runtime.metrics.registry
    await harness.add_endpoint(retry_config=QUICK_NO_JITTER.model_dump(mode="json"))
    harness.receiver.on("/hook", statuses=[503, 503, 200])
    retries = summed(registry, "webhook_retry_total")
    delivered = value(registry, "webhook_delivery_total", outcome="delivered")
    retryable = value(registry, "webhook_delivery_total", outcome="retryable")
    per_delivery_count = value(registry, "webhook_delivery_attempts_count", outcome="succeeded")
    per_delivery_sum = value(registry, "webhook_delivery_attempts_sum", outcome="succeeded")
    durations = value(registry, "webhook_delivery_duration_seconds_count")
    delays = value(registry, "webhook_retry_delay_seconds_count")

    # When one event is published and retried until it settles
    [delivery] = (await harness.publish()).deliveries
    with capture_logs() as logs:
        final = await harness.run_until_settled(delivery.id)

    # Then it succeeded on the third attempt
    assert (final.state, final.attempt_number) == ("succeeded", 3)
    # and two retries, one delivered and two retryable outcomes were counted, no more
    assert summed(registry, "webhook_retry_total") - retries == 2
    assert value(registry, "webhook_retry_total", reason="5xx") == 2
    assert value(registry, "webhook_delivery_total", outcome="delivered") - delivered == 1
    assert value(registry, "webhook_delivery_total", outcome="retryable") - retryable == 2
    assert value(registry, "webhook_retry_delay_seconds_count") - delays == 2
    # and the delivery's attempt count was observed once, when it ended, as 3
    assert (
        value(registry, "webhook_delivery_attempts_count", outcome="succeeded") - per_delivery_count
        == 1
    )
    assert (
        value(registry, "webhook_delivery_attempts_sum", outcome="succeeded") - per_delivery_sum
        == 3
    )
    assert value(registry, "webhook_delivery_attempts_count", outcome="failed") == 0
    # and each of the three attempts' durations was observed
    assert value(registry, "webhook_delivery_duration_seconds_count") - durations == 3
    # and each attempt wrote one delivery.attempt log line
    lines = [entry for entry in logs if entry["event"] == "delivery.attempt"]
    assert [(e["attempt"], e["status_code"], e["delay"]) for e in lines] == [
        (1, 503, 2.0),
        (2, 503, 4.0),
        (3, 200, None),
    ]


# --- 2. a settle that loses its version check reports nothing ------------------------------------


async def test_a_settle_that_loses_its_version_check_moves_nothing(
    traced: tuple[Harness, InMemorySpanExporter],
) -> None:
    harness, exporter = traced
    runtime = harness.runtime
    registry = runtime.metrics.registry
    # Given a delivery prepared and sent (tracing on: the attempt span is started) ...
    await harness.add_endpoint()
    harness.receiver.on("/hook", statuses=[503])
    [delivery] = (await harness.publish()).deliveries
    [planned] = await runtime.delivery.prepare([delivery.id])
    result = await runtime.delivery.send(planned)
    assert result.span is not None
    assert len(harness.receiver.requests) == 1
    # ... whose row another worker changed meanwhile (its version moved on)
    async with runtime.sessions.begin() as session:
        await session.execute(
            update(Delivery).where(Delivery.id == delivery.id).values(version=Delivery.version + 1)
        )
    assert finished_spans(harness, exporter, ATTEMPT_SPAN) == []
    before = non_gauge_samples(registry)

    # When the attempt is settled
    with capture_logs() as logs:
        summary = await runtime.delivery.settle([result])

    # Then the outcome is lost, not written
    assert (summary.lost, summary.succeeded, summary.retrying, summary.failed) == (1, 0, 0, 0)
    stored = await harness.delivery(delivery.id)
    assert (stored.state, stored.version) == ("delivering", planned.version + 1)
    # and no counter or histogram moved
    assert non_gauge_samples(registry) == before
    # and no delivery.attempt line was logged (only that the settle was lost)
    events = [entry["event"] for entry in logs]
    assert "delivery.attempt" not in events
    assert "delivery.settle_lost" in events
    # and no attempt span was exported
    assert finished_spans(harness, exporter, ATTEMPT_SPAN) == []


# --- 3. one trace from the publish through every attempt -----------------------------------------


async def test_every_attempt_is_a_span_in_the_publish_trace(
    traced: tuple[Harness, InMemorySpanExporter],
) -> None:
    harness, exporter = traced
    # Given tracing on and an endpoint that answers 503, 503, then 200
    endpoint_id = await harness.add_endpoint(retry_config=QUICK_NO_JITTER.model_dump(mode="json"))
    harness.receiver.on("/hook", statuses=[503, 503, 200])

    # When one event is published and retried until it settles
    published = await harness.publish()
    [delivery] = published.deliveries
    assert (await harness.run_until_settled(delivery.id)).state == "succeeded"

    # Then there is one publish span, and the event stored its context
    [publish] = finished_spans(harness, exporter, PUBLISH_SPAN)
    trace_id = context_of(publish).trace_id
    assert await stored_trace_context(harness, published.event.id) == traceparent(publish)
    # and three attempt spans, children of the publish span in its trace
    spans = sorted(
        finished_spans(harness, exporter, ATTEMPT_SPAN),
        key=lambda s: int(str((s.attributes or {})["retry.attempt_number"])),
    )
    assert len(spans) == 3
    for span in spans:
        assert context_of(span).trace_id == trace_id
        assert span.parent is not None
        assert span.parent.span_id == context_of(publish).span_id
        assert span.kind is SpanKind.CLIENT
    attributes = [dict(span.attributes or {}) for span in spans]
    assert [a["retry.attempt_number"] for a in attributes] == [1, 2, 3]
    assert [a["http.response.status_code"] for a in attributes] == [503, 503, 200]
    for a in attributes:
        assert a["hookline.delivery.id"] == delivery.id
        assert a["hookline.event.id"] == published.event.id
        assert a["hookline.endpoint.id"] == endpoint_id
    # and the retried attempts carry the delay their attempt rows recorded
    rows = await harness.attempts(delivery.id)
    assert [row.next_delay for row in rows] == [2.0, 4.0, None]
    for a, row in zip(attributes[:2], rows[:2], strict=True):
        assert row.next_delay is not None
        assert a["retry.delay_ms"] == round(row.next_delay * 1000)
    assert "retry.delay_ms" not in attributes[2]
    # and the failures name their error and are errors; the success is not
    assert [a.get("error.type") for a in attributes] == ["503", "503", None]
    assert [s.status.status_code for s in spans[:2]] == [StatusCode.ERROR] * 2
    assert spans[2].status.status_code in (StatusCode.UNSET, StatusCode.OK)
    # and each request told the subscriber which attempt span it belongs to
    requests = harness.receiver.requests
    assert [r.headers["webhook-attempt"] for r in requests] == ["1", "2", "3"]
    assert [r.headers.get("traceparent") for r in requests] == [traceparent(s) for s in spans]


# --- 4. the traceparent header can be switched off, globally or per webhook ----------------------


@pytest.mark.parametrize(
    ("global_switch", "webhook_switch", "sent"),
    [
        pytest.param(True, None, True, id="global-on"),
        pytest.param(True, False, False, id="webhook-off-overrides-global-on"),
        pytest.param(False, None, False, id="global-off"),
        pytest.param(False, True, True, id="webhook-on-overrides-global-off"),
    ],
)
async def test_traceparent_follows_the_global_and_webhook_switches(
    deployment: tuple[str, Settings],
    clock: ManualClock,
    global_switch: bool,
    webhook_switch: bool | None,
    sent: bool,
) -> None:
    async with traced_harness(deployment, clock, trace_propagation=global_switch) as (
        harness,
        exporter,
    ):
        # Given tracing on, HOOKLINE_TRACE_PROPAGATION and the webhook's own switch
        endpoint = await harness.runtime.endpoints.create(
            url=harness.receiver.url_for("/hook"), trace_propagation=webhook_switch
        )
        assert endpoint.trace_propagation is webhook_switch

        # When an event is delivered to it
        [delivery] = (await harness.publish()).deliveries
        assert (await harness.run_until_settled(delivery.id)).state == "succeeded"

        # Then the attempt span exists either way, and the request carries it only if allowed
        [span] = finished_spans(harness, exporter, ATTEMPT_SPAN)
        [request] = harness.receiver.requests
        assert request.headers.get("traceparent") == (traceparent(span) if sent else None)


# --- 5. tracing off: no header, no stored context ------------------------------------------------


async def test_with_tracing_off_nothing_is_traced_or_propagated(harness: Harness) -> None:
    # Given the normal runtime (no OTLP endpoint) and a webhook that asks for propagation
    assert harness.runtime.tracing is None
    await harness.add_endpoint(trace_propagation=True)

    # When an event is delivered
    published = await harness.publish()
    [delivery] = published.deliveries
    assert (await harness.run_until_settled(delivery.id)).state == "succeeded"

    # Then the request carries no traceparent and the event stored no trace context
    [request] = harness.receiver.requests
    assert "traceparent" not in request.headers
    assert await stored_trace_context(harness, published.event.id) is None


# --- 6. gauges of stored state: right, cached, and robust ----------------------------------------


async def given_a_backlog_a_dead_letter_and_a_gone_endpoint(harness: Harness) -> datetime:
    """A 400 (dead letter) and a 410 (dead letter, endpoint disabled as gone) settled at t0;
    two deliveries published at t0 + 10 s and t0 + 40 s and never worked. Returns the first
    one's due time."""
    await harness.add_endpoint("/bad", event_types=["x.bad"])
    await harness.add_endpoint("/gone", event_types=["x.gone"])
    await harness.add_endpoint("/later", event_types=["x.due"])
    harness.receiver.on("/bad", statuses=[400])
    harness.receiver.on("/gone", statuses=[410])
    await harness.publish("x.bad")
    await harness.publish("x.gone")
    assert await harness.run() == 2
    due_since = harness.clock.advance(10)
    await harness.publish("x.due")
    harness.clock.advance(30)
    await harness.publish("x.due")
    return due_since


def gauges(registry: CollectorRegistry) -> dict[str, float]:
    found = {name: value(registry, name) for name in GAUGES}
    for reason in DisabledReason:
        found[f"disabled:{reason.value}"] = value(
            registry, "webhook_endpoints_disabled", reason=reason.value
        )
    return found


async def test_gauges_show_the_stored_state(harness: Harness) -> None:
    runtime = harness.runtime
    registry = runtime.metrics.registry
    # Given a due backlog, dead letters and an endpoint disabled as gone; and a recovering
    # endpoint and one disabled by hand, each with a delivery parked (no due time: not backlog)
    due_since = await given_a_backlog_a_dead_letter_and_a_gone_endpoint(harness)
    await harness.add_endpoint("/recovering", event_types=["x.parks"], status="recovering")
    await harness.add_endpoint(
        "/off", event_types=["x.parks"], status="disabled", disabled_reason="manual"
    )
    assert [d.state for d in (await harness.publish("x.parks")).deliveries] == ["parked"] * 2
    harness.clock.advance(60)
    assert (harness.clock.now() - due_since).total_seconds() == 90

    # When the gauges are refreshed
    await runtime.stats.refresh()

    # Then each says what the database and queue hold
    assert runtime.stats.refreshes == 1
    assert gauges(registry) == {
        "webhook_queue_depth": 2,
        "webhook_backlog_due": 2,
        "webhook_backlog_oldest_age_seconds": 90,
        "webhook_dead_letters": 2,
        "webhook_parked_deliveries": 2,
        "webhook_endpoints_recovering": 1,
        "disabled:gone": 1,
        "disabled:not_found": 0,
        "disabled:failing": 0,
        "disabled:manual": 1,
    }


async def test_gauges_are_cached_for_metrics_cache_seconds(harness: Harness) -> None:
    runtime = harness.runtime
    registry = runtime.metrics.registry
    ttl_s = runtime.settings.metrics_cache_s
    assert ttl_s > 1
    # Given gauges refreshed once
    await given_a_backlog_a_dead_letter_and_a_gone_endpoint(harness)
    await runtime.stats.refresh()
    assert (runtime.stats.refreshes, value(registry, "webhook_backlog_due")) == (1, 2)

    # When more work arrives and scrapes come within the cache time
    await harness.publish("x.due")
    await runtime.stats.refresh()
    harness.clock.advance(ttl_s - 0.5)
    await runtime.stats.refresh()

    # Then none of them queried: the gauges still show the cached values
    assert (runtime.stats.refreshes, value(registry, "webhook_backlog_due")) == (1, 2)

    # When the cache expires and 20 scrapes arrive at once
    harness.clock.advance(0.5)
    await asyncio.gather(*(runtime.stats.refresh() for _ in range(20)))

    # Then exactly one of them queried, and the gauges are fresh
    assert (runtime.stats.refreshes, value(registry, "webhook_backlog_due")) == (2, 3)

    # When the cache expires again, the next scrape queries again
    await harness.publish("x.due")
    harness.clock.advance(ttl_s)
    await runtime.stats.refresh()
    assert (runtime.stats.refreshes, value(registry, "webhook_backlog_due")) == (3, 4)


async def test_a_failing_refresh_keeps_the_last_values(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = harness.runtime
    registry = runtime.metrics.registry
    ttl_s = runtime.settings.metrics_cache_s
    # Given gauges refreshed once
    await given_a_backlog_a_dead_letter_and_a_gone_endpoint(harness)
    await runtime.stats.refresh()
    last = gauges(registry)
    assert last["webhook_backlog_due"] == 2

    # When, after the cache time, the database cannot answer the stats query
    async def broken(session: Any, *, now: datetime) -> StoredStats:
        raise ConnectionRefusedError("database unreachable")

    monkeypatch.setattr(stats_module, "stored_stats", broken)
    await harness.publish("x.due")
    harness.clock.advance(ttl_s)
    with capture_logs() as logs:
        await runtime.stats.refresh()  # does not raise

    # Then the refresh was tried, logged, and the gauges keep their last values
    assert runtime.stats.refreshes == 2
    assert [e["event"] for e in logs if e["event"].startswith("metrics.")] == [
        "metrics.refresh_failed"
    ]
    assert "ConnectionRefusedError" in logs[-1]["error"]
    assert gauges(registry) == last

    # When the database answers again after the cache time, the gauges catch up
    monkeypatch.undo()
    harness.clock.advance(ttl_s)
    await runtime.stats.refresh()
    assert (runtime.stats.refreshes, value(registry, "webhook_backlog_due")) == (3, 3)


# --- 7. /metrics serves the gauges ---------------------------------------------------------------


def scraped(text: str) -> dict[tuple[str, tuple[Any, ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_the_metrics_endpoint_serves_fresh_gauges(harness: Harness) -> None:
    runtime = harness.runtime
    # Given a due backlog, dead letters and an endpoint disabled as gone, the oldest due 90 s
    await given_a_backlog_a_dead_letter_and_a_gone_endpoint(harness)
    harness.clock.advance(60)

    # When Prometheus scrapes the API (without a token), ten times at once
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://hookline.test") as client:
        responses = await asyncio.gather(*(client.get("/metrics") for _ in range(10)))

    # Then every scrape succeeds with the gauges, from one query
    assert {r.status_code for r in responses} == {200}
    assert runtime.stats.refreshes == 1
    samples = scraped(responses[0].text)
    assert samples[("webhook_queue_depth", ())] == 2
    assert samples[("webhook_backlog_due", ())] == 2
    assert samples[("webhook_backlog_oldest_age_seconds", ())] == 90
    assert samples[("webhook_dead_letters", ())] == 2
    assert {
        labels[0][1]: v
        for (name, labels), v in samples.items()
        if name == "webhook_endpoints_disabled"
    } == {"gone": 1, "not_found": 0, "failing": 0, "manual": 0}
    # and the counters are there too
    assert samples[("webhook_dead_letter_total", (("reason", "endpoint_gone"),))] == 1
    assert samples[("webhook_dead_letter_total", (("reason", "permanent"),))] == 1


# --- alerts ------------------------------------------------------------------------------------


async def test_dead_letters_and_disables_become_alerts_once_committed(harness: Harness) -> None:
    # Given a webhook answering 400 (a permanent failure), one answering 410 (gone), one whose
    # stored retry config cannot be read, and one that will be disabled by hand
    harness.receiver.on("/bad", statuses=[400])
    harness.receiver.on("/gone", statuses=[410])
    bad = await harness.add_endpoint("/bad")
    gone = await harness.add_endpoint("/gone")
    poisoned = await harness.add_endpoint(
        "/poisoned", retry_config={"base_delay": 8000.0, "max_delay": 7200.0}
    )
    by_hand = await harness.add_endpoint("/by-hand")
    deliveries = {d.endpoint_id: d.id for d in (await harness.publish()).deliveries}

    with capture_logs() as logs:
        # When the worker attempts what it can, a person disables the last webhook, and the
        # alert loop flushes
        await harness.runtime.endpoints.disable(endpoint_id=by_hand)
        await harness.run()
        await harness.runtime.alerts.flush()

    # Then each dead letter and each disable is one alert line, with the right reason
    alerts = [e for e in logs if e["event"].startswith("alert.")]
    failed = {e["endpoint_id"]: e for e in alerts if e["event"] == "alert.delivery_failed"}
    assert {k: (v["job_id"], v["reason"]) for k, v in failed.items()} == {
        bad: (deliveries[bad], "permanent"),
        gone: (deliveries[gone], "endpoint_gone"),
        poisoned: (deliveries[poisoned], "unpreparable"),
    }
    assert failed[bad]["status_code"] == 400
    disabled = {e["endpoint_id"]: e for e in alerts if e["event"] == "alert.endpoint_disabled"}
    assert {k: (v["reason"], v["trigger"]) for k, v in disabled.items()} == {
        gone: ("gone", "automatic"),
        by_hand: ("manual", "manual"),
    }
    # the disable by hand parked the delivery waiting for it; the gone webhook's only delivery
    # was the one attempted, so it had nothing left to cancel; its run of failures began now
    facts = ("parked_deliveries", "cancelled_deliveries", "fail_since")
    assert [disabled[by_hand][key] for key in facts] == [1, 0, None]
    assert [disabled[gone][key] for key in facts] == [0, 0, harness.clock.now().isoformat()]
    assert (await harness.delivery(deliveries[by_hand])).state == "parked"
    metrics = harness.runtime.metrics.registry
    assert value(metrics, "webhook_endpoint_disabled_total", reason="manual") == 1
    assert value(metrics, "webhook_endpoint_disabled_total", reason="gone") == 1
