"""Templates: one Jinja2 environment, autoescaping every template, and the page context.

Autoescaping is on for every template whatever its name (``autoescape=True``), so a webhook's
description, a URL or a payload containing ``<script>`` is shown as text; nothing in the console
marks data ``|safe``. Undefined names fail loudly (``StrictUndefined``) instead of rendering
empty. The environment is built on first use, not at import.

Every page gets ``root`` (the app's ``root_path``: ``{{ root }}/docs``), ``console`` (the ``/ui``
prefix under it), ``static`` (the
console's asset folder URL), ``session`` (None on the sign-in page and for visitors without
one), ``nav`` and ``active`` (which nav entry the page belongs to), and ``htmx_config``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

from hookline import __version__
from hookline.api.console.assets import HTMX_FILE, STATIC_FOLDER, STYLESHEET
from hookline.api.console.headers import CONSOLE_PATH
from hookline.api.console.session import CSRF_FIELD, ConsoleSession

PRODUCT: Final = "hookline"
NOTHING: Final = "\u2013"
"""An en dash: what a figure that does not exist reads as."""
DISABLED_REASONS: Final = {
    "gone": "gone (410)",
    "not_found": "not found (404)",
    "failing": "failing for too long",
    "manual": "disabled by hand",
}
"""How a disabled reason reads on a page (an unknown one reads as itself)."""


@dataclass(frozen=True, slots=True)
class NavItem:
    """One entry of the main navigation; ``key`` is what a page passes as ``active``."""

    key: str
    label: str
    path: str


NAV: Final = (
    NavItem("overview", "Overview", "/"),
    NavItem("webhooks", "Webhooks", "/webhooks"),
    NavItem("deliveries", "Deliveries", "/deliveries"),
    NavItem("dead-letters", "Dead letters", "/dead-letters"),
    NavItem("events", "Events", "/events"),
)

HTMX_CONFIG: Final = json.dumps(
    {
        # The policy forbids inline style; htmx would otherwise add a <style> for indicators.
        "includeIndicatorStyles": False,
        # ...and eval (hx-on, js: values), which the policy forbids too.
        "allowEval": False,
        "allowScriptTags": False,
        "selfRequestsOnly": True,
        # No snapshots of pages (with their figures) in the browser's localStorage.
        "historyCacheSize": 0,
        # A 503 fragment replaces stale figures with "unavailable"; other errors keep them.
        "responseHandling": [
            {"code": "204", "swap": False},
            {"code": "[23]..", "swap": True},
            {"code": "503", "swap": True, "error": True},
            {"code": "[45]..", "swap": False, "error": True},
        ],
    },
    separators=(",", ":"),
)


def root_prefix(request: Request) -> str:
    """The app's ``root_path`` without a trailing slash (``""`` when served at the root)."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def console_prefix(request: Request) -> str:
    """``/ui`` under the app's ``root_path`` (what links and cookie paths start with)."""
    return root_prefix(request) + CONSOLE_PATH


def static_prefix(request: Request) -> str:
    return f"{root_prefix(request)}/static/{STATIC_FOLDER}"


def format_count(value: int) -> str:
    """``12345`` → ``12,345``."""
    return f"{value:,}"


def format_rate(value: float | None) -> str:
    """A share as a percentage with one decimal; an en dash when there is none."""
    return NOTHING if value is None else f"{value * 100:.1f}%"


def format_duration(seconds: float | None) -> str:
    """``3725`` → ``1 h 2 min``: the two largest units, whole numbers."""
    if seconds is None:
        return NOTHING
    total = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount or (unit == "s" and not parts):
            parts.append(f"{amount} {unit}")
        if len(parts) == 2:
            break
    return " ".join(parts)


def format_time(value: datetime | None) -> str:
    """``2026-01-01 10:00:00 UTC``; an en dash for None."""
    if value is None:
        return NOTHING
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_hour(value: datetime) -> str:
    """``10:00`` (UTC)."""
    return value.astimezone(UTC).strftime("%H:%M")


def iso_time(value: datetime) -> str:
    """The ``datetime`` attribute of a ``<time>`` element."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@cache
def environment() -> Environment:
    """The console's Jinja2 environment (built once, on first use)."""
    env = Environment(
        loader=PackageLoader("hookline.api.console", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(
        count=format_count,
        rate=format_rate,
        duration=format_duration,
        time=format_time,
        hour=format_hour,
        iso=iso_time,
    )
    env.globals.update(product=PRODUCT, version=__version__, nav=NAV, htmx_config=HTMX_CONFIG)
    env.globals.update(stylesheet=STYLESHEET, htmx_file=HTMX_FILE, csrf_field=CSRF_FIELD)
    env.globals.update(disabled_reasons=DISABLED_REASONS)
    return env


def render(
    request: Request,
    template: str,
    *,
    session: ConsoleSession | None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    active: str | None = None,
    **context: Any,
) -> HTMLResponse:
    """``template`` rendered for ``request`` as an HTML response."""
    html = (
        environment()
        .get_template(template)
        .render(
            root=root_prefix(request),
            console=console_prefix(request),
            static=static_prefix(request),
            session=session,
            active=active,
            **context,
        )
    )
    return HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))
