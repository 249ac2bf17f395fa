"""Pages that are not built yet, and the console's "no such page".

Each entry of ``PLACEHOLDERS`` is a page the navigation (or the overview) links to, shown as a
"coming soon" page behind the sign-in that names the API call doing the same meanwhile. A page
that gets built replaces its entry here with its own router (included before ``fallback``).
``fallback`` must be the last router included: any other ``GET /ui/...`` is a 404 page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fastapi import Request
from fastapi.responses import HTMLResponse

from hookline.api.console.auth import SessionDep
from hookline.api.console.rendering import render
from hookline.api.console.routing import console_router


@dataclass(frozen=True, slots=True)
class Placeholder:
    """A page to come: its path under ``/ui``, nav entry, title and the API call meanwhile."""

    path: str
    active: str
    title: str
    api_call: str


PLACEHOLDERS: Final[tuple[Placeholder, ...]] = ()

router = console_router()
fallback = console_router()


def _add(placeholder: Placeholder) -> None:
    async def coming_soon(request: Request, session: SessionDep) -> HTMLResponse:
        return render(
            request,
            "placeholder.html",
            session=session,
            active=placeholder.active,
            title=placeholder.title,
            api_call=placeholder.api_call,
        )

    router.add_api_route(
        placeholder.path,
        coming_soon,
        methods=["GET"],
        name=f"console_placeholder_{placeholder.active}_{len(router.routes)}",
    )


for _placeholder in PLACEHOLDERS:
    _add(_placeholder)


@fallback.get("/{rest:path}")
async def not_found(request: Request, session: SessionDep, rest: str) -> HTMLResponse:
    """Any other console address (behind the sign-in, so it tells nothing to strangers)."""
    return render(
        request,
        "error.html",
        session=session,
        status_code=404,
        title="No such page",
        message="There is no page at this address in the console.",
    )
