"""Issue 8, defect 1: a retry config the API accepts can always be read back, and a refused one
writes nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from hookline.storage.models import Endpoint
from tests.integration.api.helpers import Api, assert_422


async def test_put_with_only_a_large_base_delay_is_resolved_and_readable(api: Api) -> None:
    # Given a webhook, and a PUT that leaves max_delay (default 7200) below its base_delay
    webhook = await api.create_webhook()
    path = f"/webhooks/{webhook['id']}/retry-config"
    put = await api.client.put(path, json={"base_delay": 8000})

    # Then it is resolved, not a 500: max_delay follows base_delay
    assert put.status_code == 200, put.text
    assert put.json()["max_delay"] == 8000.0
    assert put.json()["source"] == "custom"
    # and every read of that webhook works afterwards
    for read in (path, f"{path}/schedule", f"/webhooks/{webhook['id']}", "/webhooks"):
        assert (await api.client.get(read)).status_code == 200, read
    patched = await api.client.patch(f"/webhooks/{webhook['id']}", json={"description": "x"})
    assert patched.status_code == 200
    assert (await api.client.post(f"/webhooks/{webhook['id']}/disable")).status_code == 200
    assert (await api.client.post(f"/webhooks/{webhook['id']}/enable")).status_code == 200


async def test_create_with_only_a_large_base_delay_is_201(api: Api) -> None:
    created = await api.client.post(
        "/webhooks",
        json={"url": "https://example.com/hook", "retry_config": {"base_delay": 50000}},
    )
    assert created.status_code == 201, created.text
    config = created.json()["retry_config"]
    assert (config["max_delay"], config["max_retry_duration"]) == (50000.0, 50000.0)


async def test_a_refused_config_writes_nothing(api: Api) -> None:
    # Given a base_delay longer than any window can be: a 422 naming base_delay...
    response = await api.client.post(
        "/webhooks",
        json={"url": "https://example.com/hook", "retry_config": {"base_delay": 700000}},
    )
    assert_422(response, "body", "retry_config", "base_delay")
    # ...and no webhook was created
    async with api.runtime.sessions() as session:
        count = (await session.execute(select(func.count()).select_from(Endpoint))).scalar_one()
    assert count == 0

    # And a refused PUT leaves the stored config as it was
    webhook = await api.create_webhook(retry_config={"max_retries": 3})
    path = f"/webhooks/{webhook['id']}/retry-config"
    refused = await api.client.put(path, json={"base_delay": 8000, "max_delay": 7200})
    assert_422(refused, "body", "max_delay")
    assert (await api.client.get(path)).json()["max_retries"] == 3
