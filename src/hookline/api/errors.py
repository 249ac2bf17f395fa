"""The one place where errors become HTTP answers, and where those answers are documented.

    NotFound          → 404
    Conflict          → 409   (InvalidTransition included)
    PayloadTooLarge   → 413
    Backpressure      → 503 + Retry-After (seconds the queue asks publishers to wait)
    Unavailable       → 503 + Retry-After   (also a lost or refused database connection)
    InvalidCursor     → 422 in FastAPI's validation shape, loc ["query", "cursor"]
    RequestValidationError → FastAPI's own 422 (made safe for NaN inputs)
    a body that is not UTF-8 JSON at all → 422 too (FastAPI alone would say 400)
    any other HooklineError → 500 (a bug: logged with its traceback)

Every body is ``{"detail": "..."}`` except the 422s, which keep FastAPI's ``detail[]`` list.
"""

from __future__ import annotations

import math
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hookline.api.schemas.common import ErrorOut
from hookline.errors import (
    Backpressure,
    Conflict,
    HooklineError,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from hookline.observability.logging import get_logger
from hookline.service.pagination import InvalidCursor

log = get_logger("hookline.api")

UNAVAILABLE_RETRY_AFTER_S: Final = 5
"""What a client is told to wait after a 503 caused by an unreachable database or queue."""

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
    log.warning("api.database_unavailable", path=request.url.path, error=type(exc).__name__)
    return JSONResponse(
        {"detail": "database unavailable"},
        status_code=503,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
    )


def _json_safe(value: Any) -> Any:
    """``value`` as strict JSON can carry it: NaN and infinities spelled as strings, lone
    surrogates (which UTF-8 cannot encode) as backslash escapes."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_json_safe(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, also when the offending input is NaN (which would break the answer)."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette/FastAPI HTTP errors as they are, except a body FastAPI could not even parse
    (bytes that are not UTF-8 JSON, nesting too deep): that is bad input, so a 422."""
    assert isinstance(exc, StarletteHTTPException)
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
    return JSONResponse(
        {
            "detail": [
                {
                    "type": "value_error",
                    "loc": ["query", "cursor"],
                    "msg": f"Value error, {exc}",
                    "input": request.query_params.get("cursor"),
                }
            ]
        },
        status_code=422,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping above on ``app``."""
    app.add_exception_handler(HooklineError, _hookline_error)
    app.add_exception_handler(InvalidCursor, _invalid_cursor)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # A connection lost or refused under a service is an outage, not a bug: 503, not 500.
    for kind in (OperationalError, InterfaceError, PoolTimeoutError, ConnectionError):
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
