"""``EndpointSends``: one signed message to an endpoint now, outside any delivery.

A test send (``POST /webhooks/{id}/test``) and a probe of a disabled endpoint
(``service.lifecycle``) are the same request: signed exactly like a delivery (the endpoint's own
headers, ``webhook-signature`` with the current secret and, during a rotation's grace period, the
previous one, ``webhook-attempt``), in the endpoint's payload format, sent through the delivery
``Sender`` (SSRF guard, timeouts, 4 KiB answer cap, no redirects). Its body is the event
``hookline.test`` or ``hookline.probe`` whose data is::

    {"webhook_id": "wh_…", "trigger": "test" | "probe", "sent_at": "<RFC 3339 UTC>"}

``webhook-id`` is a fresh ``msg_…`` id (never an event's), so a receiver that deduplicates
events never drops one and never mistakes one for an event.

Each send is recorded as ONE row in ``delivery_attempts`` (``trigger`` ``test`` or ``probe``,
``endpoint_id`` set, no delivery) in a short transaction of its own, after the request: no
transaction is open while the subscriber answers. What the answer means for the endpoint is the
caller's to decide: nothing here changes its status or health.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookline import ids
from hookline.clock import Clock
from hookline.domain.envelope import message_body, rfc3339
from hookline.domain.lifecycle import PROBE_EVENT_TYPE, TEST_EVENT_TYPE
from hookline.domain.outcome import (
    AttemptError,
    Delivered,
    PermanentFailure,
    RetryableFailure,
    classify,
)
from hookline.domain.signing import signed_headers
from hookline.domain.text import storable_text
from hookline.errors import Conflict, NotFound
from hookline.observability.logging import get_logger
from hookline.sender.client import OutboundRequest, Sender, SendResult
from hookline.service.delivery import RESERVED_HEADERS, signing_secrets
from hookline.storage.models import Endpoint
from hookline.storage.repositories import endpoint_attempts as repo
from hookline.storage.repositories import endpoints as endpoints_repo

log = get_logger("hookline.endpoint_sends")

SendTrigger = Literal["probe", "test"]
"""Why the message is sent; also the attempt row's ``trigger``."""

_EVENT_TYPES: dict[str, str] = {"probe": PROBE_EVENT_TYPE, "test": TEST_EVENT_TYPE}


@dataclass(frozen=True, slots=True)
class EndpointSendOutcome:
    """What one send to an endpoint came to, as recorded."""

    attempt_id: str
    """The ``att_…`` id of its row in ``delivery_attempts`` (if recording it failed, the row
    does not exist: the failure is logged)."""
    message_id: str
    """The ``webhook-id`` sent (``msg_…``)."""
    trigger: SendTrigger
    status_code: int | None
    """Null when no answer arrived (``error`` says why)."""
    duration_ms: int
    error: str | None
    """An attempt's error value (``timeout``, ``connect``, ``redirect``, ...); null for an HTTP
    answer that needs no explanation."""
    ok: bool
    """A 2xx answer."""
    started_at: datetime
    retry_after_s: float | None
    """Seconds the endpoint's ``Retry-After`` asked for (retryable statuses: 408, 429, 5xx)."""
    response_body: str | None
    """The first 4 KiB of the answer, as stored."""


