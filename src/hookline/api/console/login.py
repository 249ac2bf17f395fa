"""Signing in with an API token, and signing out.

``GET /ui/login`` shows the form and sets its double-submit nonce cookie (reusing a valid one,
so two open sign-in tabs both work). ``POST /ui/login``: a missing or mismatched nonce is a 403
page; a token that is none of the configured ones re-renders the form with the error next to the
field and status 401 (an empty field too), setting no session; the right one sets the session
cookie and answers 303 to the page asked for (``next``, a console page) or the overview. The
token is never logged, echoed into the form, or put in the cookie.

``POST /ui/logout`` (CSRF-checked) clears the cookie and answers 303 to the sign-in page. The
session is stateless, so a copy of the cookie taken before stays valid until it expires (12 h)
or its token is removed from the configuration.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Final

from fastapi import Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from hookline.api.auth import token_matches
from hookline.api.console.auth import (
    NEXT_FIELD,
    CheckedFormDep,
    clear_login_cookie,
    clear_session_cookie,
    form_fields,
    login_url,
    safe_next,
    session_of,
    set_login_cookie,
    set_session_cookie,
)
from hookline.api.console.rendering import render
from hookline.api.console.routing import console_router, error_page
from hookline.api.console.session import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    is_login_nonce,
    new_login_nonce,
    sign_session,
)
from hookline.api.deps import RuntimeDep
from hookline.observability.logging import get_logger

log = get_logger("hookline.console")

router = console_router()

TOKEN_FIELD: Final = "token"  # noqa: S105 - the name of a form field
ERROR_EMPTY: Final = "Enter an API token."
ERROR_UNKNOWN: Final = "This is not one of this server's API tokens (HOOKLINE_API_TOKENS)."


def _login_form(
    request: Request, *, nonce: str, next_page: str, error: str | None, status_code: int
) -> HTMLResponse:
    response = render(
        request,
        "login.html",
        session=None,
        status_code=status_code,
        csrf=nonce,
        next_page=next_page,
        error=error,
        token_field=TOKEN_FIELD,
        next_field=NEXT_FIELD,
    )
    set_login_cookie(response, request, nonce)  # (re)starts its lifetime
    return response


@router.get("/login")
async def login_page(
    request: Request,
    runtime: RuntimeDep,
    next_page: Annotated[str | None, Query(alias=NEXT_FIELD)] = None,
) -> Response:
    """The sign-in form; someone already signed in goes on to the overview."""
    if session_of(request, runtime) is not None:
        return RedirectResponse(safe_next(request, next_page), status_code=303)
    nonce = request.cookies.get(LOGIN_COOKIE)
    if not is_login_nonce(nonce):
        nonce = new_login_nonce()
    assert nonce is not None
    return _login_form(
        request, nonce=nonce, next_page=safe_next(request, next_page), error=None, status_code=200
    )


@router.post("/login")
async def login(request: Request, runtime: RuntimeDep) -> Response:
    """Check the nonce, then the token; set the session cookie when it is right."""
    form = await form_fields(request)
    nonce = request.cookies.get(LOGIN_COOKIE)
    posted_nonce = form.get(CSRF_FIELD)
    if (
        not is_login_nonce(nonce)
        or not isinstance(posted_nonce, str)
        or not hmac.compare_digest(posted_nonce.encode(), str(nonce).encode())
    ):
        return error_page(
            request,
            status_code=403,
            title="Sign-in form expired",
            message="This sign-in form has expired or did not come from this console. "
            "Reload the sign-in page and try again.",
        )
    assert nonce is not None
    posted_next = form.get(NEXT_FIELD)
    next_page = safe_next(request, posted_next if isinstance(posted_next, str) else None)
    posted_token = form.get(TOKEN_FIELD)
    token = posted_token.strip() if isinstance(posted_token, str) else ""
    if not token or not token_matches(token, runtime.api_tokens):
        log.info("console.sign_in_refused", client=_client(request), empty=not token)
        return _login_form(
            request,
            nonce=nonce,
            next_page=next_page,
            error=ERROR_UNKNOWN if token else ERROR_EMPTY,
            status_code=401,
        )
    response = RedirectResponse(next_page, status_code=303)
    set_session_cookie(
        response, request, sign_session(token, now_s=runtime.clock.now().timestamp())
    )
    clear_login_cookie(response, request)
    log.info("console.signed_in", client=_client(request))
    return response


@router.post("/logout")
async def logout(request: Request, form: CheckedFormDep) -> Response:
    """End the session in this browser and go to the sign-in page."""
    response = RedirectResponse(login_url(request), status_code=303)
    clear_session_cookie(response, request)
    log.info("console.signed_out", client=_client(request))
    return response


def _client(request: Request) -> str | None:
    return request.client.host if request.client is not None else None
