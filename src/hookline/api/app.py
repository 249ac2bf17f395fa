"""``create_app(runtime)``: the FastAPI application, built on demand, never at import time.

``build_app()`` assembles routes, error handlers and docs without a runtime, which is all the
OpenAPI document needs (``scripts/gen_openapi``); ``create_app`` adds the runtime and the request
body limit. Every resource router requires a bearer token; the operations routes, ``/docs``,
``/static`` and ``/openapi.json`` do not. The operator console (``/ui``, ``api.console``) signs
people in with the same tokens and stays out of the OpenAPI document.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI
from fastapi.routing import APIRoute

from hookline import __version__
from hookline.api.auth import RequireToken
from hookline.api.console import install_console
from hookline.api.deps import ApiRuntime
from hookline.api.docs import install_docs
from hookline.api.errors import error_responses, install_error_handlers
from hookline.api.routes import dead_letters, deliveries, events, operations, webhooks

BODY_OVERHEAD_BYTES: Final = 64 * 1024
"""Room for the rest of a publish body (event type, key, whitespace) beside the payload."""
BODY_EXPANSION: Final = 2
"""A request may spell the payload less compactly than it is stored (spaces, escapes)."""

DESCRIPTION: Final = """\
Self-hosted webhook delivery: publish events, and hookline delivers them to every subscribed
webhook, signed per Standard Webhooks, retrying failures with exponential backoff within a
window (10 hours by default) before they become dead letters.

Every path except the operations ones and the docs needs `Authorization: Bearer <token>`.
Lists are newest first: `limit` (1-500, default 50) and the opaque `cursor` from the previous
page's `next_cursor`. Timestamps are RFC 3339 UTC; durations are seconds.

Input: an unknown body field or query parameter is a 422, like any value the schema refuses;
JSON in a request nests at most 64 arrays/objects below its top level; a timestamp in a request
carries its offset and lies in 1970-01-01T00:00:00Z..9999-12-31T23:59:59Z. `OPTIONS` on any path
answers 204 with `Allow`; a method a path does not have is a 405 with the same `Allow`.
"""


def _operation_id(route: APIRoute) -> str:
    return route.name


def build_app(*, max_body_size: int | None = None) -> FastAPI:
    """The application without a runtime (enough for its OpenAPI document)."""
    app = FastAPI(
        title="hookline",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        separate_input_output_schemas=False,
        generate_unique_id_function=_operation_id,
        max_body_size=max_body_size,
    )
    install_error_handlers(app)
    for router in (webhooks.router, events.router, deliveries.router, dead_letters.router):
        app.include_router(router, dependencies=[RequireToken], responses=error_responses(401, 503))
    app.include_router(operations.router)
    install_docs(app)
    install_console(app)
    return app


def create_app(runtime: ApiRuntime) -> FastAPI:
    """The HTTP API over ``runtime``'s services."""
    max_payload = runtime.settings.max_payload_bytes
    app = build_app(max_body_size=max_payload * BODY_EXPANSION + BODY_OVERHEAD_BYTES)
    app.state.runtime = runtime
    if runtime.tracing is not None:
        runtime.tracing.instrument_app(app)
    return app
