"""The console's routes and what their errors become: pages, never JSON.

Every console router comes from ``console_router()``, whose ``ConsoleRoute`` turns what a
handler (or one of its dependencies) raises into an answer for a person:

    SignInRequired               → 303 to the sign-in page (htmx: 401 + HX-Redirect)
    CsrfRejected                 → 403 page
    NotFound                     → 404 page
    an unreachable database or queue (``service.console.is_unreachable``, ``Unavailable``
    included)                    → 503 page + Retry-After
    anything else                → raised on, to the app's handlers (a bug: 500)

A request from htmx gets the same status with a short notice instead of a whole page, since it
lands inside the page that asked. Handlers that can show an error better in place (next to a
field, in the figures) catch it themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, cast

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from hookline.api.console.auth import (
    CsrfRejected,
    SignInRequired,
    is_htmx,
    login_url,
    session_of,
)
from hookline.api.console.rendering import render
from hookline.api.deps import ApiRuntime
from hookline.api.errors import UNAVAILABLE_RETRY_AFTER_S
from hookline.errors import NotFound
from hookline.observability.logging import get_logger
from hookline.service.console import is_unreachable

log = get_logger("hookline.console")

UNAVAILABLE_TITLE = "Database unavailable"
UNAVAILABLE_MESSAGE = (
    "hookline cannot reach its database (or its queue) right now, so there is nothing to show. "
    "Nothing is lost: this page works again as soon as it answers."
)


def sign_in_answer(request: Request) -> Response:
    """How a request without a session is sent to the sign-in page."""
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": login_url(request)})
    next_page = None
    if request.method == "GET":
        next_page = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(login_url(request, next_page=next_page), status_code=303)


def error_page(
    request: Request,
    *,
    status_code: int,
    title: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A page (or, for htmx, a notice) saying what went wrong, in the console's layout."""
    runtime = cast(ApiRuntime, request.app.state.runtime)
    return render(
        request,
        "_notice.html" if is_htmx(request) else "error.html",
        session=session_of(request, runtime),
        status_code=status_code,
        headers=headers,
        title=title,
        message=message,
    )


def unavailable_page(request: Request) -> HTMLResponse:
    return error_page(
        request,
        status_code=503,
        title=UNAVAILABLE_TITLE,
        message=UNAVAILABLE_MESSAGE,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
    )


class ConsoleRoute(APIRoute):
    """A console route: its handler's errors become pages (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_for_people(request: Request) -> Response:
            try:
                return await handle(request)
            except SignInRequired:
                return sign_in_answer(request)
            except CsrfRejected:
                return error_page(
                    request,
                    status_code=403,
                    title="Form refused",
                    message="This form has expired or did not come from this console. "
                    "Go back, reload the page and try again.",
                )
            except NotFound as exc:
                return error_page(request, status_code=404, title="Not found", message=str(exc))
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                log.warning("console.unavailable", path=request.url.path, error=type(exc).__name__)
                return unavailable_page(request)

        return handle_for_people


def console_router() -> APIRouter:
    """A router for console pages: ``ConsoleRoute``s, HTML answers, not in the OpenAPI."""
    return APIRouter(
        route_class=ConsoleRoute, include_in_schema=False, default_response_class=HTMLResponse
    )
