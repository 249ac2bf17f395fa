"""``/webhooks`` for endpoints that come back, on SQLite and on PostgreSQL: the fields
payload_format, rate_limit_per_s and probe_enabled; enabling with ``recover``; discarding the
parked deliveries; probing by hand (to a real loopback receiver); the parked count and
``GET /deliveries?state=parked``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hookline.domain.states import DisabledReason
from tests.integration.api.helpers import UNKNOWN, Api, assert_422, assert_error, is_utc
from tests.receiver import Receiver

PROBE_FIELDS = {"attempt", "successes", "successes_needed", "status", "next_probe_at"}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


async def _publish(api: Api, count: int) -> list[dict[str, str]]:
    """``count`` order.created events: their deliveries (``id``, ``webhook_id``)."""
    deliveries = []
    for n in range(count):
        response = await api.client.post(
            "/events", json={"event_type": "order.created", "payload": {"n": n}}
        )
        assert response.status_code == 202, response.text
        deliveries.extend(response.json()["deliveries"])
        api.clock.advance(0.001)
    return deliveries


async def _parked_webhook(api: Api, count: int, **body: Any) -> tuple[str, set[str]]:
    """A webhook disabled through the API with ``count`` parked deliveries: its id and theirs."""
    webhook_id = (await api.create_webhook(**body))["id"]
    disabled = await api.client.post(f"/webhooks/{webhook_id}/disable")
    assert disabled.status_code == 200, disabled.text
    delivery_ids = {d["id"] for d in await _publish(api, count) if d["webhook_id"] == webhook_id}
    assert len(delivery_ids) == count
    return webhook_id, delivery_ids


async def _webhook(api: Api, webhook_id: str) -> dict[str, Any]:
    response = await api.client.get(f"/webhooks/{webhook_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def _dead_letters(api: Api, webhook_id: str) -> dict[str, dict[str, Any]]:
    response = await api.client.get("/dead-letters", params={"webhook_id": webhook_id})
    assert response.status_code == 200, response.text
    return {d["id"]: d for d in response.json()["data"]}


# --- the fields ---------------------------------------------------------------------------------


async def test_a_new_webhook_has_the_lifecycle_defaults(api: Api) -> None:
    created = await api.create_webhook()

    assert created["payload_format"] == "envelope"
    assert created["rate_limit_per_s"] is None
    assert created["probe_enabled"] is True
    assert (created["status"], created["parked"], created["next_probe_at"]) == ("active", 0, None)
    assert await _webhook(api, created["id"]) == created


async def test_the_lifecycle_fields_round_trip_through_post_get_and_patch(api: Api) -> None:
    # Given a webhook created with all three
    created = await api.create_webhook(
        payload_format="raw", rate_limit_per_s=5, probe_enabled=False
    )
    path = f"/webhooks/{created['id']}"
    assert (created["payload_format"], created["rate_limit_per_s"], created["probe_enabled"]) == (
        "raw",
        5.0,
        False,
    )
    assert await _webhook(api, created["id"]) == created

    # When a PATCH changes them
    changed = await api.client.patch(
        path, json={"payload_format": "envelope", "rate_limit_per_s": 2.5, "probe_enabled": True}
    )

    # Then the answer and a GET show the new values
    assert changed.status_code == 200, changed.text
    fields = ("payload_format", "rate_limit_per_s", "probe_enabled")
    assert [changed.json()[f] for f in fields] == ["envelope", 2.5, True]
    assert await _webhook(api, created["id"]) == changed.json()

    # When a PATCH gives rate_limit_per_s null, the limit is gone and the rest stays
    removed = await api.client.patch(path, json={"rate_limit_per_s": None})
    assert removed.status_code == 200, removed.text
    assert [removed.json()[f] for f in fields] == ["envelope", None, True]
    assert await _webhook(api, created["id"]) == removed.json()


BAD_FIELDS = [
    pytest.param({"payload_format": "xml"}, "payload_format", id="payload_format-xml"),
    pytest.param({"rate_limit_per_s": 0}, "rate_limit_per_s", id="rate-zero"),
    pytest.param({"rate_limit_per_s": -1}, "rate_limit_per_s", id="rate-negative"),
    pytest.param({"rate_limit_per_s": "fast"}, "rate_limit_per_s", id="rate-string"),
]


@pytest.mark.parametrize(("body", "field"), BAD_FIELDS)
async def test_a_bad_lifecycle_field_in_a_post_is_422_naming_it(
    api: Api, body: dict[str, Any], field: str
) -> None:
    response = await api.client.post("/webhooks", json={"url": "https://example.com/h", **body})

    assert_422(response, "body", field)
    assert (await api.client.get("/webhooks")).json()["data"] == []


@pytest.mark.parametrize(("body", "field"), BAD_FIELDS)
async def test_a_bad_lifecycle_field_in_a_patch_is_422_naming_it_and_changes_nothing(
    api: Api, body: dict[str, Any], field: str
) -> None:
    # Given a webhook with a rate limit
    created = await api.create_webhook(rate_limit_per_s=3)

    # When a PATCH carries a bad value beside a good change
    response = await api.client.patch(
        f"/webhooks/{created['id']}", json={**body, "description": "changed"}
    )

    # Then it is refused on that field, and nothing changed
    assert_422(response, "body", field)
    assert await _webhook(api, created["id"]) == created


@pytest.mark.parametrize(
    "recover", ["later", "since:yesterday", "since:2026-13-01T00:00:00Z", "since:2026-12-01"]
)
async def test_a_bad_recover_is_422_and_the_webhook_stays_disabled(api: Api, recover: str) -> None:
    # Given a disabled webhook with a parked delivery
    webhook_id, [delivery_id] = await _parked_webhook(api, 1)
    before = await _webhook(api, webhook_id)

    # When it is enabled with a recover that is none of parked, none, since:<RFC 3339>
    response = await api.client.post(f"/webhooks/{webhook_id}/enable", json={"recover": recover})

    # Then it is refused on recover, and nothing changed
    assert_422(response, "body", "recover")
    assert await _webhook(api, webhook_id) == before
    assert before["status"] == "disabled"
    assert before["parked"] == 1
    assert (await api.delivery(delivery_id))["state"] == "parked"


# --- enabling and discarding --------------------------------------------------------------------


async def test_enable_with_recover_none_makes_the_parked_ones_dead_letters(api: Api) -> None:
    # Given a disabled webhook with two parked deliveries
    webhook_id, delivery_ids = await _parked_webhook(api, 2)

    # When it is enabled with recover none
    response = await api.client.post(f"/webhooks/{webhook_id}/enable", json={"recover": "none"})

    # Then it is active at once, nothing parked, and they are dead letters (discarded)
    assert response.status_code == 200, response.text
    enabled = response.json()
    assert (enabled["status"], enabled["parked"], enabled["disabled_reason"]) == (
        "active",
        0,
        None,
    )
    dead = await _dead_letters(api, webhook_id)
    assert set(dead) == delivery_ids
    assert {(d["state"], d["last_error"]) for d in dead.values()} == {("failed", "discarded")}


async def test_enable_by_default_recovers_the_parked_ones(api: Api) -> None:
    # Given a disabled webhook with two parked deliveries
    webhook_id, delivery_ids = await _parked_webhook(api, 2)

    # When it is enabled without a body
    response = await api.client.post(f"/webhooks/{webhook_id}/enable")

    # Then it is recovering, the two still parked for the slow start
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["parked"]) == ("recovering", 2)
    for delivery_id in delivery_ids:
        assert (await api.delivery(delivery_id))["state"] == "parked"
    assert await _dead_letters(api, webhook_id) == {}


async def test_discarding_the_parked_deliveries_makes_them_dead_letters(api: Api) -> None:
    # Given a disabled webhook with three parked deliveries
    webhook_id, delivery_ids = await _parked_webhook(api, 3)

    # When its parked deliveries are discarded
    response = await api.client.delete(f"/webhooks/{webhook_id}/parked")

    # Then the answer counts them, and they are dead letters (discarded)
    assert response.status_code == 200, response.text
    assert response.json() == {"discarded": 3}
    dead = await _dead_letters(api, webhook_id)
    assert set(dead) == delivery_ids
    assert {(d["state"], d["last_error"]) for d in dead.values()} == {("failed", "discarded")}
    # and the webhook has none parked, still disabled
    shown = await _webhook(api, webhook_id)
    assert (shown["status"], shown["parked"]) == ("disabled", 0)
    # and a second discard finds none
    again = await api.client.delete(f"/webhooks/{webhook_id}/parked")
    assert again.json() == {"discarded": 0}


async def test_discarding_for_an_unknown_webhook_is_404(api: Api) -> None:
    response = await api.client.delete(f"/webhooks/{UNKNOWN['wh']}/parked")

    assert_error(response, 404)


# --- probing by hand ----------------------------------------------------------------------------


async def test_probing_an_active_webhook_is_409(api: Api, receiver: Receiver) -> None:
    created = await api.create_webhook(url=receiver.url_for("/hook"))

    response = await api.client.post(f"/webhooks/{created['id']}/probe")

    assert_error(response, 409)
    assert receiver.requests == []
    assert await _webhook(api, created["id"]) == created


async def test_probing_an_unknown_webhook_is_404(api: Api) -> None:
    response = await api.client.post(f"/webhooks/{UNKNOWN['wh']}/probe")

    assert_error(response, 404)


async def test_probing_a_webhook_disabled_by_hand_reports_the_answer(
    api: Api, receiver: Receiver
) -> None:
    # Given a webhook disabled by hand
    webhook_id, _ = await _parked_webhook(api, 1, url=receiver.url_for("/hook"))

    # When it is probed
    response = await api.client.post(f"/webhooks/{webhook_id}/probe")

    # Then the answer is the probe's outcome; it is still disabled, with no probe planned
    assert response.status_code == 200, response.text
    result = response.json()
    assert set(result) == PROBE_FIELDS
    attempt = result["attempt"]
    assert (attempt["webhook_id"], attempt["trigger"]) == (webhook_id, "probe")
    assert (attempt["status_code"], attempt["succeeded"]) == (200, True)
    assert attempt["message_id"].startswith("msg_")
    assert (result["status"], result["next_probe_at"], result["successes_needed"]) == (
        "disabled",
        None,
        3,
    )
    [request] = receiver.requests
    assert request.json()["type"] == "hookline.probe"
    assert request.headers["webhook-id"] == attempt["message_id"]
    assert (await _webhook(api, webhook_id))["status"] == "disabled"


async def test_probing_a_failing_webhook_three_times_brings_it_back(
    api: Api, receiver: Receiver
) -> None:
    # Given a webhook disabled as failing with a delivery parked
    webhook_id = (await api.create_webhook(url=receiver.url_for("/hook")))["id"]
    await api.runtime.endpoints.disable(endpoint_id=webhook_id, reason=DisabledReason.FAILING)
    await _publish(api, 1)
    shown = await _webhook(api, webhook_id)
    assert (shown["status"], shown["disabled_reason"], shown["parked"]) == (
        "disabled",
        "failing",
        1,
    )
    assert is_utc(shown["next_probe_at"])

    # When it is probed by hand three times, answering 200
    results = []
    for _ in range(3):
        response = await api.client.post(f"/webhooks/{webhook_id}/probe")
        assert response.status_code == 200, response.text
        results.append(response.json())

    # Then each counts, and the third makes it recovering (no more probes planned)
    assert [(r["successes"], r["status"]) for r in results] == [
        (1, "disabled"),
        (2, "disabled"),
        (3, "recovering"),
    ]
    assert all(is_utc(r["next_probe_at"]) for r in results[:2])
    assert results[2]["next_probe_at"] is None
    shown = await _webhook(api, webhook_id)
    assert (shown["status"], shown["parked"], shown["next_probe_at"]) == ("recovering", 1, None)


# --- what is parked -----------------------------------------------------------------------------


async def test_the_parked_count_and_the_parked_deliveries_are_shown(api: Api) -> None:
    # Given a disabled webhook with two parked deliveries and an active one with a pending one
    active_id = (await api.create_webhook(url="https://example.com/active"))["id"]
    webhook_id, parked_ids = await _parked_webhook(api, 1)
    parked_ids |= {d["id"] for d in await _publish(api, 1) if d["webhook_id"] == webhook_id}

    # When the webhooks and the parked deliveries are asked for
    shown = await _webhook(api, webhook_id)
    listed = (await api.client.get("/webhooks")).json()["data"]
    parked = await api.client.get("/deliveries", params={"state": "parked"})

    # Then the webhook shows its status and count, in the list too
    assert (shown["status"], shown["disabled_reason"], shown["parked"]) == (
        "disabled",
        "manual",
        2,
    )
    assert {w["id"]: (w["status"], w["parked"]) for w in listed} == {
        webhook_id: ("disabled", 2),
        active_id: ("active", 0),
    }
    # and the parked ones are listed, those alone, with no due time
    assert parked.status_code == 200, parked.text
    data = parked.json()["data"]
    assert {d["id"] for d in data} == parked_ids
    assert {(d["webhook_id"], d["state"], d["next_attempt_at"]) for d in data} == {
        (webhook_id, "parked", None)
    }
