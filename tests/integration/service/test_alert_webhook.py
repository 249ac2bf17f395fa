"""``WebhookNotifier`` through a real ``Sender`` to a loopback receiver: what arrives verifies
with the ``standardwebhooks`` library, what the SSRF guard refuses is logged, never raised."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from ipaddress import ip_network
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from structlog.testing import capture_logs

from hookline.clock import ManualClock, SystemClock
from hookline.observability.alerts import (
    Alert,
    AlertDispatcher,
    AlertSummary,
    LogNotifier,
    delivery_failed_alert,
    endpoint_disabled_alert,
)
from hookline.sender import Sender
from hookline.service.alert_webhook import WebhookNotifier
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_" + "c2VjcmV0LWJ1dC1ub3QtdGhlLXJpZ2h0LW9uZQ=="
PATH = "/alerts"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as running:
        yield running


async def _sender(allowed: list[Any]) -> Sender:
    sender = Sender(
        connect_timeout_s=2.0,
        total_timeout_s=5.0,
        allowed_networks=allowed,
        user_agent="hookline/test",
        clock=SystemClock(),
    )
    await sender.start()
    return sender


@pytest.fixture
async def loopback_sender() -> AsyncIterator[Sender]:
    """A sender whose guard allows 127.0.0.1 (as ``ALLOWED_NETWORKS=127.0.0.1/32`` would)."""
    sender = await _sender([ip_network("127.0.0.1/32")])
    yield sender
    await sender.close()


@pytest.fixture
async def guarded_sender() -> AsyncIterator[Sender]:
    """A sender with the default guard: loopback is refused."""
    sender = await _sender([])
    yield sender
    await sender.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it), not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def dead_letter(clock: ManualClock | SystemClock, delivery: str = "dlv_1") -> Alert:
    return delivery_failed_alert(
        endpoint_id="wh_a",
        delivery_id=delivery,
        reason="exhausted",
        at=clock.now(),
        event_id="evt_1",
        attempt=6,
        status_code=503,
        error="HTTP 503",
    )


async def test_an_alert_arrives_signed_like_a_delivery(
    loopback_sender: Sender, receiver: Receiver
) -> None:
    # Given a webhook notifier pointed at a loopback receiver (standardwebhooks checks the
    # timestamp against the real clock, so this one uses it)
    clock = SystemClock()
    notifier = WebhookNotifier(
        sender=loopback_sender, url=receiver.url_for(PATH), secret=SECRET, clock=clock
    )
    alert = dead_letter(clock)

    # When it is told about a dead letter
    with capture_logs() as logs:
        await notifier.notify([alert])

    # Then one POST arrived, and the standardwebhooks library verifies it with the secret
    [request] = receiver.requests_to(PATH)
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"].startswith("alt_")
    body = Webhook(SECRET).verify(request.body, dict(request.headers))
    assert body["type"] == "hookline.alert.delivery_failed"
    assert body["timestamp"].endswith("Z")
    assert body["data"] == {
        "kind": "delivery_failed",
        "endpoint_id": "wh_a",
        "title": "Delivery dlv_1 to webhook wh_a failed permanently (exhausted)",
        "occurred_at": alert.at.isoformat(),
        "delivery_id": "dlv_1",
        "event_id": "evt_1",
        "attempt": 6,
        "reason": "exhausted",
        "status_code": 503,
        "error": "HTTP 503",
    }
    # And it does not verify with another secret
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_SECRET).verify(request.body, dict(request.headers))
    [sent] = [entry for entry in logs if entry["event"] == "alert.webhook_sent"]
    assert sent["host"] == "127.0.0.1"
    assert SECRET not in repr(logs)


async def test_a_storm_reaches_the_receiver_as_two_verified_messages(
    loopback_sender: Sender, receiver: Receiver
) -> None:
    # Given a dispatcher with the log and the webhook notifiers (time moved by hand from now,
    # so the signatures' timestamps are current)
    clock = ManualClock(SystemClock().now())
    notifier = WebhookNotifier(
        sender=loopback_sender, url=receiver.url_for(PATH), secret=SECRET, clock=clock
    )
    dispatcher = AlertDispatcher(
        clock=clock, notifiers=[LogNotifier(), notifier], min_interval_s=120
    )

    # When one endpoint dead-letters 10,000 deliveries and the interval passes
    with capture_logs() as logs:
        for n in range(10_000):
            dispatcher.record(dead_letter(clock, delivery=f"dlv_{n}"))
        await dispatcher.flush()
        clock.advance(120)
        await dispatcher.flush()

    # Then the receiver got the first alert and one summary, both signed
    first, summary = [
        Webhook(SECRET).verify(request.body, dict(request.headers))
        for request in receiver.requests_to(PATH)
    ]
    assert first["type"] == "hookline.alert.delivery_failed"
    assert first["data"]["delivery_id"] == "dlv_0"
    assert summary["type"] == "hookline.alert.summary"
    assert summary["data"]["count"] == 9_999
    assert summary["data"]["endpoint_id"] == "wh_a"
    # And the log says the same, once each
    events = [entry["event"] for entry in logs if entry["event"].startswith("alert.")]
    assert events.count("alert.delivery_failed") == 1
    assert events.count("alert.summary") == 1
    assert events.count("alert.webhook_sent") == 2


async def test_a_loopback_url_the_guard_refuses_is_logged_not_raised(
    guarded_sender: Sender, receiver: Receiver
) -> None:
    # Given a notifier whose URL is loopback while ALLOWED_NETWORKS does not allow it
    clock = SystemClock()
    notifier = WebhookNotifier(
        sender=guarded_sender, url=receiver.url_for(PATH), secret=SECRET, clock=clock
    )

    # When it is told about two alerts
    with capture_logs() as logs:
        await notifier.notify(
            [
                dead_letter(clock),
                endpoint_disabled_alert(endpoint_id="wh_a", reason="gone", at=clock.now()),
            ]
        )

    # Then nothing reached the receiver, nothing was raised, and one failure was logged (the
    # second alert skipped: no point trying the same refused address again)
    assert receiver.requests == []
    assert receiver.connections_accepted == 0
    [failure] = [entry for entry in logs if entry["event"] == "alert.webhook_failed"]
    assert failure["error"] == "blocked_address"
    assert failure["skipped"] == 1
    assert failure["host"] == "127.0.0.1"
    assert SECRET not in repr(logs)


async def test_a_receiver_that_is_down_is_logged_not_raised(
    loopback_sender: Sender, closed_port: int
) -> None:
    clock = SystemClock()
    notifier = WebhookNotifier(
        sender=loopback_sender,
        url=f"http://127.0.0.1:{closed_port}{PATH}",
        secret=SECRET,
        clock=clock,
    )
    with capture_logs() as logs:
        await notifier.notify([dead_letter(clock)])
    [failure] = [entry for entry in logs if entry["event"] == "alert.webhook_failed"]
    assert failure["error"] == "connect"
    assert failure["skipped"] == 0


async def test_an_error_status_is_logged_and_the_next_message_still_goes(
    loopback_sender: Sender, receiver: Receiver
) -> None:
    # Given a receiver that answers 500 once, then 204
    receiver.on(PATH, statuses=[500, 204])
    clock = SystemClock()
    notifier = WebhookNotifier(
        sender=loopback_sender, url=receiver.url_for(PATH), secret=SECRET, clock=clock
    )
    summary = AlertSummary(
        kind=dead_letter(clock).kind,
        subject=None,
        count=3,
        subjects=2,
        first_at=clock.now(),
        last_at=clock.now(),
        examples=("wh_a", "wh_b"),
    )

    # When two messages go
    with capture_logs() as logs:
        await notifier.notify([dead_letter(clock), summary])

    # Then both arrived (with different ids); the 500 was logged
    first, second = receiver.requests_to(PATH)
    assert first.headers["webhook-id"] != second.headers["webhook-id"]
    assert Webhook(SECRET).verify(second.body, dict(second.headers))["data"]["count"] == 3
    [failure] = [entry for entry in logs if entry["event"] == "alert.webhook_failed"]
    assert failure["status_code"] == 500


async def test_a_secret_that_cannot_sign_is_refused_when_built(loopback_sender: Sender) -> None:
    with pytest.raises(ValueError, match="whsec_"):
        WebhookNotifier(
            sender=loopback_sender,
            url="http://127.0.0.1:9/alerts",
            secret="not-a-secret",
            clock=SystemClock(),
        )
