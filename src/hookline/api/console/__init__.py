"""The operator console at ``/ui``: server-rendered pages over the services the API uses.

Jinja2 templates (``templates/``, autoescaped), one stylesheet and a vendored htmx
(``hookline/api/static/console/``, see ``assets``); no build step, nothing fetched at run time,
every page readable without JavaScript. People sign in with an API token (``login``); the
session is a signed cookie (``session``), every form post is CSRF-checked (``auth``), and every
``/ui`` response carries a strict Content-Security-Policy (``headers``).

Adding a page: a module with ``router = console_router()`` (``routing``) whose handlers take
``SessionDep`` (pages) or ``CheckedFormDep`` (posts) and answer ``render(...)`` with a template
extending ``base.html``; include its router in ``install_console`` before ``fallback``, and drop
its entry from ``placeholders.PLACEHOLDERS``. Data comes from service calls on the runtime
(``api.deps``); errors the services raise become pages in ``routing.ConsoleRoute``.

Part of the api layer: may import runtime, service, domain, settings, observability and the
kernel; never storage (no SQL, no sessions here) and never itself over HTTP.
"""

from __future__ import annotations

from fastapi import FastAPI

from hookline.api.console import (
    dead_letters,
    deliveries,
    events,
    login,
    overview,
    placeholders,
    webhooks,
)
from hookline.api.console.headers import CONSOLE_PATH, ConsoleHeaders


def install_console(app: FastAPI) -> None:
    """Serve the console under ``/ui`` (left out of the OpenAPI document)."""
    for router in (
        login.router,
        overview.router,
        events.router,
        deliveries.router,
        dead_letters.router,
        webhooks.router,
        placeholders.router,
        placeholders.fallback,
    ):
        app.include_router(router, prefix=CONSOLE_PATH, include_in_schema=False)
    app.add_middleware(ConsoleHeaders)
