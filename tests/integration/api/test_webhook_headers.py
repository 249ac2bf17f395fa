"""Credential headers of a webhook (``Authorization`` and the like) are stored and sent as given,
never logged, and shown masked: ``Bearer ********`` keeps the scheme of an ``Authorization``,
every other credential header shows ``********``. A PATCH that leaves ``headers`` out keeps them;
one that sends back the masked form of the stored value keeps the stored value; a masked form
that matches nothing stored is a 422 (a mask is never stored as a credential).
"""

from __future__ import annotations

from typing import Any

import pytest

from hookline.service.endpoints import masked_headers, masked_value
from hookline.storage.models import Endpoint
from tests.integration.api.helpers import Api, assert_422

TOKEN_VALUE = "Bearer sk_live_4f9a1c2e8b7d6a5f"
API_KEY = "key-0a1b2c3d4e5f"


async def stored_headers(api: Api, webhook_id: str) -> dict[str, str]:
    async with api.runtime.sessions() as session:
        endpoint = await session.get(Endpoint, webhook_id)
    assert endpoint is not None
    return dict(endpoint.headers)


async def test_credential_headers_are_stored_whole_and_shown_masked(api: Api) -> None:
    # Given a webhook created with an Authorization, an API key and a plain header
    headers = {"Authorization": TOKEN_VALUE, "X-Api-Key": API_KEY, "X-Team": "billing"}
    created = await api.create_webhook(headers=headers)
    shown = {"Authorization": "Bearer ********", "X-Api-Key": "********", "X-Team": "billing"}

    # Then every answer shows them masked: create, get, list
    assert created["headers"] == shown
    got = await api.client.get(f"/webhooks/{created['id']}")
    assert got.json()["headers"] == shown
    [listed] = (await api.client.get("/webhooks")).json()["data"]
    assert listed["headers"] == shown
    # And the stored row (what the sender sends) has the real values
    assert await stored_headers(api, created["id"]) == headers


async def test_a_patch_without_headers_keeps_them(sqlite_api: Api) -> None:
    created = await sqlite_api.create_webhook(headers={"Authorization": TOKEN_VALUE})

    response = await sqlite_api.client.patch(
        f"/webhooks/{created['id']}", json={"description": "renamed"}
    )

    assert response.status_code == 200
    assert response.json()["headers"] == {"Authorization": "Bearer ********"}
    assert await stored_headers(sqlite_api, created["id"]) == {"Authorization": TOKEN_VALUE}


async def test_a_patch_echoing_the_masked_headers_keeps_the_stored_secrets(api: Api) -> None:
    # Given a webhook with credentials, read back (masked) by a client
    created = await api.create_webhook(
        headers={"Authorization": TOKEN_VALUE, "Cookie": "session=abc", "X-Team": "a"}
    )
    shown = (await api.client.get(f"/webhooks/{created['id']}")).json()["headers"]

    # When the client sends the headers back with one plain header changed (and a name's
    # letter case changed, which names the same header)
    echoed = {"authorization": shown["Authorization"], "Cookie": shown["Cookie"], "X-Team": "b"}
    response = await api.client.patch(f"/webhooks/{created['id']}", json={"headers": echoed})

    # Then the secrets are kept, not replaced by their masks
    assert response.status_code == 200, response.text
    assert response.json()["headers"] == {
        "authorization": "Bearer ********",
        "Cookie": "********",
        "X-Team": "b",
    }
    assert await stored_headers(api, created["id"]) == {
        "authorization": TOKEN_VALUE,
        "Cookie": "session=abc",
        "X-Team": "b",
    }


