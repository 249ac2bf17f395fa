"""How requests reach the handlers: the JSON body's nesting limit, unknown query parameters,
and the methods a path answers (``OPTIONS``, and ``Allow`` on every ``405``).

``ApiRoute`` is the route class of every router. Before FastAPI validates anything it refuses

- a JSON body nested deeper than ``MAX_JSON_DEPTH`` below its top level: a ``422`` whose ``loc``
  names the top-level field (``["body", "payload"]``), decided by an iterative walk, so no body
  reaches a recursive validator or error formatter;
- a query parameter the operation does not declare: a ``422`` on ``["query", name]``, the way an
  unknown body field is (a misspelt filter must not silently widen a list).

``allowed_methods`` names every method the OpenAPI document gives a path, for the ``Allow`` of
the ``405`` a wrong method gets (Starlette alone names only the methods of the one route it
matched) and of the ``204`` that answers ``OPTIONS`` (``api.errors`` sends both).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.routing import compile_path

from hookline.api.schemas.common import MAX_JSON_DEPTH, nesting_exceeds

_ALLOWED_METHODS_STATE: Final = "allowed_methods"
_METHOD_ORDER: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class JsonTooDeep(ValueError):
    """A request body nested deeper than ``MAX_JSON_DEPTH`` below its top level."""

    def __init__(self, loc: tuple[str, ...]) -> None:
        super().__init__(f"must not nest arrays/objects deeper than {MAX_JSON_DEPTH} levels")
        self.loc = loc

    def as_error(self) -> dict[str, Any]:
        """The error in FastAPI's ``detail[]`` shape (the value is not echoed back)."""
        return {"type": "value_error", "loc": list(self.loc), "msg": f"Value error, {self}"}


def check_body_depth(body: Any) -> None:
    """``JsonTooDeep`` naming the first top-level field of ``body`` that nests too deep."""
    if isinstance(body, dict):
        for name, value in body.items():
            if nesting_exceeds(value, MAX_JSON_DEPTH):
                raise JsonTooDeep(("body", str(name)))
    elif nesting_exceeds(body, MAX_JSON_DEPTH + 1):
        raise JsonTooDeep(("body",))


def too_deep_in_raw(raw: bytes) -> tuple[str, ...] | None:
    """The ``loc`` of the first value in the raw JSON ``raw`` that nests deeper than
    ``check_body_depth`` allows, or None; decided on the bytes, before any parser runs.

    The stdlib parser is recursive: how deep it gets before ``RecursionError`` depends on how
    deep the stack already is, so a body between about 600 and 1000 levels would be refused on
    ``body`` or on its field depending on the caller. Scanning first makes the answer the same
    everywhere (the scan skips strings, so brackets inside them do not count).
    """
    depth = 0
    in_string = escaped = expecting_key = False
    top_is_object = False
    key_start: int | None = None
    key = b""
    for index, byte in enumerate(raw):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
                if key_start is not None:
                    key, key_start = raw[key_start:index], None
            continue
        if byte == 0x22:
            in_string = True
            if depth == 1 and top_is_object and expecting_key:
                key_start, expecting_key = index + 1, False
        elif byte in b"[{":
            depth += 1
            if depth == 1:
                top_is_object = expecting_key = byte == 0x7B
            elif top_is_object and depth - 1 > MAX_JSON_DEPTH:
                return ("body", _decoded_key(key))
            elif not top_is_object and depth > MAX_JSON_DEPTH + 1:
                return ("body",)
        elif byte in b"]}":
            depth -= 1
        elif byte == 0x2C and depth == 1 and top_is_object:  # comma between top-level fields
            expecting_key = True
    return None


def _decoded_key(key: bytes) -> str:
    try:
        decoded = json.loads(b'"' + key + b'"')
    except ValueError:
        return key.decode("utf-8", "replace")
    return str(decoded)


class _DepthCheckedRequest(Request):
    """A request whose JSON body nests no deeper than ``check_body_depth`` allows."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            raw = await self.body()
            # Too few brackets to nest that deep: skip the scan (almost every request).
            if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:
                loc = too_deep_in_raw(raw)
                if loc is not None:
                    raise JsonTooDeep(loc)
            value = await super().json()
            if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:
                check_body_depth(value)
        return self._json


class ApiRoute(APIRoute):
    """The route of every API operation: depth-checked JSON body, declared query only."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        declared = _query_names(self.dependant)

        async def handle_checked(request: Request) -> Response:
            unknown = [
                {
                    "type": "extra_forbidden",
                    "loc": ["query", name],
                    "msg": "Extra inputs are not permitted",
                    "input": value,
                }
                for name, value in request.query_params.multi_items()
                if name not in declared
            ]
            if unknown:
                raise RequestValidationError(unknown)
            return await handle(_DepthCheckedRequest(request.scope, request.receive))

        return handle_checked


def _query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters an operation declares, its dependencies' included."""
    names: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        names.update(param.alias for param in current.query_params)
        pending.extend(current.dependencies)
    return frozenset(names)


def allowed_methods(request: Request) -> str | None:
    """The ``Allow`` value of the documented path ``request`` is on (its methods in the OpenAPI
    document, and OPTIONS), or None for a path the document does not have."""
    table: list[tuple[re.Pattern[str], str]] | None = getattr(
        request.app.state, _ALLOWED_METHODS_STATE, None
    )
    if table is None:
        table = _method_table(request.app)
        setattr(request.app.state, _ALLOWED_METHODS_STATE, table)
    path = request.scope["path"]
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    for template, allow in table:
        if template.match(path):
            return allow
    return None


def _method_table(app: FastAPI) -> list[tuple[re.Pattern[str], str]]:
    table = []
    for template, operations in app.openapi()["paths"].items():
        methods = {method.upper() for method in operations}
        allow = ", ".join(m for m in _METHOD_ORDER if m in methods or m == "OPTIONS")
        table.append((compile_path(template)[0], allow))
    return table
