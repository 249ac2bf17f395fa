"""api/routing.py: JSON nesting limit, unknown query parameters, OPTIONS and ``Allow``."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from hookline.api.openapi import openapi_document
from hookline.api.schemas.common import MAX_JSON_DEPTH
from hookline.storage.models import Endpoint, Event
from tests.integration.api.helpers import UNKNOWN, Api, assert_422

JSON = {"content-type": "application/json"}


def nested(depth: int, leaf: str = "1") -> str:
    """JSON text of ``depth`` arrays around ``leaf``."""
    return "[" * depth + leaf + "]" * depth


async def count(api: Api, model: type[Any]) -> int:
    async with api.runtime.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


# --- nesting depth ----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 600, 900, 5000])
async def test_a_payload_nested_too_deep_is_422_on_payload_and_stores_nothing(
    sqlite_api: Api, depth: int
) -> None:
    # Given a payload nested deeper than the limit (600 once crashed the 422 itself: 500)
    body = '{"event_type": "x", "payload": ' + nested(depth) + "}"

    # When it is published
    response = await sqlite_api.client.post("/events", content=body, headers=JSON)

    # Then it is refused on the payload (or, past the JSON parser's own limit, on the body)
    # and no event exists
    assert response.status_code == 422, response.text
    locs = [error["loc"] for error in response.json()["detail"]]
    assert locs == [["body", "payload"]] or (depth == 5000 and locs == [["body"]]), locs
    assert await count(sqlite_api, Event) == 0


async def test_a_payload_nested_exactly_to_the_limit_is_accepted(sqlite_api: Api) -> None:
    body = '{"event_type": "x", "payload": ' + nested(MAX_JSON_DEPTH) + "}"
    response = await sqlite_api.client.post("/events", content=body, headers=JSON)
    assert response.status_code == 202, response.text
    event = await sqlite_api.client.get(f"/events/{response.json()['id']}")
    payload = event.json()["payload"]
    for _ in range(MAX_JSON_DEPTH):
        payload = payload[0]
    assert payload == 1


@pytest.mark.parametrize(
    ("method", "path", "field", "fields"),
    [
        ("POST", "/webhooks", "headers", '"url": "https://example.com/h"'),
        ("POST", "/webhooks", "event_types", '"url": "https://example.com/h"'),
        ("POST", "/webhooks", "unknown", '"url": "https://example.com/h"'),
        ("POST", "/webhooks", "retry_config", '"url": "https://example.com/h"'),
        ("PATCH", "/webhooks/{id}", "headers", '"description": "d"'),
        ("PUT", "/webhooks/{id}/retry-config", "disable_on_status", '"max_retries": 1'),
        ("POST", "/webhooks/{id}/enable", "replay_cancelled", ""),
        ("POST", "/webhooks/{id}/secret/rotate", "secret", ""),
        ("POST", "/dead-letters/replay", "since", '"webhook_id": null'),
        ("POST", "/events", "event_type", '"payload": 1'),
    ],
)
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 900])
async def test_any_body_field_nested_too_deep_is_422_naming_it_and_changes_nothing(
    sqlite_api: Api, method: str, path: str, field: str, fields: str, depth: int
) -> None:
    # Given a webhook, and a body whose one field nests deeper than the limit
    webhook = await sqlite_api.create_webhook()
    deep = nested(depth, '{"a": 1}')
    body = "{" + (fields + ", " if fields else "") + f'"{field}": ' + deep + "}"
    before = (await sqlite_api.client.get(f"/webhooks/{webhook['id']}")).json()

    # When it is sent
    url = path.replace("{id}", webhook["id"])
    response = await sqlite_api.client.request(method, url, content=body, headers=JSON)

    # Then it is refused on that field, and nothing changed
    assert_422(response, "body", field)
    assert (await sqlite_api.client.get(f"/webhooks/{webhook['id']}")).json() == before
    assert await count(sqlite_api, Endpoint) == 1
    assert await count(sqlite_api, Event) == 0


async def test_a_deep_body_that_is_not_an_object_is_422_on_body(sqlite_api: Api) -> None:
    response = await sqlite_api.client.post("/events", content=nested(900), headers=JSON)
    assert_422(response, "body")


async def test_a_deep_value_in_a_field_that_wants_a_string_is_a_plain_422(
    sqlite_api: Api,
) -> None:
    # Within the limit (headers object + 63 levels) the value reaches validation, and the
    # 422 echoes it back safely
    deep: dict[str, Any] = {"a": 1}
    for _ in range(MAX_JSON_DEPTH - 2):
        deep = {"a": deep}
    response = await sqlite_api.client.post(
        "/webhooks", json={"url": "https://example.com/h", "headers": {"X-A": deep}}
    )
    assert_422(response, "body", "headers", "X-A")


# --- query parameters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/webhooks", {"statu": "active"}),
        ("/deliveries", {"webhook": UNKNOWN["wh"], "limit": 5}),
        ("/dead-letters", {"cursor": None, "since": "2026-01-01T00:00:00Z"}),
        (f"/webhooks/{UNKNOWN['wh']}", {"expand": "secret"}),
        ("/healthz", {"verbose": "1"}),
    ],
)
async def test_an_undeclared_query_parameter_is_422_naming_it(
    sqlite_api: Api, path: str, params: dict[str, Any]
) -> None:
    # A misspelt filter must not silently widen a list
    response = await sqlite_api.client.get(path, params=params)
    unknown = next(name for name in params if name not in {"limit", "cursor"})
    assert_422(response, "query", unknown)


async def test_declared_query_parameters_still_work(sqlite_api: Api) -> None:
    await sqlite_api.create_webhook()
    response = await sqlite_api.client.get("/webhooks", params={"status": "active", "limit": 1})
    assert response.status_code == 200
    assert len(response.json()["data"]) == 1


# --- methods ----------------------------------------------------------------------------------


def documented_methods() -> list[tuple[str, set[str]]]:
    paths = openapi_document()["paths"]
    return [(template, {m.upper() for m in ops}) for template, ops in paths.items()]


def concrete(template: str) -> str:
    return (
        template.replace("{webhook_id}", UNKNOWN["wh"])
        .replace("{event_id}", UNKNOWN["evt"])
        .replace("{delivery_id}", UNKNOWN["dlv"])
    )


def allow_of(response: Any) -> set[str]:
    return {method.strip() for method in response.headers["allow"].split(",")}


@pytest.mark.parametrize(("template", "methods"), documented_methods())
async def test_options_answers_204_with_every_documented_method(
    sqlite_api: Api, template: str, methods: set[str]
) -> None:
    response = await sqlite_api.client.options(concrete(template), headers={"Authorization": ""})
    assert response.status_code == 204
    assert response.content == b""
    assert allow_of(response) == methods | {"OPTIONS"}


@pytest.mark.parametrize(("template", "methods"), documented_methods())
async def test_an_undocumented_method_is_405_with_every_documented_method(
    sqlite_api: Api, template: str, methods: set[str]
) -> None:
    wrong = next(m for m in ("PUT", "PATCH", "DELETE", "POST", "TRACE") if m not in methods)
    response = await sqlite_api.client.request(wrong, concrete(template))
    assert response.status_code == 405
    assert allow_of(response) == methods | {"OPTIONS"}


async def test_options_on_an_unknown_path_is_404(sqlite_api: Api) -> None:
    assert (await sqlite_api.client.options("/nowhere")).status_code == 404
