"""POST /dead-letters/replay says what it left behind and why; manual retry names the same reasons.

On SQLite and PostgreSQL (``api``).
"""

from __future__ import annotations

from typing import Any

from hookline.storage.models import Delivery
from tests.integration.api.helpers import Api, assert_error, iso


async def _dead_letter(api: Api, webhook: dict[str, Any]) -> Delivery:
    return await api.seed_delivery(
        webhook_id=webhook["id"], state="failed", next_attempt_at=None, completed_at=api.clock.now()
    )


async def test_replay_counts_the_dead_letters_of_inactive_webhooks_by_reason(api: Api) -> None:
    # Given dead letters of an active, a disabled and a deleted webhook
    active = await api.create_webhook()
    disabled = await api.create_webhook()
    deleted = await api.create_webhook()
    replayable = await _dead_letter(api, active)
    parked = [await _dead_letter(api, disabled) for _ in range(2)]
    gone = await _dead_letter(api, deleted)
    assert (await api.client.post(f"/webhooks/{disabled['id']}/disable")).status_code == 200
    assert (await api.client.delete(f"/webhooks/{deleted['id']}")).status_code == 204

    # When every dead letter is replayed
    response = await api.client.post("/dead-letters/replay")

    # Then the active webhook's goes back, and the others are counted by reason
    assert response.status_code == 202
    assert response.json() == {
        "replayed": 1,
        "skipped": {"endpoint_deleted": 1, "endpoint_disabled": 2},
    }
    assert (await api.delivery(replayable.id))["state"] == "pending"
    for left in [*parked, gone]:
        assert (await api.delivery(left.id))["state"] == "failed"


async def test_replaying_a_disabled_webhook_says_why_nothing_was_replayed(api: Api) -> None:
    # Given two dead letters of a disabled webhook, and one of another (disabled) webhook
    webhook = await api.create_webhook()
    other = await api.create_webhook()
    await _dead_letter(api, webhook)
    await _dead_letter(api, webhook)
    await _dead_letter(api, other)
    for each in (webhook, other):
        await api.client.post(f"/webhooks/{each['id']}/disable")

    # When its dead letters are replayed
    response = await api.client.post("/dead-letters/replay", json={"webhook_id": webhook["id"]})

    # Then none is, and the answer counts only the ones the filter chose
    assert response.status_code == 202
    assert response.json() == {"replayed": 0, "skipped": {"endpoint_disabled": 2}}

    # And once it is enabled again, they are replayed and nothing is skipped
    assert (await api.client.post(f"/webhooks/{webhook['id']}/enable", json={})).status_code == 200
    again = await api.client.post("/dead-letters/replay", json={"webhook_id": webhook["id"]})
    assert again.json() == {"replayed": 2, "skipped": {}}


async def test_skipped_follows_the_since_filter(api: Api) -> None:
    webhook = await api.create_webhook()
    await _dead_letter(api, webhook)  # failed before `since`: not chosen, so not skipped either
    api.clock.advance(60)
    since = api.clock.now()
    await _dead_letter(api, webhook)
    await api.client.post(f"/webhooks/{webhook['id']}/disable")

    response = await api.client.post("/dead-letters/replay", json={"since": iso(since)})

    assert response.json() == {"replayed": 0, "skipped": {"endpoint_disabled": 1}}


async def test_replay_of_a_deleted_webhook_counts_its_dead_letters(api: Api) -> None:
    webhook = await api.create_webhook()
    await _dead_letter(api, webhook)
    await api.client.delete(f"/webhooks/{webhook['id']}")

    response = await api.client.post("/dead-letters/replay", json={"webhook_id": webhook["id"]})

    assert response.status_code == 202
    assert response.json() == {"replayed": 0, "skipped": {"endpoint_deleted": 1}}


async def test_manual_retry_409_names_the_reason_replay_counts(api: Api) -> None:
    disabled = await api.create_webhook()
    deleted = await api.create_webhook()
    of_disabled = await _dead_letter(api, disabled)
    of_deleted = await _dead_letter(api, deleted)
    await api.client.post(f"/webhooks/{disabled['id']}/disable")
    await api.client.delete(f"/webhooks/{deleted['id']}")

    refused_disabled = assert_error(
        await api.client.post(f"/deliveries/{of_disabled.id}/retry"), 409
    )
    refused_deleted = assert_error(await api.client.post(f"/deliveries/{of_deleted.id}/retry"), 409)

    assert "(endpoint_disabled)" in refused_disabled
    assert "enable it first" in refused_disabled
    assert "(endpoint_deleted)" in refused_deleted
    assert (await api.delivery(of_disabled.id))["state"] == "failed"
