"""Who may see a console page, and which posted forms are accepted.

Pages depend on ``SessionDep``: without a valid session cookie the request never reaches the
handler (``SignInRequired``: a 303 to the sign-in page, or for an htmx request a 401 with
``HX-Redirect``, since a redirect would be followed inside the fragment). Form posts depend on
``CheckedFormDep``: the session, and a ``csrf`` field (or ``X-CSRF-Token`` header, for htmx
requests without a form) equal to the session's CSRF token, else ``CsrfRejected`` (403).

Forms are read here, without python-multipart: ``application/x-www-form-urlencoded`` only
(what a ``<form method="post">`` and htmx send); any other body reads as an empty form.
"""

from __future__ import annotations

import re
from typing import Annotated, Final
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends, Request, Response
from starlette.datastructures import FormData, UploadFile

from hookline.api.console.rendering import console_prefix
from hookline.api.console.session import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    LOGIN_NONCE_TTL_S,
    SESSION_COOKIE,
    SESSION_TTL_S,
    ConsoleSession,
    csrf_matches,
    verify_session,
)
from hookline.api.deps import ApiRuntime, RuntimeDep

CSRF_HEADER: Final = "X-CSRF-Token"
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS: Final = 10_000
"""More fields than this reads as an empty form (and so fails the CSRF check)."""
LOGIN_PATH: Final = "/login"
NEXT_FIELD: Final = "next"
_LOCAL_PAGE: Final = re.compile(r"/[A-Za-z0-9._~/-]*(\?[A-Za-z0-9._~=&%+*-]*)?")
"""A path (and query) of this site with no scheme, host, backslash or quote in it."""


class SignInRequired(Exception):
    """No valid session: the route answers with the way to the sign-in page."""


class CsrfRejected(Exception):
    """A form post without the right CSRF token: refused with 403."""


def is_htmx(request: Request) -> bool:
    """Whether htmx sent ``request`` (it asks for a fragment, not a page)."""
    return request.headers.get("HX-Request") == "true"


def is_https(request: Request) -> bool:
    """Whether the request came over TLS. ``request.url.scheme`` is the ASGI scheme, which
    uvicorn already derives from ``X-Forwarded-Proto`` for the proxies it trusts
    (``--forwarded-allow-ips``, loopback by default); the app adds no trust of its own."""
    return request.url.scheme == "https"


def safe_next(request: Request, value: str | None) -> str:
    """Where to go after signing in: ``value`` when it is a console page of this site (never
    another host: ``//evil``, ``https://…`` and ``/\\evil`` are refused), else the overview."""
    home = console_prefix(request) + "/"
    if value is None or _LOCAL_PAGE.fullmatch(value) is None or "//" in value:
        return home
    if not value.startswith(home):
        return home
    return value


def login_url(request: Request, *, next_page: str | None = None) -> str:
    """The sign-in page, remembering ``next_page`` (a console page) when it is not the home."""
    url = console_prefix(request) + LOGIN_PATH
    home = console_prefix(request) + "/"
    if next_page is not None and safe_next(request, next_page) != home:
        url += "?" + urlencode({NEXT_FIELD: next_page})
    return url


def session_of(request: Request, runtime: ApiRuntime) -> ConsoleSession | None:
    """The request's valid session, or None (checked against the runtime's clock)."""
    return verify_session(
        request.cookies.get(SESSION_COOKIE),
        runtime.api_tokens,
        now_s=runtime.clock.now().timestamp(),
    )


async def require_session(request: Request, runtime: RuntimeDep) -> ConsoleSession:
    """The valid session of the request; ``SignInRequired`` without one."""
    session = session_of(request, runtime)
    if session is None:
        raise SignInRequired
    return session


SessionDep = Annotated[ConsoleSession, Depends(require_session)]


async def form_fields(request: Request) -> FormData:
    """The posted URL-encoded form (an empty one for any other body). Repeated names keep
    every value (``getlist``); ``get`` returns the first."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        return FormData()
    body = (await request.body()).decode("utf-8", "replace")
    try:
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:
        return FormData()
    fields: list[tuple[str, str | UploadFile]] = list(pairs)
    return FormData(fields)


async def checked_form(request: Request, session: SessionDep) -> FormData:
    """The posted form of a signed-in person, after its CSRF token is checked."""
    form = await form_fields(request)
    given = form.get(CSRF_FIELD)
    if not isinstance(given, str):
        given = request.headers.get(CSRF_HEADER)
    if not csrf_matches(given, session.csrf):
        raise CsrfRejected
    return form


CheckedFormDep = Annotated[FormData, Depends(checked_form)]


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    _set_cookie(response, request, SESSION_COOKIE, value, max_age_s=SESSION_TTL_S)


def clear_session_cookie(response: Response, request: Request) -> None:
    _clear_cookie(response, request, SESSION_COOKIE)


def set_login_cookie(response: Response, request: Request, nonce: str) -> None:
    _set_cookie(response, request, LOGIN_COOKIE, nonce, max_age_s=LOGIN_NONCE_TTL_S)


def clear_login_cookie(response: Response, request: Request) -> None:
    _clear_cookie(response, request, LOGIN_COOKIE)


def _set_cookie(
    response: Response, request: Request, name: str, value: str, *, max_age_s: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age_s,
        path=console_prefix(request),
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )


def _clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name,
        path=console_prefix(request),
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )
