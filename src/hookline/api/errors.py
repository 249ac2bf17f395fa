"""The one place where errors become HTTP answers, and where those answers are documented.

    NotFound          → 404
    Conflict          → 409   (InvalidTransition included)
    PayloadTooLarge   → 413
    Backpressure      → 503 + Retry-After (seconds the queue asks publishers to wait)
    Unavailable       → 503 + Retry-After   (also any database, Redis or network error that
                                          ``storage.db.is_outage`` calls an outage: refused,
                                          reset, restarting server, pool timeout)
    InvalidCursor     → 422 in FastAPI's validation shape, loc ["query", "cursor"]
    InvalidWebhookField → 422 in that shape, loc ["body", <field>...] (a blocked URL, a
                        masked credential sent as a value)
    RequestValidationError → FastAPI's own 422 (made safe for any input, see below)
    a body that is not UTF-8 JSON at all → 422 too (FastAPI alone would say 400)
    a body nested deeper than MAX_JSON_DEPTH → 422 naming the top-level field (api.routing)
    405               → with ``Allow`` naming every method of the path, not one route's;
                        OPTIONS (which no route declares) → 204 with the same ``Allow``
    any other HooklineError → 500 (a bug: logged with its traceback)

Every body is ``{"detail": "..."}`` except the 422s, which keep FastAPI's ``detail[]`` list.
A 422 echoes the offending input back, so building it must not fail on any input: the echo is
made JSON-safe by an iterative walk (no recursion at all) that cuts it off ``ECHO_MAX_DEPTH``
levels down.

Every 422 ``msg`` is a sentence for a person (``readable``): lengths counted in characters for
text, items for lists and entries for objects, a pattern named by the rule it states rather
than quoted, a refusal's reason without pydantic's "Value error, " in front; ``ctx`` holds only
strings and numbers (pydantic puts the exception object there, which JSON shows as ``{}``).
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from asyncpg import InterfaceError as AsyncpgInterfaceError
from asyncpg import PostgresError
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hookline.api.routing import JsonTooDeep, allowed_methods
from hookline.api.schemas.common import NO_NUL_PATTERN, ErrorOut
from hookline.api.schemas.urls import WEBHOOK_URL_PATTERN
from hookline.api.schemas.webhooks import (
    HEADER_NAME_PATTERN,
    HEADER_VALUE_PATTERN,
    URL_RULE,
    WHSEC_PATTERN,
)
from hookline.errors import (
    Backpressure,
    Conflict,
    HooklineError,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from hookline.observability.logging import get_logger
from hookline.service.endpoints import InvalidWebhookField
from hookline.service.pagination import InvalidCursor
from hookline.storage.db import is_outage

log = get_logger("hookline.api")

UNAVAILABLE_RETRY_AFTER_S: Final = 5
"""What a client is told to wait after a 503 caused by an unreachable database or queue."""
ECHO_MAX_DEPTH: Final = 16
"""How deep a 422 echoes an offending input back (counted from ``detail``); deeper is "…"."""
TRUNCATED: Final = "…"

PATTERN_RULES: Final[dict[str, str]] = {
    NO_NUL_PATTERN: "must not contain NUL characters",
    HEADER_NAME_PATTERN: "must be a header name: letters, digits and !#$%&'*+-.^_`|~ only",
    HEADER_VALUE_PATTERN: "must not contain NUL, CR or LF characters",
    WHSEC_PATTERN: "must be whsec_ followed by the padded base64 of 24 to 64 random bytes",
    WEBHOOK_URL_PATTERN: URL_RULE,
}
"""What each pattern the API's schemas use means, in words (the 422 says this, not the regex)."""
_ID_PATTERN: Final = re.compile(r"^\^([a-z]+)_\[0-9A-HJKMNP-TV-Z\]\{26\}\$$")
_QUOTABLE_PATTERN_MAX_CHARS: Final = 60
"""A longer pattern that has no rule in words is not quoted in the message (only in ctx)."""
_VALUE_ERROR_PREFIX: Final = "Value error, "
_LENGTH_TYPES: Final = frozenset({"too_long", "too_short", "string_too_long", "string_too_short"})

_STATUS: Final[tuple[tuple[type[HooklineError], int], ...]] = (
    (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (Backpressure, 503),
    (Unavailable, 503),
)

_DESCRIPTIONS: Final[dict[int, str]] = {
    401: "Missing or wrong bearer token (`Authorization: Bearer <token>`).",
    404: "No resource with this id.",
    409: "The request conflicts with the resource's current state.",
    413: "The payload is larger than MAX_PAYLOAD_BYTES.",
    503: "The database or the queue is unavailable, or (POST /events) the queue is full: "
    "try again after Retry-After seconds.",
}


def status_for(error: HooklineError) -> int:
    """The HTTP status of a hookline error (500 for one that should never reach a client)."""
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


async def _hookline_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HooklineError)
    status = status_for(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, Backpressure):
        headers["Retry-After"] = str(max(1, exc.retry_after_s))
    elif isinstance(exc, Unavailable):
        headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
    if status == 500:
        log.error("api.unmapped_error", path=request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)
    return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database, Redis or network error under a service: an outage is a 503 the client
    retries after ``Retry-After``; anything else is a bug, logged and answered 500."""
    if not is_outage(exc):
        log.error("api.unmapped_error", path=request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)
    log.warning("api.database_unavailable", path=request.url.path, error=type(exc).__name__)
    return JSONResponse(
        {"detail": "database or queue unavailable"},
        status_code=503,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
    )


def _json_safe(value: Any) -> Any:
    """``value`` as strict JSON can carry it, cut off ``ECHO_MAX_DEPTH`` containers down: NaN
    and infinities spelled as strings, lone surrogates (which UTF-8 cannot encode) as backslash
    escapes, other objects through ``jsonable_encoder``. Iterative, so no input is too deep."""
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(root, 0, value, 0)]
    while stack:
        parent, key, item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            parent[key] = str(item)
        elif isinstance(item, str):
            parent[key] = item.encode("utf-8", "backslashreplace").decode("utf-8")
        elif item is None or isinstance(item, bool | int | float):
            parent[key] = item
        elif isinstance(item, dict | list | tuple):
            if depth >= ECHO_MAX_DEPTH:
                parent[key] = TRUNCATED
                continue
            pairs: list[tuple[Any, Any]]
            if isinstance(item, dict):
                pairs = [(_json_key(name), child) for name, child in item.items()]
                container: Any = dict.fromkeys(name for name, _ in pairs)  # keeps the order
            else:
                pairs = list(enumerate(item))
                container = [None] * len(pairs)
            parent[key] = container
            stack.extend((container, name, child, depth + 1) for name, child in pairs)
        else:  # an exception in ctx, a Decimal, ...: encoded alone, then walked like the rest
            stack.append((parent, key, _encoded(item), depth))
    return root[0]


def _encoded(item: Any) -> Any:
    try:
        encoded = jsonable_encoder(item)
    except ValueError:  # nothing jsonable_encoder knows how to read
        return str(item)
    if encoded is None or isinstance(encoded, dict | list | str | int | float | bool):
        return encoded
    return str(item)


def _json_key(name: Any) -> str:
    text = name if isinstance(name, str) else str(name)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def readable(error: dict[str, Any]) -> dict[str, Any]:
    """One entry of a 422's ``detail[]`` with a ``msg`` a person can read and a ``ctx`` of
    strings and numbers only (see the module docstring); ``type`` and ``loc`` unchanged."""
    result = dict(error)
    kind = str(result.get("type", ""))
    message = str(result.get("msg", ""))
    ctx = result.get("ctx")
    # A value_error's ctx is the exception whose message msg already is.
    ctx = dict(ctx) if isinstance(ctx, dict) and kind != "value_error" else {}
    if kind in _LENGTH_TYPES:
        message = _length_message(kind, result.get("input"), ctx) or message
    elif kind == "string_pattern_mismatch":
        message = _pattern_message(str(ctx.get("pattern", ""))) or message
    message = message.removeprefix(_VALUE_ERROR_PREFIX)
    result["msg"] = message[:1].upper() + message[1:]
    plain = {
        str(key): value if value is None or isinstance(value, str | int | float) else str(value)
        for key, value in ctx.items()
    }
    if plain:
        result["ctx"] = plain
    else:
        result.pop("ctx", None)
    return result


def _length_message(kind: str, value: Any, ctx: dict[str, Any]) -> str | None:
    most = kind.endswith("too_long")
    limit = ctx.get("max_length" if most else "min_length")
    if not isinstance(limit, int):
        return None
    if isinstance(value, str):
        noun, unit = "String", "character"
    elif isinstance(value, dict):
        noun, unit = "Object", "entry"
    else:
        noun, unit = "List", "item"
    units = unit if limit == 1 else ("entries" if unit == "entry" else f"{unit}s")
    if "field_type" in ctx:
        ctx["field_type"] = noun  # pydantic calls text "Value"
    actual = ctx.get("actual_length")
    tail = f", not {actual}" if isinstance(actual, int) else ""
    return f"{noun} should have at {'most' if most else 'least'} {limit} {units}{tail}"


def _pattern_message(pattern: str) -> str | None:
    if (rule := PATTERN_RULES.get(pattern)) is not None:
        return rule
    if (id_kind := _ID_PATTERN.match(pattern)) is not None:
        return f"must be a {id_kind.group(1)}_ id: the prefix and 26 Crockford base32 characters"
    if len(pattern) > _QUOTABLE_PATTERN_MAX_CHARS:
        return "does not have the format this field takes (ctx.pattern states it)"
    return None


def readable_errors(errors: Any) -> list[Any]:
    """``readable`` applied to each error of a 422's ``detail[]``."""
    return [readable(error) if isinstance(error, dict) else error for error in errors]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, whatever the offending input is (NaN, lone surrogates, deep nesting)."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _json_safe(readable_errors(exc.errors()))}, status_code=422)


