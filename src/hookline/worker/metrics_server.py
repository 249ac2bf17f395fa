"""The worker's own ``/metrics`` (``hookline worker`` has no API port for Prometheus to scrape).

A small aiohttp server on ``METRICS_HOST:METRICS_PORT`` inside the worker's event loop: the same
registry and scrape-time gauges as the API's ``/metrics``, so api and workers scraped as separate
targets sum to the whole deployment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hookline.runtime import Runtime


def metrics_app(runtime: Runtime) -> web.Application:
    """``GET /metrics`` (Prometheus text format) and ``GET /healthz``."""

    async def metrics(_request: web.Request) -> web.Response:
        await runtime.stats.refresh()
        body = generate_latest(runtime.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app


@asynccontextmanager
async def serving_metrics(runtime: Runtime, *, host: str, port: int) -> AsyncIterator[str]:
    """Serve ``metrics_app`` on ``host:port`` while the block runs; yields its base URL.

    ``OSError`` when the address cannot be bound (in use, not local)."""
    runner = web.AppRunner(metrics_app(runtime), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        yield site.name
    finally:
        await runner.cleanup()
