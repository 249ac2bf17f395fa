"""Rows with sensible defaults for tests: endpoints, events, deliveries and attempts.

Each helper adds one row to ``session`` and flushes it (so ids and constraints are checked at
once) but does not commit: the test owns the transaction. Times come from ``now`` (default
``DEFAULT_NOW``, the ``ManualClock`` start); any column can be overridden by keyword.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hookline import ids
from hookline.storage.models import Delivery, DeliveryAttempt, Endpoint, Event

DEFAULT_NOW = datetime(2026, 1, 1, tzinfo=UTC)


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: ``whsec_`` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


async def make_endpoint(
    session: AsyncSession, *, now: datetime = DEFAULT_NOW, **over: Any
) -> Endpoint:
    """An active endpoint for every event type at ``https://example.com/hook``."""
    values: dict[str, Any] = {
        "id": ids.new_id(ids.ENDPOINT),
        "url": "https://example.com/hook",
        "description": "",
        "event_types": [],
        "headers": {},
        "secret": new_secret(),
        "status": "active",
        "created_at": now,
        "updated_at": now,
    }
    values.update(over)
    endpoint = Endpoint(**values)
    session.add(endpoint)
    await session.flush()
    return endpoint


async def make_event(session: AsyncSession, *, now: datetime = DEFAULT_NOW, **over: Any) -> Event:
    """An ``order.created`` event; a non-string ``payload`` is stored as compact JSON text."""
    values: dict[str, Any] = {
        "id": ids.new_id(ids.EVENT),
        "event_type": "order.created",
        "payload": {"order_id": 1},
        "idempotency_key": None,
        "created_at": now,
    }
    values.update(over)
    if not isinstance(values["payload"], str):
        values["payload"] = json.dumps(values["payload"], separators=(",", ":"))
    event = Event(**values)
    session.add(event)
    await session.flush()
    return event


async def make_delivery(
    session: AsyncSession,
    *,
    event: Event,
    endpoint: Endpoint,
    now: datetime = DEFAULT_NOW,
    **over: Any,
) -> Delivery:
    """A ``pending`` delivery of ``event`` to ``endpoint``, due at ``now``, no attempts yet."""
    values: dict[str, Any] = {
        "id": ids.new_id(ids.DELIVERY),
        "event_id": event.id,
        "endpoint_id": endpoint.id,
        "state": "pending",
        "attempt_number": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
        "version": 0,
    }
    values.update(over)
    delivery = Delivery(**values)
    session.add(delivery)
    await session.flush()
    return delivery


async def make_attempt(
    session: AsyncSession,
    *,
    delivery: Delivery,
    now: datetime = DEFAULT_NOW,
    **over: Any,
) -> DeliveryAttempt:
    """Attempt 1 of ``delivery``, started at ``now``: a retryable 503 after 42 ms."""
    values: dict[str, Any] = {
        "id": ids.new_id(ids.ATTEMPT),
        "delivery_id": delivery.id,
        "attempt_number": 1,
        "started_at": now,
        "duration_ms": 42,
        "status_code": 503,
        "error": None,
        "retryable": True,
        "response_body": "unavailable",
        "next_delay": None,
    }
    values.update(over)
    attempt = DeliveryAttempt(**values)
    session.add(attempt)
    await session.flush()
    return attempt
