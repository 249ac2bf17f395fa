"""``WebhookNotifier``: alerts POSTed to ``ALERT_WEBHOOK_URL`` as Standard Webhooks messages.

Each alert or summary is one message, ``{"type": "hookline.alert.<kind>" | "hookline.alert.summary",
"timestamp": ..., "data": {...}}``, signed exactly like a delivery (``webhook-id``,
``webhook-timestamp``, ``webhook-signature`` with ``ALERT_WEBHOOK_SECRET``) and sent through the
delivery ``Sender``, so the SSRF guard, the timeouts and the no-redirect rule apply to it too.

Best effort: one attempt per message, no retry (the log notifier's line is the record that stays).
A failure is logged as ``alert.webhook_failed`` and never raised. After a failure without an
answer (refused, timed out, blocked address) the rest of the batch is skipped, so an unreachable
receiver costs one timeout per flush, not one per message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
from yarl import URL

from hookline.clock import Clock
from hookline.domain.signing import signed_headers, validate_secret
from hookline.ids import ALERT, new_id
from hookline.observability.alerts import AlertMessage, alert_data
from hookline.observability.logging import get_logger
from hookline.sender.client import OutboundRequest, Sender

log = get_logger("hookline.alerts")

TYPE_PREFIX = "hookline."
"""``type`` of a message: this + its log event name (``hookline.alert.delivery_failed``)."""


class WebhookNotifier:
    """Sends alerts to one URL, signed with one secret, through ``sender``."""

    def __init__(self, *, sender: Sender, url: str, secret: str, clock: Clock) -> None:
        self._sender = sender
        self._url = url
        self._secret = validate_secret(secret)  # ValueError now, not at the first alert
        self._clock = clock
        self._host = _host_of(url)

    async def notify(self, messages: Sequence[AlertMessage]) -> None:
        for index, message in enumerate(messages):
            request = self.request_for(message)
            webhook_id = request.headers["webhook-id"]
            try:
                result = await self._sender.send(request)
            except Exception as exc:  # a sender bug: report it, alerts must not stop anything
                log.error(
                    "alert.webhook_failed",
                    webhook_id=webhook_id,
                    host=self._host,
                    error=f"{type(exc).__name__}: {exc}",
                    skipped=len(messages) - index - 1,
                    exc_info=True,
                )
                return
            if result.error is not None:
                log.error(
                    "alert.webhook_failed",
                    webhook_id=webhook_id,
                    host=self._host,
                    error=result.error.value,
                    error_detail=result.error_detail,
                    skipped=len(messages) - index - 1,
                )
                return  # no answer: the next ones would wait for the same timeout
            if not 200 <= (result.status_code or 0) < 300:
                log.error(
                    "alert.webhook_failed",
                    webhook_id=webhook_id,
                    host=self._host,
                    status_code=result.status_code,
                )
                continue
            log.info(
                "alert.webhook_sent",
                webhook_id=webhook_id,
                host=self._host,
                type=_type_of(message),
                status_code=result.status_code,
                duration_ms=result.duration_ms,
            )

    def request_for(self, message: AlertMessage) -> OutboundRequest:
        """The signed POST of one message, with a fresh ``webhook-id``."""
        now = self._clock.now()
        body = orjson.dumps(
            {"type": _type_of(message), "timestamp": _rfc3339(now), "data": alert_data(message)}
        )
        headers: dict[str, str] = {
            **signed_headers(
                secrets=[self._secret],
                msg_id=new_id(ALERT, at=now),
                timestamp=int(now.timestamp()),
                body=body,
            ),
            "content-type": "application/json",
        }
        return OutboundRequest(url=self._url, body=body, headers=headers)


def _type_of(message: AlertMessage) -> str:
    return TYPE_PREFIX + message.event


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _host_of(url: str) -> str | None:
    """The host alone, for logs: a URL may carry credentials or a token in its query."""
    try:
        return URL(url).host
    except (ValueError, TypeError):
        return None
