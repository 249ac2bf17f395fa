"""The composition root: ``open_runtime(settings, clock)`` builds the object graph once.

It picks the adapters the settings ask for (SQLite or PostgreSQL, SQL or Redis queue) and hands
the same graph to the API, the worker and the sweeper. Nothing else constructs engines, clients or
services, so tests can build a runtime on a ``ManualClock`` and real servers.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from opentelemetry.sdk.trace.export import SpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hookline import __version__
from hookline.clock import Clock, SystemClock
from hookline.observability.alerts import AlertDispatcher, AlertNotifier, LogNotifier
from hookline.observability.metrics import Metrics
from hookline.observability.tracing import Tracing, build_tracing
from hookline.queue.base import DelayedQueue
from hookline.queue.rate_limit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from hookline.queue.redis_queue import RedisQueue
from hookline.queue.sql_queue import SqlQueue
from hookline.sender.client import Sender
from hookline.service.alert_webhook import WebhookNotifier
from hookline.service.console import ConsoleQueries
from hookline.service.dead_letters import DeadLetterService
from hookline.service.delivery import DeliveryService
from hookline.service.destinations import DestinationVetter
from hookline.service.endpoint_sends import EndpointSends
from hookline.service.endpoints import EndpointService
from hookline.service.events import EventService
from hookline.service.health import LoopHealth
from hookline.service.lifecycle import LifecycleService
from hookline.service.parking import LifecyclePolicy
from hookline.service.queries import DeliveryQueries
from hookline.service.stats import StatsRefresher
from hookline.settings import QueueBackend, Settings
from hookline.storage import migrate as migrations
from hookline.storage.db import create_engine, create_session_factory


@dataclass(slots=True)
class Runtime:
    """Everything a process needs, built once and closed once."""

    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    queue: DelayedQueue
    rate_limiter: RateLimiter
    sender: Sender
    metrics: Metrics
    api_tokens: tuple[str, ...]
    endpoints: EndpointService
    queries: DeliveryQueries
    events: EventService
    dead_letters: DeadLetterService
    delivery: DeliveryService
    endpoint_sends: EndpointSends
    lifecycle: LifecycleService
    loops: LoopHealth
    stats: StatsRefresher
    console: ConsoleQueries
    tracing: Tracing | None
    alerts: AlertDispatcher


def build_queue(settings: Settings, engine: AsyncEngine) -> DelayedQueue:
    """The queue the settings ask for."""
    if settings.effective_queue_backend is QueueBackend.REDIS:
        assert settings.redis_url is not None  # Settings validated it
        return RedisQueue.from_url(settings.redis_url, prefix=settings.redis_key_prefix)
    return SqlQueue(engine)


def build_rate_limiter(queue: DelayedQueue) -> RateLimiter:
    """The endpoints' rate-limit buckets, beside the queue: on its Redis (shared by every
    worker), or, beside the SQL queue of the embedded mode, in this process (so several
    ``hookline serve`` processes on one SQLite file each allow an endpoint its full rate)."""
    if isinstance(queue, RedisQueue):
        return RedisRateLimiter(queue.client, keys=queue.keys)
    return LocalRateLimiter()


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    migrate: bool = False,
    api_tokens: tuple[str, ...] = (),
    metrics: Metrics | None = None,
    rng: random.Random | None = None,
    sender: Sender | None = None,
    resolver: AbstractResolver | None = None,
    span_exporter: SpanExporter | None = None,
) -> AsyncIterator[Runtime]:
    """Build the graph for ``settings``; with ``migrate`` bring the schema to head first.

    ``api_tokens`` defaults to ``settings.api_tokens``; ``sender`` may be replaced by tests (for
    instance one with an injected resolver). The sender is started here and closed on exit.
    ``resolver`` (default: aiohttp's) answers the DNS lookups of the sender built here and of
    the URL vetting on create/PATCH; tests pass a fake one so no real name is ever looked up.
    Tracing is on when the settings name an OTLP endpoint, or when ``span_exporter`` is given
    (tests); its spans are flushed on exit.
    """
    clock = clock or SystemClock()
    metrics = metrics or Metrics()
    async with AsyncExitStack() as stack:
        engine = create_engine(
            settings.effective_database_url, pool_size=settings.database_pool_size
        )
        stack.push_async_callback(engine.dispose)
        tracing = build_tracing(settings, exporter=span_exporter)
        if tracing is not None:
            stack.push_async_callback(asyncio.to_thread, tracing.shutdown)  # after the rest
            tracing.instrument_engine(engine)
        if migrate:
            await migrations.upgrade(engine)
        sessions = create_session_factory(engine)
        queue = build_queue(settings, engine)
        stack.push_async_callback(queue.close)
        if tracing is not None and isinstance(queue, RedisQueue):
            tracing.instrument_redis(queue.client)
        if resolver is None:
            resolver = DefaultResolver()
            stack.push_async_callback(resolver.close)
        if sender is None:
            sender = Sender(
                connect_timeout_s=settings.delivery_connect_timeout_s,
                total_timeout_s=settings.delivery_timeout_s,
                allowed_networks=settings.allowed_networks,
                user_agent=f"hookline/{__version__}",
                clock=clock,
                max_connections=settings.worker_concurrency,
                resolver=resolver,
            )
        await sender.start()
        stack.push_async_callback(sender.close)
        notifiers: list[AlertNotifier] = [LogNotifier()]
        if settings.alert_webhook_url:
            notifiers.append(
                WebhookNotifier(
                    sender=sender,
                    url=settings.alert_webhook_url,
                    secret=settings.alert_webhook_secret,
                    clock=clock,
                )
            )
        # Its run() loop is started by the CLI (a manual clock's sleeps would move tests' time).
        alerts = AlertDispatcher(
            clock=clock, notifiers=notifiers, min_interval_s=settings.alert_min_interval_s
        )
        events = EventService(
            sessions=sessions,
            queue=queue,
            clock=clock,
            metrics=metrics,
            max_payload_bytes=settings.max_payload_bytes,
            queue_max_size=settings.retry_queue_max_size,
            tracing=tracing,
        )
        stack.push_async_callback(events.close)  # first out: its writer still needs the rest
        endpoint_sends = EndpointSends(sessions=sessions, sender=sender, clock=clock)
        policy = LifecyclePolicy.from_settings(settings)
        yield Runtime(
            settings=settings,
            clock=clock,
            engine=engine,
            sessions=sessions,
            queue=queue,
            rate_limiter=build_rate_limiter(queue),
            sender=sender,
            metrics=metrics,
            api_tokens=api_tokens or tuple(settings.api_tokens),
            endpoints=EndpointService(
                sessions=sessions,
                queue=queue,
                clock=clock,
                settings=settings,
                destinations=DestinationVetter(
                    allowed_networks=settings.allowed_networks, resolver=resolver
                ),
                metrics=metrics,
                alerts=alerts,
                lifecycle=policy,
                rng=rng,
            ),
            queries=DeliveryQueries(sessions=sessions),
            events=events,
            dead_letters=DeadLetterService(sessions=sessions, queue=queue, clock=clock),
            delivery=DeliveryService(
                sessions=sessions,
                queue=queue,
                sender=sender,
                clock=clock,
                metrics=metrics,
                failure_disable_window_s=settings.failure_disable_window_s,
                lease_s=settings.lease_duration_s,
                rng=rng,
                tracing=tracing,
                alerts=alerts,
                lifecycle=policy,
            ),
            endpoint_sends=endpoint_sends,
            lifecycle=LifecycleService(
                sessions=sessions,
                queue=queue,
                clock=clock,
                sends=endpoint_sends,
                metrics=metrics,
                policy=policy,
                alerts=alerts,
                rng=rng,
                probe_lease_s=settings.delivery_timeout_s + 60,
            ),
            loops=LoopHealth(),
            stats=StatsRefresher(
                sessions=sessions,
                queue=queue,
                metrics=metrics,
                clock=clock,
                ttl_s=settings.metrics_cache_s,
            ),
            console=ConsoleQueries(sessions=sessions, queue=queue, clock=clock),
            tracing=tracing,
            alerts=alerts,
        )
