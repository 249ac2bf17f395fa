"""The overview page ``/ui/`` and its figures fragment ``/ui/overview/stats``.

The page holds the fragment inline, so without JavaScript it shows everything; with htmx the
fragment's container fetches ``/ui/overview/stats`` every ``REFRESH_S`` seconds and swaps its
content. When the database cannot answer, both answer 503: the page with the unavailable notice
in its layout, the fragment with the notice alone (htmx is configured to swap a 503 in, so stale
figures do not linger; the next poll brings them back).
"""

from __future__ import annotations

from typing import Final

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from hookline.api.console.auth import SessionDep
from hookline.api.console.charts import hourly_chart
from hookline.api.console.rendering import console_prefix, render
from hookline.api.console.routing import UNAVAILABLE_MESSAGE, UNAVAILABLE_TITLE, console_router
from hookline.api.console.session import ConsoleSession
from hookline.api.deps import ConsoleDep
from hookline.api.errors import UNAVAILABLE_RETRY_AFTER_S
from hookline.errors import Unavailable
from hookline.service.console import ConsoleQueries, Overview

router = console_router()

REFRESH_S: Final = 10
"""How often the figures refresh themselves (htmx polling)."""
STATS_PATH: Final = "/overview/stats"


async def _render(
    request: Request, template: str, *, session: ConsoleSession, queries: ConsoleQueries
) -> HTMLResponse:
    try:
        overview: Overview | None = await queries.overview()
    except Unavailable:
        overview = None
    return render(
        request,
        template,
        session=session,
        active="overview",
        status_code=200 if overview is not None else 503,
        headers=None if overview is not None else {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
        overview=overview,
        chart=hourly_chart(overview.hourly) if overview is not None else None,
        refresh_s=REFRESH_S,
        stats_path=STATS_PATH,
        unavailable_title=UNAVAILABLE_TITLE,
        unavailable_message=UNAVAILABLE_MESSAGE,
        api_base=str(request.base_url).rstrip("/"),
    )


@router.get("")
async def console_root(request: Request) -> RedirectResponse:
    """``/ui`` → ``/ui/``."""
    return RedirectResponse(console_prefix(request) + "/", status_code=303)


@router.get("/")
async def overview_page(request: Request, session: SessionDep, queries: ConsoleDep) -> HTMLResponse:
    """The whole page."""
    return await _render(request, "overview.html", session=session, queries=queries)


@router.get(STATS_PATH)
async def overview_stats(
    request: Request, session: SessionDep, queries: ConsoleDep
) -> HTMLResponse:
    """The figures alone (what the page's container swaps in)."""
    return await _render(request, "_overview_stats.html", session=session, queries=queries)
