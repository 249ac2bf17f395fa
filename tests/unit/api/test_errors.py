"""api/errors.py is the one mapping of the HooklineError tree to HTTP answers."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from hookline.api.errors import (
    ECHO_MAX_DEPTH,
    TRUNCATED,
    error_responses,
    install_error_handlers,
    readable,
    status_for,
)
from hookline.errors import (
    Backpressure,
    ConfigurationError,
    Conflict,
    HooklineError,
    InvalidTransition,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from hookline.service.endpoints import InvalidWebhookField
from hookline.service.pagination import InvalidCursor

RAISED: dict[str, Exception] = {
    "not-found": NotFound("webhook", "wh_x"),
    "conflict": Conflict("it is not failed"),
    "transition": InvalidTransition("succeeded", "pending"),
    "too-large": PayloadTooLarge(300_000, 262_144),
    "backpressure": Backpressure(10, 5, retry_after_s=7),
    "unavailable": Unavailable("queue unreachable"),
    "unmapped": ConfigurationError("should never reach a client"),
    "cursor": InvalidCursor("cursor is not one this API handed out"),
    "field": InvalidWebhookField(
        ("url",), "the host 10.0.0.1 is not a public address", kind="blocked_address", value="x"
    ),
}


class Body(BaseModel):
    name: str


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise/{kind}")
    async def raise_it(kind: str) -> None:
        raise RAISED[kind]

    @app.post("/body")
    async def body(value: Body) -> Body:
        return value

    return app


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://errors.test")


@pytest.mark.parametrize(
    ("kind", "status", "retry_after"),
    [
        ("not-found", 404, None),
        ("conflict", 409, None),
        ("transition", 409, None),
        ("too-large", 413, None),
        ("backpressure", 503, "7"),
        ("unavailable", 503, "5"),
    ],
)
async def test_each_error_has_its_status_and_a_detail(
    client: httpx.AsyncClient, kind: str, status: int, retry_after: str | None
) -> None:
    async with client:
        response = await client.get(f"/raise/{kind}")
    assert response.status_code == status
    assert response.json() == {"detail": str(RAISED[kind])}
    assert response.headers.get("retry-after") == retry_after


async def test_an_unmapped_hookline_error_is_a_500_that_says_nothing(
    client: httpx.AsyncClient,
) -> None:
    async with client:
        response = await client.get("/raise/unmapped")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    assert status_for(HooklineError("x")) == 500


async def test_a_bad_cursor_is_a_422_on_the_cursor(client: httpx.AsyncClient) -> None:
    async with client:
        response = await client.get("/raise/cursor", params={"cursor": "abc"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "cursor"]
    assert error["input"] == "abc"
    assert error["msg"] == "Cursor is not one this API handed out"


async def test_a_field_the_service_refuses_is_a_422_on_that_field(
    client: httpx.AsyncClient,
) -> None:
    async with client:
        response = await client.get("/raise/field")
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "blocked_address",
                "loc": ["body", "url"],
                "msg": "The host 10.0.0.1 is not a public address",
                "input": "x",
            }
        ]
    }


@pytest.mark.parametrize(
    ("error", "msg", "ctx"),
    [
        (
            {
                "type": "value_error",
                "msg": "Value error, must be x",
                "ctx": {"error": ValueError()},
            },
            "Must be x",
            None,
        ),
        (
            {
                "type": "too_long",
                "msg": "Value should have at most 2 items after validation",
                "input": "abc",
                "ctx": {"field_type": "Value", "max_length": 2, "actual_length": 3},
            },
            "String should have at most 2 characters, not 3",
            {"field_type": "String", "max_length": 2, "actual_length": 3},
        ),
        (
            {
                "type": "too_short",
                "msg": "List should have at least 1 item after validation",
                "input": [],
                "ctx": {"field_type": "List", "min_length": 1, "actual_length": 0},
            },
            "List should have at least 1 item, not 0",
            {"field_type": "List", "min_length": 1, "actual_length": 0},
        ),
        (
            {"type": "too_long", "msg": "m", "input": {"a": 1, "b": 2}, "ctx": {"max_length": 1}},
            "Object should have at most 1 entry",
            {"max_length": 1},
        ),
        (
            {"type": "too_long", "msg": "kept as it is", "input": "x", "ctx": {}},
            "Kept as it is",
            None,
        ),
        (
            {
                "type": "string_pattern_mismatch",
                "msg": "String should match pattern '^a+$'",
                "ctx": {"pattern": "^a+$"},
            },
            "String should match pattern '^a+$'",  # short: quoted as pydantic does
            {"pattern": "^a+$"},
        ),
        (
            {
                "type": "string_pattern_mismatch",
                "msg": "String should match pattern '...'",
                "ctx": {"pattern": "^" + "(?:ab|cd)" * 10 + "$"},
            },
            "Does not have the format this field takes (ctx.pattern states it)",
            {"pattern": "^" + "(?:ab|cd)" * 10 + "$"},
        ),
        (
            {"type": "decimal_max_digits", "msg": "m", "ctx": {"max": Decimal("1.5"), "n": None}},
            "M",
            {"max": "1.5", "n": None},
        ),
    ],
)
def test_readable_words_the_message_and_keeps_ctx_plain(
    error: dict[str, object], msg: str, ctx: dict[str, object] | None
) -> None:
    result = readable({"loc": ("body", "f"), **error})
    assert result["msg"] == msg
    assert result.get("ctx") == ctx
    assert result["loc"] == ("body", "f")
    assert result["type"] == error["type"]


@pytest.mark.parametrize(
    "content",
    [b'{"name": "\xff\xfe"}', b"[" * 100_000 + b"]" * 100_000, b'{"name": NaN, "x": 1'],
    ids=["not-utf8", "too-deep", "not-json"],
)
async def test_an_unparseable_body_is_a_422_not_a_400(
    client: httpx.AsyncClient, content: bytes
) -> None:
    async with client:
        response = await client.post(
            "/body", content=content, headers={"content-type": "application/json"}
        )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


async def test_a_validation_error_echoing_nan_or_a_lone_surrogate_still_answers(
    client: httpx.AsyncClient,
) -> None:
    async with client:
        nan = await client.post(
            "/body", content=b'{"name": NaN}', headers={"content-type": "application/json"}
        )
        surrogate = await client.post(
            "/body", content=b'{"name": ["\\ud800"]}', headers={"content-type": "application/json"}
        )
    assert nan.status_code == 422
    assert nan.json()["detail"][0]["input"] == "nan"
    assert surrogate.status_code == 422
    assert surrogate.json()["detail"][0]["input"] == ["\\ud800"]


def test_documented_error_responses() -> None:
    documented = error_responses(401, 404, 409, 413, 503)
    assert set(documented) == {401, 404, 409, 413, 503}
    assert "Retry-After" in documented[503]["headers"]
    assert "WWW-Authenticate" in documented[401]["headers"]
    assert all(entry["description"] for entry in documented.values())


async def test_a_validation_error_echoing_deep_input_answers_with_the_echo_cut_off() -> None:
    # Given a validation error whose input nests far deeper than any stack would allow
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/deep")
    async def raise_deep() -> None:
        raise RequestValidationError(
            [{"type": "x", "loc": ("body", "v"), "msg": "m", "input": deep}]
        )

    # When it becomes a response
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://errors.test") as client:
        response = await client.get("/deep")

    # Then it is the 422, the echo cut off ECHO_MAX_DEPTH levels down (counted from detail)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "v"]
    echo, levels = error["input"], 2  # detail list, error object
    while isinstance(echo, list):
        (echo,) = echo
        levels += 1
    assert (echo, levels) == (TRUNCATED, ECHO_MAX_DEPTH)


async def test_a_405_names_every_method_of_the_path_and_options_is_204() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/thing")
    async def read() -> None: ...

    @app.delete("/thing")
    async def remove() -> None: ...

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://errors.test") as client:
        put = await client.put("/thing")
        options = await client.options("/thing")
    assert (put.status_code, put.headers["allow"]) == (405, "GET, DELETE, OPTIONS")
    assert (options.status_code, options.headers["allow"]) == (204, "GET, DELETE, OPTIONS")
