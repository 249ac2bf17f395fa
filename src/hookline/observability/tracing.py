"""OpenTelemetry tracing: a span per publish and per delivery attempt, API/SQL/Redis spans.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set: then
``build_tracing`` returns ``None`` and the callers skip every tracing step (one ``is None`` test
per attempt). On, spans go to the collector over OTLP/HTTP in batches, from this process's own
``TracerProvider`` (never the global one, so several runtimes in one process stay apart).

The publish span's W3C context is stored with the event (``events.trace_context``); each attempt
span, in whichever worker and however much later, is its child, so the publishing request, the
publish and every attempt of every delivery form one trace. The subscriber's request carries
``traceparent`` (the attempt span's context) unless propagation is switched off, globally
(``HOOKLINE_TRACE_PROPAGATION``) or per webhook.

An attempt span is ended only once the attempt's outcome is committed: a settle that loses its
version check, or rolls back, exports nothing (the span is dropped unended).

Root spans of the SQL and Redis instrumentations (the worker's polls and settles, which belong to
no request) are not sampled: they would be thousands of one-statement traces a minute.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    Sampler,
    SamplingResult,
    _get_from_env_or_default,
)
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

from hookline import __version__
from hookline.settings import Settings

__all__ = ["ATTEMPT_SPAN", "PUBLISH_SPAN", "Span", "Tracing", "build_tracing", "now_ns"]

ATTEMPT_SPAN: Final = "webhook.delivery.attempt"
PUBLISH_SPAN: Final = "webhook.publish"
_OWN_PREFIX: Final = "webhook."
_PROPAGATOR: Final = TraceContextTextMapPropagator()
_NOT_SAMPLED: Final = SamplingResult(Decision.DROP)


class _NoBareClientRoots(Sampler):
    """Drops root CLIENT spans that are not hookline's own (a poll's SQL, a Redis command
    outside any request); everything else is decided by ``inner`` (``OTEL_TRACES_SAMPLER``)."""

    def __init__(self, inner: Sampler) -> None:
        self._inner = inner

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and kind is SpanKind.CLIENT and not name.startswith(_OWN_PREFIX):
            return _NOT_SAMPLED
        return self._inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoBareClientRoots{{{self._inner.get_description()}}}"


def traces_endpoint(settings: Settings) -> str:
    """The OTLP/HTTP traces URL the settings name (``""`` when tracing is off)."""
    if settings.otel_exporter_otlp_traces_endpoint:
        return settings.otel_exporter_otlp_traces_endpoint
    if settings.otel_exporter_otlp_endpoint:
        return settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    return ""


class Tracing:
    """hookline's tracer and the instrumentation of its engine, Redis client and app."""

    def __init__(self, provider: TracerProvider, *, propagate: bool) -> None:
        self.provider = provider
        self.propagate = propagate
        """Whether subscriber requests carry ``traceparent`` (a webhook may override it)."""
        self._tracer = provider.get_tracer("hookline", __version__)

    # --- publish -------------------------------------------------------------------------------

    @contextmanager
    def publishing(self, event_type: str) -> Iterator[tuple[Span, str | None]]:
        """A ``webhook.publish`` span (a child of the current request's span) and its W3C
        ``traceparent``, to be stored with the event."""
        with self._tracer.start_as_current_span(
            PUBLISH_SPAN,
            kind=SpanKind.PRODUCER,
            attributes={"messaging.operation.type": "publish", "hookline.event.type": event_type},
        ) as span:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            yield span, carrier.get("traceparent")

    # --- attempts ------------------------------------------------------------------------------

    def start_attempt(
        self, *, trace_context: str | None, attributes: Mapping[str, str | int]
    ) -> tuple[Span, str | None]:
        """Start an attempt span, a child of the publish's stored context when there is one;
        returns it and the ``traceparent`` naming it (for the subscriber's request)."""
        parent = _PROPAGATOR.extract({"traceparent": trace_context}) if trace_context else Context()
        span = self._tracer.start_span(
            ATTEMPT_SPAN, context=parent, kind=SpanKind.CLIENT, attributes=attributes
        )
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        return span, carrier.get("traceparent")

    @staticmethod
    def finish_attempt(
        span: Span,
        *,
        end_ns: int,
        attributes: Mapping[str, str | int | float | bool],
        error: str | None,
    ) -> None:
        """End an attempt span whose outcome is committed."""
        span.set_attributes(attributes)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=end_ns)

    # --- instrumentation -----------------------------------------------------------------------

    def instrument_engine(self, engine: Any) -> None:
        """SQL statements as spans (children of the request or publish that ran them)."""
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.metrics import NoOpMeter

        connections = NoOpMeter("hookline").create_up_down_counter("db.client.connections.usage")
        tracer = self.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy", __version__)
        EngineTracer(tracer, engine.sync_engine, connections)  # type: ignore[no-untyped-call]

    def instrument_redis(self, client: Any) -> None:
        """Redis commands as spans."""
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        RedisInstrumentor.instrument_client(client, tracer_provider=self.provider)

    def instrument_app(self, app: Any) -> None:
        """A server span per API request (not for ``/metrics`` and the health checks)."""
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls="/metrics,/healthz,/readyz",
            exclude_spans=["receive", "send"],
        )

    def shutdown(self) -> None:
        """Export what is buffered and stop (blocking: run it in a thread)."""
        self.provider.force_flush()
        self.provider.shutdown()


def now_ns() -> int:
    """Wall-clock time for span timestamps (spans are real time even under a manual clock)."""
    return time.time_ns()


def build_tracing(settings: Settings, *, exporter: SpanExporter | None = None) -> Tracing | None:
    """``Tracing`` for the settings, or ``None`` when no OTLP endpoint is configured (and no
    ``exporter`` is given: tests pass one)."""
    endpoint = traces_endpoint(settings)
    if exporter is None:
        if not endpoint:
            return None
        exporter = OTLPSpanExporter(endpoint=endpoint)
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": settings.otel_service_name, "service.version": __version__}
        ),
        sampler=_NoBareClientRoots(_get_from_env_or_default()),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider, propagate=settings.trace_propagation)
