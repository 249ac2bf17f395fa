"""``POST /webhooks/{id}/test``: a signed ``hookline.test`` sent now to a real loopback receiver,
on SQLite and on PostgreSQL; the answer is the attempt's outcome, and the attempt is recorded."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from hookline.storage.models import DeliveryAttempt
from tests.integration.api.helpers import UNKNOWN, Api, assert_error, is_id, iso
from tests.receiver import Receiver, RecordedRequest

RESULT_FIELDS = {
    "attempt_id",
    "webhook_id",
    "message_id",
    "trigger",
    "status_code",
    "duration_ms",
    "error",
    "succeeded",
    "started_at",
}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


async def _webhook(api: Api, receiver: Receiver, path: str = "/hook") -> tuple[str, str]:
    """A webhook on ``receiver`` at ``path``: its id and secret."""
    created = await api.create_webhook(url=receiver.url_for(path))
    secret = (await api.client.get(f"/webhooks/{created['id']}/secret")).json()["secret"]
    return created["id"], secret


def _verifies(request: RecordedRequest, secret: str, api: Api) -> bool:
    return request.signed_by(secret, now_s=api.clock.now().timestamp())


async def _attempts(api: Api, webhook_id: str) -> list[DeliveryAttempt]:
    async with api.runtime.sessions() as session:
        rows = await session.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.endpoint_id == webhook_id)
        )
        return list(rows)


async def test_a_test_send_reaches_the_receiver_signed_and_is_answered(
    api: Api, receiver: Receiver
) -> None:
    # Given a webhook whose receiver answers 200
    webhook_id, secret = await _webhook(api, receiver)
    now = api.clock.now()

    # When a test is asked for
    response = await api.client.post(f"/webhooks/{webhook_id}/test")

    # Then the answer is the attempt's outcome
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert set(result) == RESULT_FIELDS
    assert is_id(result["attempt_id"], "att")
    assert result["webhook_id"] == webhook_id
    assert result["message_id"].startswith("msg_")
    assert result["trigger"] == "test"
    assert (result["status_code"], result["error"], result["succeeded"]) == (200, None, True)
    assert isinstance(result["duration_ms"], int)
    assert result["duration_ms"] >= 0
    assert result["started_at"] == iso(now)
    # and the receiver got one POST, signed with the webhook's secret, with that webhook-id
    [request] = receiver.requests
    assert _verifies(request, secret, api)
    assert request.headers["webhook-id"] == result["message_id"]
    assert request.headers["webhook-attempt"] == "1"
    # and its body is the envelope of a hookline.test event
    assert json.loads(request.body) == {
        "type": "hookline.test",
        "timestamp": iso(now),
        "data": {"webhook_id": webhook_id, "trigger": "test", "sent_at": iso(now)},
    }
    # and the attempt is recorded as the webhook's, trigger test
    [attempt] = await _attempts(api, webhook_id)
    assert (attempt.id, attempt.trigger, attempt.delivery_id) == (
        result["attempt_id"],
        "test",
        None,
    )
    assert (attempt.status_code, attempt.duration_ms) == (200, result["duration_ms"])


async def test_a_receiver_that_fails_gives_an_unsuccessful_result(
    api: Api, receiver: Receiver
) -> None:
    webhook_id, _ = await _webhook(api, receiver)
    receiver.on("/hook", statuses=[500])

    response = await api.client.post(f"/webhooks/{webhook_id}/test")

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["status_code"], result["error"], result["succeeded"]) == (500, None, False)
    assert len(receiver.requests) == 1
    [attempt] = await _attempts(api, webhook_id)
    assert (attempt.trigger, attempt.status_code) == ("test", 500)
    # and the webhook is as it was: a test does not count towards its health
    webhook = (await api.client.get(f"/webhooks/{webhook_id}")).json()
    assert (webhook["status"], webhook["disabled_reason"]) == ("active", None)


async def test_a_receiver_that_does_not_answer_gives_the_error(api: Api) -> None:
    # Given a webhook whose receiver is gone (the port refuses connections)
    async with Receiver() as gone:
        webhook_id, _ = await _webhook(api, gone)

    response = await api.client.post(f"/webhooks/{webhook_id}/test")

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["status_code"], result["error"], result["succeeded"]) == (
        None,
        "connect",
        False,
    )


async def test_a_disabled_webhook_can_be_tested(api: Api, receiver: Receiver) -> None:
    webhook_id, _ = await _webhook(api, receiver)
    disabled = await api.client.post(f"/webhooks/{webhook_id}/disable")
    assert disabled.status_code == 200, disabled.text

    response = await api.client.post(f"/webhooks/{webhook_id}/test")

    assert response.status_code == 200, response.text
    assert response.json()["succeeded"] is True
    assert len(receiver.requests) == 1
    webhook = (await api.client.get(f"/webhooks/{webhook_id}")).json()
    assert (webhook["status"], webhook["disabled_reason"]) == ("disabled", "manual")


@pytest.mark.parametrize(
    "webhook_id", [UNKNOWN["wh"], "not-an-id", "evt_00000000000000000000000000"]
)
async def test_an_unknown_webhook_is_404(api: Api, receiver: Receiver, webhook_id: str) -> None:
    response = await api.client.post(f"/webhooks/{webhook_id}/test")

    assert assert_error(response, 404) == f"webhook {webhook_id!r} not found"
    assert receiver.requests == []


async def test_a_deleted_webhook_is_404(api: Api, receiver: Receiver) -> None:
    webhook_id, _ = await _webhook(api, receiver)
    assert (await api.client.delete(f"/webhooks/{webhook_id}")).status_code == 204

    response = await api.client.post(f"/webhooks/{webhook_id}/test")
    assert assert_error(response, 404) == f"webhook {webhook_id!r} not found"
    assert receiver.requests == []


async def test_a_test_send_needs_a_token(api: Api, receiver: Receiver) -> None:
    webhook_id, _ = await _webhook(api, receiver)

    response = await api.client.post(
        f"/webhooks/{webhook_id}/test", headers={"Authorization": "Bearer wrong"}
    )

    assert_error(response, 401)
    assert receiver.requests == []
