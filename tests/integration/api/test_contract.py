"""API.md, row by row: auth, conventions and the webhook endpoints, on SQLite and PostgreSQL.

Events, deliveries, dead letters and operations are in ``test_contract_deliveries.py``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hookline.api.openapi import openapi_document
from tests.integration.api.conftest import ROTATION_GRACE_S, client_for
from tests.integration.api.helpers import (
    DEFAULT_RETRY_CONFIG,
    UNKNOWN,
    WEBHOOK_FIELDS,
    Api,
    assert_422,
    assert_error,
    is_id,
    is_utc,
    iso,
)

PUBLIC_PATHS = {"/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"}


def protected_operations() -> list[tuple[str, str]]:
    """Every (method, path) of the app that needs a token, ids filled with unknown ones."""
    operations = []
    for template, methods in openapi_document()["paths"].items():
        if template in PUBLIC_PATHS:
            continue
        path = (
            template.replace("{webhook_id}", UNKNOWN["wh"])
            .replace("{event_id}", UNKNOWN["evt"])
            .replace("{delivery_id}", UNKNOWN["dlv"])
        )
        for method, operation in methods.items():
            assert operation["security"] == [{"bearer": []}], (method, template)
            assert "401" in operation["responses"], (method, template)
            operations.append((method.upper(), path))
    return operations


# --- auth -------------------------------------------------------------------------------------


def test_every_resource_operation_is_protected() -> None:
    operations = protected_operations()
    # 17 webhook rows, 3 events, 3 deliveries, 2 dead-letter rows (API.md).
    assert len(operations) == 25


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789", "Basic dGVzdDp0ZXN0", "Bearer", "test-token"],
    ids=["missing", "wrong", "basic", "empty", "no-scheme"],
)
async def test_401_without_a_valid_token(sqlite_api: Api, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    transport = sqlite_api.client._transport
    async with httpx.AsyncClient(
        transport=transport, base_url="http://hookline.test", headers=headers
    ) as anonymous:
        for method, path in protected_operations():
            response = await anonymous.request(method, path, json={})
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json() == {"detail": "missing or invalid bearer token"}


async def test_any_configured_token_is_accepted(
    sqlite_url: str, sqlite_engine: Any, runtime_factory: Any
) -> None:
    second = "second-token-abcdefghijklmnop"
    async with runtime_factory(sqlite_url)(
        HOOKLINE_API_TOKENS=["first-token-abcdefghijklmnop", second]
    ) as runtime:
        async with client_for(runtime, token=second) as api:
            assert (await api.client.get("/webhooks")).status_code == 200
        async with client_for(runtime, token="first-token-abcdefghijklmnop") as api:
            assert (await api.client.get("/webhooks")).status_code == 200
        async with client_for(runtime, token="first-token-abcdefghijklmnoq") as api:
            assert (await api.client.get("/webhooks")).status_code == 401


async def test_no_configured_token_means_nobody_gets_in(
    sqlite_url: str, sqlite_engine: Any, runtime_factory: Any
) -> None:
    async with runtime_factory(sqlite_url)(HOOKLINE_API_TOKENS=[]) as runtime:
        assert runtime.api_tokens == ()
        async with client_for(runtime, token="anything-at-all-0123456789") as api:
            assert (await api.client.get("/webhooks")).status_code == 401


async def test_public_paths_need_no_token(sqlite_api: Api) -> None:
    transport = sqlite_api.client._transport
    async with httpx.AsyncClient(transport=transport, base_url="http://hookline.test") as anon:
        for path in sorted(PUBLIC_PATHS):
            response = await anon.get(path)
            assert response.status_code == 200, (path, response.text)
        css = await anon.get("/static/swagger-ui/swagger-ui.css")
        assert css.status_code == 200


# --- POST /webhooks ---------------------------------------------------------------------------


async def test_create_minimal_webhook(api: Api) -> None:
    now = api.clock.now()
    response = await api.client.post("/webhooks", json={"url": "https://example.com/hook"})

    assert response.status_code == 201
    body = response.json()
    assert set(body) == WEBHOOK_FIELDS  # never the secret
    assert is_id(body["id"], "wh")
    assert body["url"] == "https://example.com/hook"
    assert body["description"] == ""
    assert body["event_types"] == []
    assert body["headers"] == {}
    assert body["status"] == "active"
    assert body["disabled_reason"] is None
    assert body["disabled_at"] is None
    assert body["retry_config"] == DEFAULT_RETRY_CONFIG
    assert body["created_at"] == body["updated_at"] == iso(now)
    assert is_utc(body["created_at"])

    secret = await api.client.get(f"/webhooks/{body['id']}/secret")
    assert secret.status_code == 200
    assert secret.json()["secret"].startswith("whsec_")


async def test_create_webhook_with_every_field(api: Api) -> None:
    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3"
    config = {"max_retries": 3, "base_delay": 10, "max_delay": 60, "jitter": "none"}
    body = await api.create_webhook(
        url="http://receiver.example:8080/in?x=1",
        description="orders to billing",
        event_types=["order.created", "order.paid", "order.created"],
        headers={"X-Team": "billing"},
        secret=secret,
        retry_config=config,
    )

    assert body["url"] == "http://receiver.example:8080/in?x=1"
    assert body["description"] == "orders to billing"
    assert body["event_types"] == ["order.created", "order.paid"]
    assert body["headers"] == {"X-Team": "billing"}
    assert body["retry_config"] == {
        **DEFAULT_RETRY_CONFIG,
        "max_retries": 3,
        "base_delay": 10.0,
        "max_delay": 60.0,
        "jitter": "none",
    }
    got = await api.client.get(f"/webhooks/{body['id']}/secret")
    assert got.json()["secret"] == secret
    rc = await api.client.get(f"/webhooks/{body['id']}/retry-config")
    assert rc.json()["source"] == "custom"


BAD_RETRY_CONFIGS: list[tuple[dict[str, Any], tuple[str | int, ...]]] = [
    ({"max_retries": 11}, ("max_retries",)),
    ({"max_retries": -1}, ("max_retries",)),
    ({"base_delay": 0.5}, ("base_delay",)),
    ({"base_delay": 100, "max_delay": 50}, ("max_delay",)),
    ({"max_retry_duration": 7 * 86400 + 1}, ("max_retry_duration",)),
    ({"base_delay": 600, "max_retry_duration": 300}, ("max_retry_duration",)),
    ({"disable_on_status": [410, 399]}, ("disable_on_status", 1)),
    ({"disable_on_status": [600]}, ("disable_on_status", 0)),
    ({"multiplier": 11}, ("multiplier",)),
    ({"jitter_ratio": 1.5}, ("jitter_ratio",)),
    ({"jitter": "random"}, ("jitter",)),
    ({"respect_retry_after": "maybe"}, ("respect_retry_after",)),
    ({"bogus": 1}, ("bogus",)),
]


@pytest.mark.parametrize(("config", "loc"), BAD_RETRY_CONFIGS)
async def test_create_webhook_with_a_bad_retry_config_is_422(
    sqlite_api: Api, config: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    body = {"url": "https://x.example", "retry_config": config}
    response = await sqlite_api.client.post("/webhooks", json=body)
    assert_422(response, "body", "retry_config", *loc)


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"url": "https://x.example", "bogus": 1}, ("bogus",)),
        ({"url": "ftp://x.example/in"}, ("url",)),
        ({"url": "not a url"}, ("url",)),
        ({"url": "https://"}, ("url",)),
        ({}, ("url",)),
        ({"url": "https://x.example", "secret": "not-a-secret"}, ("secret",)),
        ({"url": "https://x.example", "secret": "whsec_dG9vc2hvcnQ="}, ("secret",)),
        ({"url": "https://x.example", "headers": {"webhook-signature": "v1,x"}}, ("headers",)),
        ({"url": "https://x.example", "headers": {"X-Bad": "a\r\nb"}}, ("headers", "X-Bad")),
        ({"url": "https://x.example", "event_types": [""]}, ("event_types", 0)),
        ({"url": "https://x.example", "description": "nul\x00byte"}, ("description",)),
    ],
)
async def test_create_webhook_422_names_the_field(
    sqlite_api: Api, body: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    response = await sqlite_api.client.post("/webhooks", json=body)
    assert_422(response, "body", *loc)


# --- GET /webhooks ----------------------------------------------------------------------------


async def test_list_is_newest_first_and_pages_with_an_opaque_cursor(api: Api) -> None:
    created = [(await api.create_webhook(description=f"n{i}"))["id"] for i in range(5)]

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = await api.client.get("/webhooks", params=params)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"data", "next_cursor"}
        assert all(set(item) == WEBHOOK_FIELDS for item in body["data"])  # no secret
        seen.extend(item["id"] for item in body["data"])
        cursor = body["next_cursor"]
        pages += 1
        if cursor is None:
            break
        assert cursor not in seen  # opaque: not an id
        assert pages < 10

    assert seen == list(reversed(created))
    assert pages == 3


async def test_list_cursor_is_stable_under_concurrent_inserts(api: Api) -> None:
    first = [(await api.create_webhook())["id"] for _ in range(4)]
    page1 = (await api.client.get("/webhooks", params={"limit": 2})).json()
    newcomer = (await api.create_webhook())["id"]

    page2 = (
        await api.client.get("/webhooks", params={"limit": 2, "cursor": page1["next_cursor"]})
    ).json()

    assert [w["id"] for w in page1["data"]] == [first[3], first[2]]
    assert [w["id"] for w in page2["data"]] == [first[1], first[0]]
    assert page2["next_cursor"] is None
    everything = (await api.client.get("/webhooks")).json()["data"]
    assert everything[0]["id"] == newcomer


async def test_list_filters_by_status(api: Api) -> None:
    active = await api.create_webhook()
    disabled = await api.create_webhook()
    await api.client.post(f"/webhooks/{disabled['id']}/disable")

    only_disabled = (await api.client.get("/webhooks", params={"status": "disabled"})).json()
    only_active = (await api.client.get("/webhooks", params={"status": "active"})).json()

    assert [w["id"] for w in only_disabled["data"]] == [disabled["id"]]
    assert [w["id"] for w in only_active["data"]] == [active["id"]]
    assert_422(await api.client.get("/webhooks", params={"status": "gone"}), "query", "status")


@pytest.mark.parametrize("limit", [0, 501, -1, "many"])
async def test_limit_out_of_bounds_is_422(sqlite_api: Api, limit: object) -> None:
    response = await sqlite_api.client.get("/webhooks", params={"limit": limit})
    assert_422(response, "query", "limit")


async def test_limit_bounds_are_inclusive_and_default_is_50(sqlite_api: Api) -> None:
    for _ in range(51):
        await sqlite_api.create_webhook()
    default = (await sqlite_api.client.get("/webhooks")).json()
    one = (await sqlite_api.client.get("/webhooks", params={"limit": 1})).json()
    most = (await sqlite_api.client.get("/webhooks", params={"limit": 500})).json()

    assert len(default["data"]) == 50
    assert default["next_cursor"] is not None
    assert len(one["data"]) == 1
    assert len(most["data"]) == 51
    assert most["next_cursor"] is None


@pytest.mark.parametrize(
    "cursor",
    ["garbage", "djE6d2hfMDA", "!!!", "x" * 200, "djE6ZGx2XzAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAw"],
    ids=["garbage", "truncated", "not-base64", "too-long", "other-list"],
)
async def test_a_bad_cursor_is_422_on_cursor(sqlite_api: Api, cursor: str) -> None:
    response = await sqlite_api.client.get("/webhooks", params={"cursor": cursor})
    assert_422(response, "query", "cursor")


# --- GET / PATCH / DELETE /webhooks/{id} ------------------------------------------------------


async def test_get_one_webhook_and_404s(api: Api) -> None:
    created = await api.create_webhook()
    got = await api.client.get(f"/webhooks/{created['id']}")
    assert got.status_code == 200
    assert got.json() == created

    detail = assert_error(await api.client.get(f"/webhooks/{UNKNOWN['wh']}"), 404)
    assert UNKNOWN["wh"] in detail
    assert_error(await api.client.get("/webhooks/not-an-id"), 404)
    assert_error(await api.client.get(f"/webhooks/{UNKNOWN['evt']}"), 404)


async def test_patch_changes_only_the_given_fields(api: Api) -> None:
    created = await api.create_webhook(description="before", event_types=["a"])
    api.clock.advance(60)

    response = await api.client.patch(
        f"/webhooks/{created['id']}",
        json={"url": "https://other.example/in", "headers": {"X-New": "1"}},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["url"] == "https://other.example/in"
    assert body["headers"] == {"X-New": "1"}
    assert body["description"] == "before"
    assert body["event_types"] == ["a"]
    assert body["updated_at"] == iso(api.clock.now())
    assert body["created_at"] == created["created_at"]

    again = await api.client.patch(
        f"/webhooks/{created['id']}", json={"description": "after", "event_types": []}
    )
    assert again.json()["description"] == "after"
    assert again.json()["event_types"] == []
    assert (await api.client.get(f"/webhooks/{created['id']}")).json() == again.json()


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"url": None}, ("url",)),
        ({"url": "mailto:a@b.c"}, ("url",)),
        ({"description": None}, ("description",)),
        ({"secret": "whsec_x"}, ("secret",)),
        ({"status": "disabled"}, ("status",)),
        ({"headers": {"Host": "evil.example"}}, ("headers",)),
    ],
)
async def test_patch_422(sqlite_api: Api, body: dict[str, Any], loc: tuple[str, ...]) -> None:
    created = await sqlite_api.create_webhook()
    response = await sqlite_api.client.patch(f"/webhooks/{created['id']}", json=body)
    assert_422(response, "body", *loc)


async def test_patch_unknown_is_404(sqlite_api: Api) -> None:
    response = await sqlite_api.client.patch(f"/webhooks/{UNKNOWN['wh']}", json={})
    assert_error(response, 404)


async def test_delete_cancels_pending_and_retrying_deliveries(api: Api) -> None:
    webhook = await api.create_webhook()
    pending = await api.seed_delivery(webhook_id=webhook["id"])
    retrying = await api.seed_delivery(webhook_id=webhook["id"], state="retrying")
    succeeded = await api.seed_delivery(
        webhook_id=webhook["id"], state="succeeded", next_attempt_at=None
    )
    api.clock.advance(5)

    response = await api.client.delete(f"/webhooks/{webhook['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert_error(await api.client.get(f"/webhooks/{webhook['id']}"), 404)
    assert (await api.client.get("/webhooks")).json()["data"] == []
    for delivery in (pending, retrying):
        body = await api.delivery(delivery.id)
        assert body["state"] == "cancelled"
        assert body["next_attempt_at"] is None
        assert body["completed_at"] == iso(api.clock.now())
    assert (await api.delivery(succeeded.id))["state"] == "succeeded"
    assert_error(await api.client.delete(f"/webhooks/{webhook['id']}"), 404)


# --- retry config -----------------------------------------------------------------------------


async def test_retry_config_get_put_delete(api: Api) -> None:
    webhook = await api.create_webhook()
    path = f"/webhooks/{webhook['id']}/retry-config"

    default = await api.client.get(path)
    assert default.status_code == 200
    assert default.json() == {**DEFAULT_RETRY_CONFIG, "source": "default", "problem": None}

    custom = {
        "max_retries": 5,
        "base_delay": 30,
        "max_delay": 600,
        "multiplier": 3,
        "jitter": "full",
        "jitter_ratio": 0.1,
        "max_retry_duration": 3600,
        "respect_retry_after": False,
        "disable_on_status": [410, 404, 451, 410],
    }
    put = await api.client.put(path, json=custom)
    assert put.status_code == 200
    expected = {
        **custom,
        "base_delay": 30.0,
        "max_delay": 600.0,
        "multiplier": 3.0,
        "max_retry_duration": 3600.0,
        "disable_on_status": [404, 410, 451],
        "source": "custom",
        "problem": None,
    }
    assert put.json() == expected
    assert (await api.client.get(path)).json() == expected
    shown = (await api.client.get(f"/webhooks/{webhook['id']}")).json()["retry_config"]
    assert shown == {k: v for k, v in expected.items() if k not in {"source", "problem"}}

    partial = await api.client.put(path, json={"max_retries": 2})
    assert partial.json() == {
        **DEFAULT_RETRY_CONFIG,
        "max_retries": 2,
        "source": "custom",
        "problem": None,
    }

    reset = await api.client.delete(path)
    assert reset.status_code == 200
    assert reset.json() == {**DEFAULT_RETRY_CONFIG, "source": "default", "problem": None}
    assert (await api.client.get(path)).json()["source"] == "default"


@pytest.mark.parametrize(("body", "loc"), BAD_RETRY_CONFIGS)
async def test_put_retry_config_422(
    sqlite_api: Api, body: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    webhook = await sqlite_api.create_webhook()
    response = await sqlite_api.client.put(f"/webhooks/{webhook['id']}/retry-config", json=body)
    assert_422(response, "body", *loc)
    after = await sqlite_api.client.get(f"/webhooks/{webhook['id']}/retry-config")
    assert after.json()["source"] == "default"


async def test_retry_config_404(sqlite_api: Api) -> None:
    path = f"/webhooks/{UNKNOWN['wh']}/retry-config"
    assert_error(await sqlite_api.client.get(path), 404)
    assert_error(await sqlite_api.client.put(path, json={}), 404)
    assert_error(await sqlite_api.client.delete(path), 404)
    assert_error(await sqlite_api.client.get(path + "/schedule"), 404)


async def test_schedule_of_the_default_timeline_without_jitter(api: Api) -> None:
    webhook = await api.create_webhook(retry_config={"jitter": "none"})

    response = await api.client.get(f"/webhooks/{webhook['id']}/retry-config/schedule")

    assert response.status_code == 200
    body = response.json()
    assert body["config"]["jitter"] == "none"
    assert body["window_s"] == 36000
    delays = [row["earliest_delay_s"] for row in body["retries"]]
    assert delays == [120, 240, 480, 960, 1920, 3840, 7200, 7200, 7200, 6840]
    assert [row["latest_delay_s"] for row in body["retries"]] == delays
    last = body["retries"][-1]
    assert last["retry_number"] == 10
    assert last["earliest_at_s"] == 36000
    assert last["cut_by_window"] is True
    assert body["window_cut_retry"] == 10
    assert body["total_retries"] == 10
    assert body["dropped_retries"] == 0


async def test_schedule_of_the_default_config_starts_at_two_to_three_minutes(api: Api) -> None:
    webhook = await api.create_webhook()
    body = (await api.client.get(f"/webhooks/{webhook['id']}/retry-config/schedule")).json()
    first = body["retries"][0]
    assert (first["earliest_delay_s"], first["latest_delay_s"]) == (120, 180)
    assert all(row["earliest_at_s"] <= 36000 for row in body["retries"])


# --- disable / enable -------------------------------------------------------------------------


async def test_disable_parks_and_enable_recovers_through_the_slow_start(api: Api) -> None:
    webhook = await api.create_webhook()
    old_cancelled = await api.seed_delivery(
        webhook_id=webhook["id"],
        state="cancelled",
        next_attempt_at=None,
        completed_at=api.clock.now(),
        last_error="endpoint_disabled",
    )
    pending = await api.seed_delivery(webhook_id=webhook["id"])
    retrying = await api.seed_delivery(webhook_id=webhook["id"], state="retrying")
    api.clock.advance(10)
    disabled_at = api.clock.now()

    response = await api.client.post(f"/webhooks/{webhook['id']}/disable")

    # the queued deliveries wait, parked: nothing is sent, nothing is lost
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "disabled"
    assert body["disabled_reason"] == "manual"
    assert body["disabled_at"] == iso(disabled_at)
    assert body["parked"] == 2
    assert body["next_probe_at"] is None  # a manual disable is not probed
    for delivery in (pending, retrying):
        shown = await api.delivery(delivery.id)
        assert shown["state"] == "parked"
        assert shown["next_attempt_at"] is None
        assert shown["completed_at"] is None
    again = await api.client.post(f"/webhooks/{webhook['id']}/disable")
    assert again.json()["disabled_at"] == iso(disabled_at)
    # a delivery a gone-disable would have cancelled (after disabled_at): replay brings it back
    cancelled_by_disable = await api.seed_delivery(
        webhook_id=webhook["id"],
        state="cancelled",
        next_attempt_at=None,
        completed_at=api.clock.now(),
        last_error="endpoint_disabled",
    )

    api.clock.advance(60)
    enabled = await api.client.post(
        f"/webhooks/{webhook['id']}/enable", json={"replay_cancelled": True}
    )

    assert enabled.status_code == 200
    assert enabled.json()["status"] == "recovering"
    assert enabled.json()["parked"] == 2
    assert enabled.json()["disabled_reason"] is None
    assert enabled.json()["disabled_at"] is None
    for delivery in (pending, retrying):  # released by the lifecycle loop, at its pace
        assert (await api.delivery(delivery.id))["state"] == "parked"
    replayed = await api.delivery(cancelled_by_disable.id)
    assert replayed["state"] == "pending"
    assert replayed["next_attempt_at"] == iso(api.clock.now())
    assert replayed["completed_at"] is None
    # cancelled before this disable: not the disable's doing, so not replayed
    assert (await api.delivery(old_cancelled.id))["state"] == "cancelled"


async def test_enable_with_nothing_parked_is_active_at_once(api: Api) -> None:
    webhook = await api.create_webhook()
    cancelled = await api.seed_delivery(
        webhook_id=webhook["id"],
        state="cancelled",
        next_attempt_at=None,
        completed_at=api.clock.now(),
        last_error="endpoint_disabled",
    )
    await api.client.post(f"/webhooks/{webhook['id']}/disable")

    no_body = await api.client.post(f"/webhooks/{webhook['id']}/enable")
    assert no_body.status_code == 200
    assert no_body.json()["status"] == "active"
    assert no_body.json()["parked"] == 0
    assert (await api.delivery(cancelled.id))["state"] == "cancelled"

    assert_422(
        await api.client.post(f"/webhooks/{webhook['id']}/enable", json={"replay": True}),
        "body",
        "replay",
    )
    assert_error(await api.client.post(f"/webhooks/{UNKNOWN['wh']}/enable"), 404)
    assert_error(await api.client.post(f"/webhooks/{UNKNOWN['wh']}/disable"), 404)


# --- secret -----------------------------------------------------------------------------------


async def test_rotate_secret_keeps_the_old_one_for_the_grace_period(api: Api) -> None:
    webhook = await api.create_webhook()
    path = f"/webhooks/{webhook['id']}/secret"
    before = (await api.client.get(path)).json()
    assert before["previous_secret_expires_at"] is None

    rotated = await api.client.post(path + "/rotate")

    assert rotated.status_code == 200
    body = rotated.json()
    assert body["secret"].startswith("whsec_")
    assert body["secret"] != before["secret"]
    expected_expiry = api.clock.now().timestamp() + ROTATION_GRACE_S
    assert body["previous_secret_expires_at"] == iso(
        type(api.clock.now()).fromtimestamp(expected_expiry, tz=api.clock.now().tzinfo)
    )
    assert (await api.client.get(path)).json() == body

    chosen = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    given = await api.client.post(path + "/rotate", json={"secret": chosen})
    assert given.json()["secret"] == chosen

    assert_error(await api.client.post(path + "/rotate", json={"secret": chosen}), 409)
    assert_422(await api.client.post(path + "/rotate", json={"secret": "nope"}), "body", "secret")

    api.clock.advance(ROTATION_GRACE_S)
    assert (await api.client.get(path)).json()["previous_secret_expires_at"] is None
    assert_error(await api.client.get(f"/webhooks/{UNKNOWN['wh']}/secret"), 404)
    assert_error(await api.client.post(f"/webhooks/{UNKNOWN['wh']}/secret/rotate"), 404)


# --- stats ------------------------------------------------------------------------------------


async def test_stats_count_the_last_24_hours(api: Api) -> None:
    webhook = await api.create_webhook()
    other = await api.create_webhook()
    old = await api.seed_delivery(webhook_id=webhook["id"], state="failed", next_attempt_at=None)
    await api.seed_attempt(delivery_id=old.id, status_code=500)
    api.clock.advance(25 * 3600)  # the first delivery and its attempt fall out of the window

    ok = await api.seed_delivery(webhook_id=webhook["id"], state="succeeded", next_attempt_at=None)
    await api.seed_attempt(delivery_id=ok.id, attempt_number=1, status_code=503)
    await api.seed_attempt(delivery_id=ok.id, attempt_number=2, status_code=200)
    retrying = await api.seed_delivery(webhook_id=webhook["id"], state="retrying")
    await api.seed_attempt(delivery_id=retrying.id, status_code=None, error="timeout")
    await api.seed_delivery(webhook_id=webhook["id"])
    other_delivery = await api.seed_delivery(webhook_id=other["id"], state="succeeded")
    await api.seed_attempt(delivery_id=other_delivery.id, status_code=200)

    response = await api.client.get(f"/webhooks/{webhook['id']}/stats")

    assert response.status_code == 200
    body = response.json()
    assert body["webhook_id"] == webhook["id"]
    assert body["window_s"] == 86400
    assert body["until"] == iso(api.clock.now())
    assert body["deliveries"] == {
        "pending": 1,
        "delivering": 0,
        "succeeded": 1,
        "retrying": 1,
        "failed": 0,
        "cancelled": 0,
    }
    assert body["attempts"] == {"total": 3, "succeeded": 1, "failed": 2}
    assert body["success_rate"] == pytest.approx(1 / 3)

    empty = (await api.client.get(f"/webhooks/{other['id']}/stats")).json()
    assert empty["attempts"]["total"] == 1
    fresh = await api.create_webhook()
    assert (await api.client.get(f"/webhooks/{fresh['id']}/stats")).json()["success_rate"] is None
    assert_error(await api.client.get(f"/webhooks/{UNKNOWN['wh']}/stats"), 404)