async def _invalid_webhook_field(request: Request, exc: Exception) -> JSONResponse:
    """A field the service refused after the schema took it (nothing was written)."""
    assert isinstance(exc, InvalidWebhookField)
    error = {"type": exc.kind, "loc": ["body", *exc.loc], "msg": str(exc), "input": exc.value}
    return JSONResponse({"detail": _json_safe([readable(error)])}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette/FastAPI HTTP errors as they are, except a body FastAPI could not even parse
    (bytes that are not UTF-8 JSON, nesting too deep): that is bad input, so a 422; and a 405
    names every method of the path in ``Allow``, or is the 204 that answers OPTIONS."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, JsonTooDeep):
        return JSONResponse({"detail": [readable(exc.__cause__.as_error())]}, status_code=422)
    if exc.status_code == 405:
        allow = allowed_methods(request)
        if allow is not None and request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": allow})
        if allow is not None:
            exc.headers = {**(exc.headers or {}), "Allow": allow}
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
        reason = type(exc.__cause__).__name__
        detail = [
            {
                "type": "json_invalid",
                "loc": ["body"],
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": reason},
            }
        ]
        return JSONResponse({"detail": detail}, status_code=422)
    return await http_exception_handler(request, exc)


async def _invalid_cursor(request: Request, exc: Exception) -> JSONResponse:
    error = {
        "type": "value_error",
        "loc": ["query", "cursor"],
        "msg": str(exc),
        "input": request.query_params.get("cursor"),
    }
    return JSONResponse({"detail": [readable(error)]}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping above on ``app``."""
    app.add_exception_handler(HooklineError, _hookline_error)
    app.add_exception_handler(InvalidCursor, _invalid_cursor)
    app.add_exception_handler(InvalidWebhookField, _invalid_webhook_field)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # A connection lost or refused under a service is an outage, not a bug: 503, not 500.
    # (SQLAlchemyError covers the driver's own errors it wraps: asyncpg's CannotConnectNowError
    # during a restart arrives as a DBAPIError, not as an OperationalError; asyncpg's own are
    # listed for the rare path that does not wrap them.)
    outages = (SQLAlchemyError, RedisError, PostgresError, AsyncpgInterfaceError, OSError)
    for kind in (*outages, TimeoutError):
        app.add_exception_handler(kind, _database_error)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses (422 FastAPI documents itself)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorOut, "description": _DESCRIPTIONS[status]}
        if status == 503:
            entry["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before trying again.",
                    "schema": {"type": "integer"},
                }
            }
        if status == 401:
            entry["headers"] = {
                "WWW-Authenticate": {
                    "description": "Always `Bearer`.",
                    "schema": {"type": "string"},
                }
            }
        responses[status] = entry
    return responses
