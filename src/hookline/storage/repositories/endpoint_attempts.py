"""SQL of attempts made on an endpoint itself (a probe or a test send), not on a delivery.

They live in ``delivery_attempts`` beside a delivery's attempts, told apart by ``trigger``
(``probe`` | ``test``), with ``endpoint_id`` set and ``delivery_id`` NULL; nothing is retried
after them, so ``retryable`` is false and ``next_delay`` NULL.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hookline.storage.models import DeliveryAttempt
from hookline.storage.repositories.deliveries import insert_attempts


async def insert_endpoint_attempt(
    session: AsyncSession,
    *,
    attempt_id: str,
    endpoint_id: str,
    trigger: str,
    attempt_number: int,
    started_at: datetime,
    duration_ms: int,
    status_code: int | None,
    error: str | None,
    response_body: str | None,
) -> None:
    """Record one attempt of endpoint ``endpoint_id`` (one statement, the caller's transaction;
    the same insert as a delivery's attempts)."""
    await insert_attempts(
        session,
        rows=[
            {
                "id": attempt_id,
                "delivery_id": None,
                "endpoint_id": endpoint_id,
                "trigger": trigger,
                "attempt_number": attempt_number,
                "started_at": started_at,
                "duration_ms": duration_ms,
                "status_code": status_code,
                "error": error,
                "retryable": False,
                "response_body": response_body,
                "next_delay": None,
            }
        ],
    )


async def recent_endpoint_attempts(
    session: AsyncSession, *, endpoint_id: str, trigger: str | None = None, limit: int
) -> list[DeliveryAttempt]:
    """Up to ``limit`` probes and test sends of the endpoint (only ``trigger`` ones when given),
    newest first."""
    query = select(DeliveryAttempt).where(DeliveryAttempt.endpoint_id == endpoint_id)
    if trigger is not None:
        query = query.where(DeliveryAttempt.trigger == trigger)
    query = query.order_by(DeliveryAttempt.started_at.desc(), DeliveryAttempt.id.desc())
    result = await session.execute(query.limit(limit))
    return list(result.scalars())
