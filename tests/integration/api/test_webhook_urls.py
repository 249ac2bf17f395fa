"""Webhook URLs are vetted when stored (API.md, POST and PATCH /webhooks): a host that is, or
resolves only to, a blocked address is a 422 on ``url`` that names ALLOWED_NETWORKS; a URL with
credentials is a 422 that points to ``headers``. A refused request writes nothing.

Names resolve through the test's ``FakeDns`` (``localhost`` and what a test adds); the runtime
allows ``127.0.0.1/32`` unless a test opens one with other ALLOWED_NETWORKS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.api.conftest import RuntimeFactory, client_for
from tests.integration.api.helpers import Api, FakeDns, assert_422


def url_error(response: Any) -> dict[str, Any]:
    """The one 422 error on ``["body", "url"]``."""
    assert_422(response, "body", "url")
    [error] = [e for e in response.json()["detail"] if e["loc"] == ["body", "url"]]
    assert isinstance(error["msg"], str)
    return dict(error)


async def webhook_count(api: Api) -> int:
    return len((await api.client.get("/webhooks")).json()["data"])


# --- blocked addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://10.0.0.7/hook", "10.0.0.7"),
        ("https://192.168.1.20:8443/hook", "192.168.1.20"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),  # cloud metadata
        ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
        ("http://[64:ff9b::a00:1]/", "64:ff9b::a00:1"),  # NAT64 form of 10.0.0.1
        ("http://0.0.0.0:8080/", "0.0.0.0"),
    ],
)
async def test_a_blocked_ip_literal_is_422_on_url_naming_allowed_networks(
    sqlite_api: Api, url: str, address: str
) -> None:
    api = sqlite_api
    # When a webhook is created on a private (not allow-listed) address
    response = await api.client.post("/webhooks", json={"url": url})

    # Then it is refused on url, saying why and how to allow it, and nothing is created
    error = url_error(response)
    assert error["type"] == "blocked_address"
    assert error["input"] == url
    assert f"the host {address.strip('[]')} is not a public address" in error["msg"].lower()
    assert "ALLOWED_NETWORKS" in error["msg"]
    assert "--allow-loopback" not in error["msg"]
    assert await webhook_count(api) == 0


async def test_a_name_resolving_to_a_blocked_address_is_422_naming_it(
    sqlite_api: Api, dns: FakeDns
) -> None:
    # Given a name that resolves only to private addresses
    dns.table["internal.corp.test"] = ("10.1.2.3", "fd12::3")

    response = await sqlite_api.client.post(
        "/webhooks", json={"url": "https://internal.corp.test/hook"}
    )

    error = url_error(response)
    assert error["msg"] == (
        "The host internal.corp.test resolves to 10.1.2.3, which is not a public address, so "
        "every delivery to it would be refused (blocked_address); to allow it, add its network "
        "to ALLOWED_NETWORKS (for example ALLOWED_NETWORKS=10.1.2.3/32)"
    )
    assert "internal.corp.test" in dns.lookups
    assert await webhook_count(sqlite_api) == 0


async def test_loopback_points_to_allow_loopback_as_well(
    sqlite_url: str,
    sqlite_engine: Any,
    runtime_factory: Callable[[str], RuntimeFactory],
) -> None:
    # Given a server whose ALLOWED_NETWORKS is empty
    async with (
        runtime_factory(sqlite_url)(ALLOWED_NETWORKS="") as runtime,
        client_for(runtime) as api,
    ):
        # When webhooks point at loopback, by address and by name
        for url in ("http://127.0.0.1:9000/hook", "http://[::1]:9000/", "http://localhost/"):
            error = url_error(await api.client.post("/webhooks", json={"url": url}))

            # Then each 422 names both ways of allowing it
            assert "ALLOWED_NETWORKS" in error["msg"]
            assert "`hookline serve --allow-loopback`" in error["msg"]
        assert await webhook_count(api) == 0


async def test_allowed_networks_lets_a_private_destination_through(
    sqlite_url: str,
    sqlite_engine: Any,
    runtime_factory: Callable[[str], RuntimeFactory],
    dns: FakeDns,
) -> None:
    dns.table["build.internal.test"] = ("10.20.0.5",)
    async with (
        runtime_factory(sqlite_url)(ALLOWED_NETWORKS="10.20.0.0/16,fd00::/8") as runtime,
        client_for(runtime) as api,
    ):
        for url in ("http://10.20.9.9/hook", "http://build.internal.test/", "http://[fd00::5]/"):
            response = await api.client.post("/webhooks", json={"url": url})
            assert response.status_code == 201, response.text
        # a network the list does not name stays blocked
        url_error(await api.client.post("/webhooks", json={"url": "http://10.21.0.1/"}))


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",  # not in the fake DNS: does not resolve (yet)
        "https://mixed.test/hook",  # one public address among private ones
        "https://public.test/hook",
        "http://127.0.0.1:8123/hook",  # allow-listed by the test settings
        "http://localhost:8123/hook",  # resolves to 127.0.0.1 (allowed) and ::1
        "https://93.184.216.34/hook",
    ],
)
async def test_public_allowed_or_unresolvable_urls_are_taken(
    sqlite_api: Api, dns: FakeDns, url: str
) -> None:
    dns.table["mixed.test"] = ("10.0.0.1", "93.184.216.34")
    dns.table["public.test"] = ("93.184.216.34", "2606:4700:4700::1111")

    response = await sqlite_api.client.post("/webhooks", json={"url": url})

    assert response.status_code == 201, response.text
    assert response.json()["url"] == url


async def test_patch_vets_a_new_url_and_a_refusal_changes_nothing(api: Api, dns: FakeDns) -> None:
    # Given a webhook on a public name
    created = await api.create_webhook(url="https://example.com/hook", description="before")
    api.clock.advance(60)
    dns.table["rebound.test"] = ("192.168.0.10",)

    # When a PATCH moves it to a blocked address, along with other changes
    for url in ("http://10.0.0.1/hook", "https://rebound.test/hook"):
        response = await api.client.patch(
            f"/webhooks/{created['id']}",
            json={"url": url, "description": "after", "headers": {"X-A": "1"}},
        )

        # Then it is refused on url, naming ALLOWED_NETWORKS, and nothing changed
        assert "ALLOWED_NETWORKS" in url_error(response)["msg"]
    assert (await api.client.get(f"/webhooks/{created['id']}")).json() == created

    # And a PATCH to an allowed URL goes through
    moved = await api.client.patch(
        f"/webhooks/{created['id']}", json={"url": "http://127.0.0.1:9000/in"}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["url"] == "http://127.0.0.1:9000/in"


async def test_a_patch_without_url_looks_nothing_up(sqlite_api: Api, dns: FakeDns) -> None:
    created = await sqlite_api.create_webhook(url="https://hooks.example.net/in")
    dns.lookups.clear()

    response = await sqlite_api.client.patch(
        f"/webhooks/{created['id']}", json={"description": "x"}
    )

    assert response.status_code == 200
    assert dns.lookups == []


# --- credentials in the URL -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pw@example.com/h",
        "https://user@example.com/h",
        "https://:pw@example.com/h",
        "https://us%65r:p%40ss@example.com/h",  # percent-encoded user and password
        "https://user%3Apw@example.com/h",  # an encoded colon
        "http://user:pw@127.0.0.1:8000/h",
        "HTTPS://token@example.com",
    ],
)
async def test_credentials_in_the_url_are_422_pointing_to_headers(
    sqlite_api: Api, dns: FakeDns, url: str
) -> None:
    created = await sqlite_api.create_webhook()
    dns.lookups.clear()

    post = await sqlite_api.client.post("/webhooks", json={"url": url})
    patch = await sqlite_api.client.patch(f"/webhooks/{created['id']}", json={"url": url})

    for response in (post, patch):
        error = url_error(response)
        assert error["msg"].startswith("Must not carry credentials (user:password@ or user@)")
        assert "headers" in error["msg"]
        assert "Authorization" in error["msg"]
    assert await webhook_count(sqlite_api) == 1
    assert (await sqlite_api.client.get(f"/webhooks/{created['id']}")).json() == created
    assert dns.lookups == []  # refused before any lookup


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a@b",  # an @ in the path is not a credential
        "https://example.com/?next=user@example.org",
        "https://example.com/#me@here",
    ],
)
async def test_an_at_sign_after_the_host_is_taken(sqlite_api: Api, url: str) -> None:
    response = await sqlite_api.client.post("/webhooks", json={"url": url})
    assert response.status_code == 201, response.text