async def test_a_patch_with_a_new_secret_replaces_it(sqlite_api: Api) -> None:
    created = await sqlite_api.create_webhook(headers={"Authorization": TOKEN_VALUE})

    response = await sqlite_api.client.patch(
        f"/webhooks/{created['id']}", json={"headers": {"Authorization": "Basic dTpw"}}
    )

    assert response.json()["headers"] == {"Authorization": "Basic ********"}
    assert await stored_headers(sqlite_api, created["id"]) == {"Authorization": "Basic dTpw"}


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Api-Key": "********"},  # nothing stored under this name
        {"Authorization": "Token ********"},  # not the mask of the stored value (Bearer ...)
        {"Authorization": "********"},
        {"Authorization": "Bearer ******** "},
    ],
)
async def test_a_patch_with_a_mask_that_keeps_nothing_is_422_and_changes_nothing(
    sqlite_api: Api, headers: dict[str, str]
) -> None:
    # Given a webhook with a bearer token
    created = await sqlite_api.create_webhook(headers={"Authorization": TOKEN_VALUE})

    # When a PATCH sends a masked value that is not how its stored value is shown
    response = await sqlite_api.client.patch(
        f"/webhooks/{created['id']}", json={"headers": headers, "description": "changed"}
    )

    # Then it is refused on that header, and nothing changed
    [name] = headers
    assert_422(response, "body", "headers", name)
    [error] = response.json()["detail"]
    assert error["type"] == "masked_credential"
    assert "not a credential" in error["msg"]
    assert (await sqlite_api.client.get(f"/webhooks/{created['id']}")).json() == created
    assert await stored_headers(sqlite_api, created["id"]) == {"Authorization": TOKEN_VALUE}


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer ********"}, {"cookie": "********"}])
async def test_a_new_webhook_with_a_masked_credential_is_422_and_not_created(
    sqlite_api: Api, headers: dict[str, str]
) -> None:
    # A mask copied from another webhook's answer is not a credential: never stored as one
    response = await sqlite_api.client.post(
        "/webhooks", json={"url": "https://example.com/x", "headers": headers}
    )

    assert_422(response, "body", "headers", next(iter(headers)))
    assert (await sqlite_api.client.get("/webhooks")).json()["data"] == []


async def test_credentials_never_reach_the_logs(
    sqlite_api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    created = await sqlite_api.create_webhook(
        headers={"Authorization": TOKEN_VALUE, "X-Api-Key": API_KEY}
    )
    await sqlite_api.client.patch(
        f"/webhooks/{created['id']}",
        json={"headers": {"Authorization": "Bearer ********", "X-Api-Key": "other-key-123"}},
    )
    await sqlite_api.client.get("/webhooks")

    logged = capsys.readouterr()
    assert "endpoint.created" in logged.out  # the logs were captured
    for secret in ("sk_live_4f9a1c2e8b7d6a5f", API_KEY, "other-key-123"):
        assert secret not in logged.out
        assert secret not in logged.err


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("Authorization", "Bearer abc", "Bearer ********"),
        ("authorization", "AWS4-HMAC-SHA256 Credential=x", "AWS4-HMAC-SHA256 ********"),
        ("Authorization", "sk_live_no_scheme", "********"),
        ("Authorization", "Bearer ", "********"),  # no credential after the scheme
        ("Authorization", "s3cr3t:part two", "********"),  # not a scheme: hidden whole
        ("Proxy-Authorization", "Basic dTpw", "Basic ********"),
        ("X-Api-Key", "prefix secret", "********"),  # no scheme in an API key
        ("Cookie", "a=b", "********"),
        ("X-Auth-Token", "t", "********"),
        ("Api-Key", "k", "********"),
        ("Authorization", "", ""),  # nothing to hide
        ("X-Team", "billing", "billing"),
    ],
)
def test_masked_value(name: str, value: str, shown: str) -> None:
    assert masked_value(name, value) == shown
    assert masked_headers({name: value}) == {name: shown}


def test_the_schema_documents_the_masking() -> None:
    from hookline.api.openapi import openapi_document

    schemas: dict[str, Any] = openapi_document()["components"]["schemas"]
    described = schemas["WebhookIn"]["properties"]["headers"]["description"]
    assert "authorization" in described
    assert "Bearer ********" in described
