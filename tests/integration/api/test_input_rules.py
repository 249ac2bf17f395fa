"""Input rules of api/schemas: timestamps in range, JSON types as the schema states them.

A refused request is a 422 naming the field, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta, timezone
from typing import Any

import pytest

from hookline.storage.models import Delivery
from tests.integration.api.conftest import RuntimeFactory, client_for
from tests.integration.api.helpers import DEFAULT_RETRY_CONFIG, Api, assert_422

REPLAY = "/dead-letters/replay"


async def seed_dead_letter(api: Api) -> Delivery:
    webhook = await api.create_webhook()
    return await api.seed_delivery(
        webhook_id=webhook["id"],
        state="failed",
        next_attempt_at=None,
        completed_at=api.clock.now(),
    )


# --- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "since",
    [
        "9999-12-31T23:59:59-14:00",  # past year 9999 in UTC (once an OverflowError: 500)
        "0001-01-01T00:00:00+14:00",  # before year 1 in UTC (OverflowError too)
        "1969-12-31T23:59:59Z",
        "1970-01-01T05:00:00+06:00",  # 1969 in UTC
        "1900-01-01T00:00:00Z",
        "2026-01-01T00:00:00",  # no offset
        "2026-01-01 00:00:00Z",  # not RFC 3339
        "2026-02-30T00:00:00Z",
        0,  # pydantic alone takes a number as Unix time
        1767225600.5,
        True,
    ],
)
async def test_replay_since_out_of_range_or_not_rfc3339_is_422_and_replays_nothing(
    api: Api, since: Any
) -> None:
    # Given a dead letter
    dead = await seed_dead_letter(api)

    # When a replay names a time the API does not take
    response = await api.client.post(REPLAY, json={"since": since})

    # Then it is refused on since, and the dead letter stays one
    assert_422(response, "body", "since")
    assert (await api.delivery(dead.id))["state"] == "failed"


@pytest.mark.parametrize(
    ("since", "replayed"),
    [
        ("1970-01-01T00:00:00Z", 1),
        ("1970-01-01T00:00:00-05:00", 1),
        ("1970-01-02T00:00:00+14:00", 1),
        ("9999-12-31T23:59:59Z", 0),
        ("9999-12-31T23:59:59.999999999+14:00", 0),
        ("9999-12-30T23:59:59-14:00", 0),
    ],
)
async def test_replay_since_at_the_ends_of_the_range_is_taken(
    sqlite_api: Api, since: str, replayed: int
) -> None:
    await seed_dead_letter(sqlite_api)
    response = await sqlite_api.client.post(REPLAY, json={"since": since})
    assert response.status_code == 202, response.text
    assert response.json() == {"replayed": replayed, "skipped": {}}


async def test_replay_since_with_an_offset_means_that_instant(api: Api) -> None:
    # Given a dead letter that failed at T (UTC)
    dead = await seed_dead_letter(api)
    assert dead.completed_at is not None
    failed_at = dead.completed_at
    new_york = timezone(timedelta(hours=-5))

    # When replays name T + 1 s and then T, written at -05:00
    later = (failed_at + timedelta(seconds=1)).astimezone(new_york).isoformat()
    at = failed_at.astimezone(new_york).isoformat()

    # Then only the second one takes it
    assert (await api.client.post(REPLAY, json={"since": later})).json()["replayed"] == 0
    assert (await api.client.post(REPLAY, json={"since": at})).json()["replayed"] == 1
    assert (await api.delivery(dead.id))["state"] == "pending"


# --- JSON types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "loc"),
    [
        ({"jitter_ratio": False}, ("jitter_ratio",)),
        ({"base_delay": True}, ("base_delay",)),
        ({"max_retries": "5"}, ("max_retries",)),
        ({"max_retries": 2.5}, ("max_retries",)),
        ({"multiplier": "2"}, ("multiplier",)),
        ({"disable_on_status": ["404"]}, ("disable_on_status", 0)),
        ({"disable_on_status": [410, True]}, ("disable_on_status", 1)),
        ({"respect_retry_after": 1}, ("respect_retry_after",)),
    ],
)
async def test_a_retry_config_value_of_the_wrong_json_type_is_422_and_changes_nothing(
    sqlite_api: Api, config: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    # Given a webhook with the default retry config
    webhook = await sqlite_api.create_webhook()
    path = f"/webhooks/{webhook['id']}/retry-config"

    # When a value comes as another JSON type than the schema's (pydantic alone would coerce)
    put = await sqlite_api.client.put(path, json=config)
    create = await sqlite_api.client.post(
        "/webhooks", json={"url": "https://example.com/x", "retry_config": config}
    )

    # Then both are refused on that field, and nothing changed or was created
    assert_422(put, "body", *loc)
    assert_422(create, "body", "retry_config", *loc)
    assert (await sqlite_api.client.get(path)).json()["source"] == "default"
    assert len((await sqlite_api.client.get("/webhooks")).json()["data"]) == 1


async def test_json_numbers_are_still_taken_as_numbers(sqlite_api: Api) -> None:
    webhook = await sqlite_api.create_webhook()
    response = await sqlite_api.client.put(
        f"/webhooks/{webhook['id']}/retry-config",
        json={"max_retries": 3.0, "base_delay": 10, "jitter_ratio": 0, "disable_on_status": [404]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["max_retries"] == 3
    assert response.json()["base_delay"] == 10.0
    assert {k: v for k, v in response.json().items() if k not in DEFAULT_RETRY_CONFIG} == {
        "source": "custom",
        "problem": None,
    }


@pytest.mark.parametrize("value", [0, 1, "true", "yes", None])
async def test_enable_replay_cancelled_takes_only_true_or_false(
    sqlite_api: Api, value: Any
) -> None:
    webhook = await sqlite_api.create_webhook()
    await sqlite_api.client.post(f"/webhooks/{webhook['id']}/disable")
    response = await sqlite_api.client.post(
        f"/webhooks/{webhook['id']}/enable", json={"replay_cancelled": value}
    )
    assert_422(response, "body", "replay_cancelled")
    status = (await sqlite_api.client.get(f"/webhooks/{webhook['id']}")).json()["status"]
    assert status == "disabled"


# --- text the schema states as patterns ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"event_type": "a\x00b", "payload": 1}, ("event_type",)),
        ({"event_type": "a", "payload": 1, "idempotency_key": "\x00"}, ("idempotency_key",)),
    ],
)
async def test_nul_in_event_text_is_422(
    sqlite_api: Api, body: dict[str, Any], loc: tuple[str, ...]
) -> None:
    assert_422(await sqlite_api.client.post("/events", json=body), "body", *loc)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pw@example.com/h",  # credentials go in headers (API.md)
        "http://exa mple.com/",
        "http://example.com/a b",
        "http://1.2.3.999/",
        "http://example.123/",
        "http://[::1/",
        "http://example.com:65536/",
        "http://",
    ],
)
async def test_a_url_outside_the_documented_pattern_is_422(sqlite_api: Api, url: str) -> None:
    assert_422(await sqlite_api.client.post("/webhooks", json={"url": url}), "body", "url")


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hooks/orders?team=billing#x",
        "http://127.0.0.1:8123/hook",
        "http://[::1]:8080/hook",
        "http://[64:ff9b::a00:1]/",
        "http://localhost/",
        "https://xn--bcher-kva.example/",
        "HTTPS://EXAMPLE.COM/%7Euser",
    ],
)
async def test_urls_inside_the_documented_pattern_are_taken(
    sqlite_url: str, sqlite_engine: Any, runtime_factory: Callable[[str], RuntimeFactory], url: str
) -> None:
    # Every network allowed: the point here is the pattern, not the address (test_webhook_urls)
    async with (
        runtime_factory(sqlite_url)(ALLOWED_NETWORKS="0.0.0.0/0,::/0") as runtime,
        client_for(runtime) as api,
    ):
        response = await api.client.post("/webhooks", json={"url": url})
    assert response.status_code == 201, response.text
