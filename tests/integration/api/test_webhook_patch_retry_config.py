"""PATCH /webhooks/{id} takes ``retry_config`` like POST and PUT .../retry-config do: the same
validation (a 422 naming the field, nothing written), absent = unchanged, null = the defaults
(like DELETE .../retry-config)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.api.helpers import DEFAULT_RETRY_CONFIG, Api, assert_422, iso

CUSTOM = {
    "max_retries": 4,
    "base_delay": 30,
    "max_delay": 600,
    "multiplier": 3,
    "jitter": "full",
    "jitter_ratio": 0.2,
    "max_retry_duration": 3600,
    "respect_retry_after": False,
    "disable_on_status": [410],
}


async def test_patch_sets_and_resets_the_retry_config(api: Api) -> None:
    # Given a webhook on the defaults
    created = await api.create_webhook()
    path = f"/webhooks/{created['id']}"
    api.clock.advance(30)

    # When a PATCH gives a retry config
    response = await api.client.patch(path, json={"retry_config": CUSTOM})

    # Then it is the webhook's own, as PUT .../retry-config would have made it
    assert response.status_code == 200, response.text
    put_equivalent = {
        **CUSTOM,
        "base_delay": 30.0,
        "max_delay": 600.0,
        "multiplier": 3.0,
        "max_retry_duration": 3600.0,
    }
    assert response.json()["retry_config"] == put_equivalent
    assert response.json()["updated_at"] == iso(api.clock.now())
    config = (await api.client.get(f"{path}/retry-config")).json()
    assert config == {**put_equivalent, "source": "custom", "problem": None}

    # When a PATCH leaves it out, it stays
    kept = await api.client.patch(path, json={"description": "x"})
    assert kept.json()["retry_config"] == put_equivalent

    # When a PATCH gives only some fields, the others take their defaults (as with PUT)
    partial = await api.client.patch(path, json={"retry_config": {"max_retries": 2}})
    assert partial.json()["retry_config"] == {**DEFAULT_RETRY_CONFIG, "max_retries": 2}

    # When a PATCH gives null, it goes back to the defaults
    reset = await api.client.patch(path, json={"retry_config": None})
    assert reset.status_code == 200, reset.text
    assert reset.json()["retry_config"] == DEFAULT_RETRY_CONFIG
    config = (await api.client.get(f"{path}/retry-config")).json()
    assert config["source"] == "default"


@pytest.mark.parametrize(
    ("retry_config", "loc"),
    [
        ({"max_retries": 11}, ("max_retries",)),
        ({"base_delay": 0.5}, ("base_delay",)),
        ({"base_delay": 100, "max_delay": 50}, ("max_delay",)),  # a rule across two fields
        ({"jitter": "sometimes"}, ("jitter",)),
        ({"disable_on_status": [200]}, ("disable_on_status", 0)),
        ({"max_retries": "3"}, ("max_retries",)),  # a string is not a JSON integer
        ({"respect_retry_after": 1}, ("respect_retry_after",)),
        ({"bogus": 1}, ("bogus",)),
        ([], ()),
        ("defaults", ()),
    ],
)
async def test_a_bad_retry_config_in_a_patch_is_422_and_changes_nothing(
    sqlite_api: Api, retry_config: Any, loc: tuple[str | int, ...]
) -> None:
    # Given a webhook with a custom config
    created = await sqlite_api.create_webhook(retry_config={"max_retries": 3})
    path = f"/webhooks/{created['id']}"

    # When a PATCH carries a bad retry config beside a good change
    response = await sqlite_api.client.patch(
        path, json={"retry_config": retry_config, "description": "changed"}
    )

    # Then it is refused on the field (as POST refuses it), and nothing changed
    assert_422(response, "body", "retry_config", *loc)
    post = await sqlite_api.client.post(
        "/webhooks", json={"url": "https://example.com/y", "retry_config": retry_config}
    )
    assert_422(post, "body", "retry_config", *loc)
    assert (await sqlite_api.client.get(path)).json() == created
    assert len((await sqlite_api.client.get("/webhooks")).json()["data"]) == 1


async def test_the_patch_schema_documents_retry_config_and_its_null() -> None:
    from hookline.api.openapi import openapi_document

    patch = openapi_document()["components"]["schemas"]["WebhookPatch"]
    field = patch["properties"]["retry_config"]
    assert {"$ref": "#/components/schemas/RetryConfig"} in field["anyOf"]
    assert {"type": "null"} in field["anyOf"]
    assert "default" not in field
    assert "null goes back to the defaults" in field["description"]
