"""``EndpointSends``: one signed test or probe message to an endpoint, recorded as one attempt.

Real runtime (SQLite + SQL queue, PostgreSQL + Redis), the real sender and a loopback receiver on
a ManualClock; signatures are checked with ``domain.signing.verify`` at the manual clock's time.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from hookline import ids
from hookline.domain.envelope import rfc3339
from hookline.errors import Conflict, NotFound
from hookline.sender.client import OutboundRequest, SendResult
from hookline.service.endpoint_sends import SendTrigger
from hookline.storage.models import DeliveryAttempt, Endpoint
from hookline.storage.repositories import endpoint_attempts
from tests.factories import new_secret
from tests.integration.conftest import Harness
from tests.receiver import RecordedRequest


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def _verifies(request: RecordedRequest, secret: str, harness: Harness) -> bool:
    return request.signed_by(secret, now_s=harness.clock.now().timestamp())


async def _attempts(harness: Harness, endpoint_id: str) -> list[DeliveryAttempt]:
    async with harness.runtime.sessions() as session:
        return await endpoint_attempts.recent_endpoint_attempts(
            session, endpoint_id=endpoint_id, limit=100
        )


def _health(endpoint: Endpoint) -> dict[str, Any]:
    names = (
        "status",
        "disabled_reason",
        "disabled_at",
        "failing_since",
        "last_success_at",
        "lifecycle",
        "probe_next_at",
        "updated_at",
    )
    return {name: getattr(endpoint, name) for name in names}


async def test_a_test_send_is_signed_like_a_delivery_and_recorded(harness: Harness) -> None:
    # Given an endpoint with its own headers (one trying to set a header hookline owns)
    secret = new_secret()
    endpoint_id = await harness.add_endpoint(
        secret=secret, headers={"X-Team": "payments", "Webhook-Id": "spoofed"}
    )
    harness.receiver.on("/hook", statuses=[200], body=b"thanks")
    now = harness.clock.now()

    # When a test message is sent
    outcome = await harness.runtime.endpoint_sends.send_once(
        endpoint_id=endpoint_id, trigger="test"
    )

    # Then one POST arrived, signed with the endpoint's secret, with a msg_ id of its own
    [request] = harness.receiver.requests
    assert request.method == "POST"
    assert _verifies(request, secret, harness)
    assert ids.has_prefix(request.headers["webhook-id"], ids.MESSAGE)
    assert request.headers["webhook-id"] == outcome.message_id
    assert request.headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert request.headers["webhook-attempt"] == "1"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("hookline/")
    assert request.headers["x-team"] == "payments"
    assert request.headers.getall("webhook-id") == [outcome.message_id]
    # and its body is the Standard Webhooks envelope of a hookline.test event
    assert json.loads(request.body) == {
        "type": "hookline.test",
        "timestamp": rfc3339(now),
        "data": {"webhook_id": endpoint_id, "trigger": "test", "sent_at": rfc3339(now)},
    }
    # and the outcome says what came back
    assert outcome.ok
    assert (outcome.status_code, outcome.error, outcome.retry_after_s) == (200, None, None)
    assert outcome.trigger == "test"
    assert outcome.started_at == now
    assert outcome.response_body == "thanks"
    # and exactly one attempt of the endpoint is recorded, with no delivery
    [attempt] = await _attempts(harness, endpoint_id)
    assert attempt.id == outcome.attempt_id
    assert ids.has_prefix(attempt.id, ids.ATTEMPT)
    assert (attempt.trigger, attempt.endpoint_id, attempt.delivery_id) == (
        "test",
        endpoint_id,
        None,
    )
    assert (attempt.attempt_number, attempt.started_at) == (1, now)
    assert (attempt.status_code, attempt.error, attempt.duration_ms) == (200, None, 0)
    assert (attempt.retryable, attempt.next_delay) == (False, None)
    assert attempt.response_body == "thanks"


async def test_a_raw_endpoint_gets_the_data_alone(harness: Harness) -> None:
    endpoint_id = await harness.add_endpoint(payload_format="raw")

    await harness.runtime.endpoint_sends.send_once(endpoint_id=endpoint_id, trigger="test")

    [request] = harness.receiver.requests
    sent_at = rfc3339(harness.clock.now())
    assert json.loads(request.body) == {
        "webhook_id": endpoint_id,
        "trigger": "test",
        "sent_at": sent_at,
    }


async def test_a_probe_carries_its_type_trigger_and_attempt_number(harness: Harness) -> None:
    endpoint_id = await harness.add_endpoint()

    outcome = await harness.runtime.endpoint_sends.send_once(
        endpoint_id=endpoint_id, trigger="probe", attempt_number=3
    )

    [request] = harness.receiver.requests
    body = json.loads(request.body)
    assert (body["type"], body["data"]["trigger"]) == ("hookline.probe", "probe")
    assert request.headers["webhook-attempt"] == "3"
    assert outcome.trigger == "probe"
    [attempt] = await _attempts(harness, endpoint_id)
    assert (attempt.trigger, attempt.attempt_number) == ("probe", 3)


async def test_every_send_has_a_new_message_id(harness: Harness) -> None:
    endpoint_id = await harness.add_endpoint()
    sends = harness.runtime.endpoint_sends

    first = await sends.send_once(endpoint_id=endpoint_id, trigger="test")
    second = await sends.send_once(endpoint_id=endpoint_id, trigger="test")

    assert first.message_id != second.message_id
    assert [r.headers["webhook-id"] for r in harness.receiver.requests] == [
        first.message_id,
        second.message_id,
    ]


async def test_the_previous_secret_signs_too_during_its_grace_period(harness: Harness) -> None:
    old, new = new_secret(), new_secret()
    endpoint_id = await harness.add_endpoint(
        secret=new,
        previous_secret=old,
        previous_secret_expires_at=harness.clock.now() + timedelta(hours=1),
    )

    await harness.runtime.endpoint_sends.send_once(endpoint_id=endpoint_id, trigger="test")

    [request] = harness.receiver.requests
    assert _verifies(request, new, harness)
    assert _verifies(request, old, harness)


async def test_a_disabled_endpoint_is_sent_to_and_its_health_is_untouched(
    harness: Harness,
) -> None:
    # Given an endpoint disabled as failing, failing since yesterday
    since = harness.clock.now() - timedelta(days=1)
    endpoint_id = await harness.add_endpoint(
        status="disabled",
        disabled_reason="failing",
        disabled_at=harness.clock.now(),
        failing_since=since,
    )
    before = _health(await harness.endpoint(endpoint_id))
    harness.clock.advance(60)

    # When a test message is sent and answered 200
    outcome = await harness.runtime.endpoint_sends.send_once(
        endpoint_id=endpoint_id, trigger="test"
    )

    # Then it was sent, and the endpoint is exactly as it was
    assert outcome.ok
    assert len(harness.receiver.requests) == 1
    assert _health(await harness.endpoint(endpoint_id)) == before


@pytest.mark.parametrize(
    ("status", "headers", "error", "retry_after_s"),
    [
        (500, {}, None, None),
        (429, {"Retry-After": "7"}, None, 7.0),
        (503, {"Retry-After": "120"}, None, 120.0),
        (400, {"Retry-After": "7"}, None, None),
        (302, {"Location": "/elsewhere"}, "redirect", None),
        (410, {}, None, None),
    ],
)
async def test_answers_other_than_2xx_are_failures_reported_not_raised(
    harness: Harness,
    status: int,
    headers: dict[str, str],
    error: str | None,
    retry_after_s: float | None,
) -> None:
    endpoint_id = await harness.add_endpoint()
    harness.receiver.on("/hook", statuses=[status], headers=headers)

    outcome = await harness.runtime.endpoint_sends.send_once(
        endpoint_id=endpoint_id, trigger="test"
    )

    assert not outcome.ok
    assert (outcome.status_code, outcome.error, outcome.retry_after_s) == (
        status,
        error,
        retry_after_s,
    )
    [attempt] = await _attempts(harness, endpoint_id)
    assert (attempt.status_code, attempt.error, attempt.retryable) == (status, error, False)
    endpoint = await harness.endpoint(endpoint_id)
    assert (endpoint.status, endpoint.failing_since) == ("active", None)


async def test_no_answer_is_an_error_reported_not_raised(
    harness: Harness, closed_port: int
) -> None:
    endpoint_id = await harness.add_endpoint(url=f"http://127.0.0.1:{closed_port}/hook")

    outcome = await harness.runtime.endpoint_sends.send_once(
        endpoint_id=endpoint_id, trigger="test"
    )

    assert (outcome.ok, outcome.status_code, outcome.error) == (False, None, "connect")
    [attempt] = await _attempts(harness, endpoint_id)
    assert (attempt.status_code, attempt.error) == (None, "connect")


async def test_the_address_guard_applies(harness: Harness) -> None:
    # 127.0.0.2 is loopback but not in ALLOWED_NETWORKS (127.0.0.1/32): never dialled
    endpoint_id = await harness.add_endpoint(url="http://127.0.0.2:9/hook")

    outcome = await harness.runtime.endpoint_sends.send_once(
        endpoint_id=endpoint_id, trigger="test"
    )

    assert (outcome.ok, outcome.status_code, outcome.error) == (False, None, "blocked_address")


async def test_what_the_sender_measured_is_what_is_reported_and_recorded(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a sender that answers without the network: 503 after 1234 ms, asking for 30 s
    endpoint_id = await harness.add_endpoint()
    sent: list[OutboundRequest] = []

    async def send(request: OutboundRequest) -> SendResult:
        sent.append(request)
        return SendResult(
            status_code=503,
            error=None,
            error_detail=None,
            response_body="busy\x00",
            retry_after="30",
            duration_ms=1234,
        )

    monkeypatch.setattr(harness.runtime.sender, "send", send)

    # When a probe is sent
    outcome = await harness.runtime.endpoint_sends.send_once(
        endpoint_id=endpoint_id, trigger="probe"
    )

    # Then the outcome and the row carry the sender's figures (the excerpt made storable)
    assert len(sent) == 1
    assert (outcome.status_code, outcome.duration_ms, outcome.retry_after_s) == (503, 1234, 30.0)
    assert outcome.response_body == "busy\ufffd"
    [attempt] = await _attempts(harness, endpoint_id)
    assert (attempt.duration_ms, attempt.response_body) == (1234, "busy\ufffd")


async def test_a_sender_bug_is_an_internal_error_not_an_exception(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint_id = await harness.add_endpoint()

    async def send(request: OutboundRequest) -> SendResult:
        raise RuntimeError("sender bug")

    monkeypatch.setattr(harness.runtime.sender, "send", send)

    with capture_logs() as logs:
        outcome = await harness.runtime.endpoint_sends.send_once(
            endpoint_id=endpoint_id, trigger="test"
        )

    assert (outcome.ok, outcome.status_code, outcome.error) == (False, None, "internal")
    assert any(log["event"] == "endpoint.send_raised" for log in logs)
    [attempt] = await _attempts(harness, endpoint_id)
    assert attempt.error == "internal"


async def test_an_attempt_that_cannot_be_recorded_is_logged_and_still_returned(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint_id = await harness.add_endpoint()

    async def insert_endpoint_attempt(session: Any, **kwargs: Any) -> None:
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(endpoint_attempts, "insert_endpoint_attempt", insert_endpoint_attempt)

    with capture_logs() as logs:
        outcome = await harness.runtime.endpoint_sends.send_once(
            endpoint_id=endpoint_id, trigger="test"
        )

    assert outcome.ok
    assert len(harness.receiver.requests) == 1
    [logged] = [log for log in logs if log["event"] == "endpoint.send_unrecorded"]
    assert logged["endpoint_id"] == endpoint_id
    assert logged["attempt_id"] == outcome.attempt_id
    assert "database hiccup" in logged["error"]


async def test_unknown_and_deleted_endpoints_are_not_found(harness: Harness) -> None:
    deleted = await harness.add_endpoint(deleted_at=harness.clock.now())
    sends = harness.runtime.endpoint_sends

    for endpoint_id in ("wh_00000000000000000000000000", deleted):
        with pytest.raises(NotFound):
            await sends.send_once(endpoint_id=endpoint_id, trigger="test")

    assert harness.receiver.requests == []
    async with harness.runtime.sessions() as session:
        assert list(await session.scalars(select(DeliveryAttempt))) == []


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("secret", "whsec_!!not-base64", "secret"),
        ("payload_format", "xml", "unknown payload format 'xml'"),
    ],
)
async def test_stored_data_that_cannot_make_a_request_is_a_conflict(
    harness: Harness, column: str, value: str, problem: str
) -> None:
    endpoint_id = await harness.add_endpoint(**{column: value})

    with pytest.raises(Conflict, match=problem) as raised:
        await harness.runtime.endpoint_sends.send_once(endpoint_id=endpoint_id, trigger="test")

    assert endpoint_id in str(raised.value)
    assert harness.receiver.requests == []
    assert await _attempts(harness, endpoint_id) == []


async def test_recent_attempts_are_the_endpoints_own_newest_first(harness: Harness) -> None:
    # Given two endpoints with probes and test sends, and a delivery attempt
    endpoint_id = await harness.add_endpoint()
    other = await harness.add_endpoint("/other")
    sends = harness.runtime.endpoint_sends
    triggers: tuple[SendTrigger, ...] = ("probe", "test", "probe")
    made = []
    for trigger in triggers:
        made.append(await sends.send_once(endpoint_id=endpoint_id, trigger=trigger))
        harness.clock.advance(1)
    await sends.send_once(endpoint_id=other, trigger="probe")
    await harness.publish()
    await harness.run()

    # Then each query sees that endpoint's own attempts, newest first
    async with harness.runtime.sessions() as session:
        every = await endpoint_attempts.recent_endpoint_attempts(
            session, endpoint_id=endpoint_id, limit=10
        )
        probes = await endpoint_attempts.recent_endpoint_attempts(
            session, endpoint_id=endpoint_id, trigger="probe", limit=10
        )
        latest = await endpoint_attempts.recent_endpoint_attempts(
            session, endpoint_id=endpoint_id, limit=1
        )
    assert [a.id for a in every] == [m.attempt_id for m in reversed(made)]
    assert [a.id for a in probes] == [made[2].attempt_id, made[0].attempt_id]
    assert [a.id for a in latest] == [made[2].attempt_id]