class EndpointSends:
    """Sends one signed ``hookline.test`` or ``hookline.probe`` to an endpoint and records it."""

    def __init__(
        self, *, sessions: async_sessionmaker[AsyncSession], sender: Sender, clock: Clock
    ) -> None:
        self._sessions = sessions
        self._sender = sender
        self._clock = clock

    async def send_once(
        self, *, endpoint_id: str, trigger: SendTrigger, attempt_number: int = 1
    ) -> EndpointSendOutcome:
        """Send the message now, whatever the endpoint's status, and record the attempt.

        ``NotFound`` for an unknown or deleted endpoint; ``Conflict`` when its stored data
        cannot make a request (a hand-edited secret or payload format: nothing is sent or
        recorded). Never raises for what the network or the subscriber does: that is the
        outcome's ``status_code``/``error``.
        """
        now = self._clock.now()
        message_id = ids.new_id(ids.MESSAGE, at=now)
        async with self._sessions() as session:
            endpoint = await endpoints_repo.get_endpoint(session, endpoint_id=endpoint_id)
            if endpoint is None:
                raise NotFound("webhook", endpoint_id)
            request = _request(
                endpoint,
                message_id=message_id,
                trigger=trigger,
                attempt_number=attempt_number,
                now=now,
            )
        started_at = self._clock.now()
        result = await self._send(request, endpoint_id=endpoint_id, trigger=trigger)
        outcome = _outcome(
            result,
            attempt_id=ids.new_id(ids.ATTEMPT, at=started_at),
            message_id=message_id,
            trigger=trigger,
            started_at=started_at,
        )
        await self._record(outcome, endpoint_id=endpoint_id, attempt_number=attempt_number)
        log.info(
            "endpoint.send",
            endpoint_id=endpoint_id,
            trigger=trigger,
            message_id=message_id,
            attempt=attempt_number,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            ok=outcome.ok,
        )
        return outcome

    async def _send(
        self, request: OutboundRequest, *, endpoint_id: str, trigger: SendTrigger
    ) -> SendResult:
        """The sender's result; an exception from it (a hookline bug, as in
        ``DeliveryService.send``) is logged and becomes an ``internal`` error."""
        try:
            return await self._sender.send(request)
        except Exception as exc:
            log.error(
                "endpoint.send_raised",
                endpoint_id=endpoint_id,
                trigger=trigger,
                error=type(exc).__name__,
                exc_info=True,
            )
            return SendResult(
                status_code=None,
                error=AttemptError.INTERNAL,
                error_detail=storable_text(f"{type(exc).__name__}: {exc}", max_chars=500),
                response_body=None,
                retry_after=None,
                duration_ms=0,
            )

    async def _record(
        self, outcome: EndpointSendOutcome, *, endpoint_id: str, attempt_number: int
    ) -> None:
        """Write the attempt row; a failure is logged, never raised (the send happened, and its
        outcome is still the caller's to act on)."""
        try:
            async with self._sessions.begin() as session:
                await repo.insert_endpoint_attempt(
                    session,
                    attempt_id=outcome.attempt_id,
                    endpoint_id=endpoint_id,
                    trigger=outcome.trigger,
                    attempt_number=attempt_number,
                    started_at=outcome.started_at,
                    duration_ms=outcome.duration_ms,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    response_body=outcome.response_body,
                )
        except Exception as exc:
            log.error(
                "endpoint.send_unrecorded",
                endpoint_id=endpoint_id,
                trigger=outcome.trigger,
                attempt_id=outcome.attempt_id,
                error=f"{type(exc).__name__}: {exc}"[:300],
                exc_info=True,
            )


def _request(
    endpoint: Endpoint,
    *,
    message_id: str,
    trigger: SendTrigger,
    attempt_number: int,
    now: datetime,
) -> OutboundRequest:
    """The signed POST, built like ``DeliveryService._plan`` builds a delivery's."""
    data = orjson.dumps({"webhook_id": endpoint.id, "trigger": trigger, "sent_at": rfc3339(now)})
    try:
        body = message_body(
            payload_format=endpoint.payload_format,
            event_type=_EVENT_TYPES[trigger],
            created_at=now,
            payload=data.decode(),
        )
        signed = signed_headers(
            secrets=signing_secrets(endpoint, now=now),
            msg_id=message_id,
            timestamp=int(now.timestamp()),
            body=body,
        )
    except ValueError as exc:
        raise Conflict(f"the request to webhook {endpoint.id} cannot be built: {exc}") from exc
    headers = {
        **{k: v for k, v in endpoint.headers.items() if k.lower() not in RESERVED_HEADERS},
        **signed,
        "content-type": "application/json",
        "webhook-attempt": str(attempt_number),
    }
    return OutboundRequest(url=endpoint.url, body=body, headers=headers)


def _outcome(
    result: SendResult,
    *,
    attempt_id: str,
    message_id: str,
    trigger: SendTrigger,
    started_at: datetime,
) -> EndpointSendOutcome:
    """The result read the way a delivery's is (``domain.outcome.classify``): a 3xx is a
    ``redirect``, a status outside 100-599 an ``invalid_response``; ``Retry-After`` is read for
    the statuses that ask to come back later."""
    outcome = classify(
        status_code=result.status_code,
        error=result.error,
        retry_after=result.retry_after,
        now=started_at,
        disable_on_status=(),
    )
    error = result.error
    retry_after_s = None
    if isinstance(outcome, PermanentFailure | RetryableFailure) and outcome.error is not None:
        error = outcome.error
    if isinstance(outcome, RetryableFailure):
        retry_after_s = outcome.retry_after_s
    return EndpointSendOutcome(
        attempt_id=attempt_id,
        message_id=message_id,
        trigger=trigger,
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        error=None if error is None else error.value,
        ok=isinstance(outcome, Delivered),
        started_at=started_at,
        retry_after_s=retry_after_s,
        response_body=storable_text(result.response_body),
    )
