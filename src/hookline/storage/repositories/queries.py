"""SQL of the read side: event and delivery lists, an event's deliveries, attempts.

Lists are keyset-paged newest first. Deliveries: ``ORDER BY id DESC``, ``id < :before_id`` (ids
are time-ordered, and the primary key index serves the order). Events: ``ORDER BY created_at
DESC, id DESC``, ``(created_at, id) < (:created_at, :id)``, the order their ``since``/``until``
filter reads. Callers ask for one row more than they show to learn whether another page exists.

An event-type pattern (``hookline.domain.event_types``) is matched in SQL, so a filtered list
pages like any other: ``*`` stands for one non-empty segment without dots, which is a one-or-more
character wildcard (``_%`` in LIKE, ``?*`` in GLOB) plus "as many dots as the pattern has". SQLite
gets GLOB because its LIKE ignores ASCII case and an event type's case is part of it; PostgreSQL's
LIKE is case-sensitive already.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import ColumnElement, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from hookline.domain.event_types import SEPARATOR, WILDCARD
from hookline.storage.models import Delivery, DeliveryAttempt, Event
from hookline.storage.repositories._sql import one_of
from hookline.storage.types import UtcDateTime

LIKE_ESCAPE: Final = "\\"
"""Escapes ``%``, ``_`` and itself in the literal parts of a LIKE pattern."""
_LIKE_SPECIAL: Final = frozenset({"%", "_", LIKE_ESCAPE})
_GLOB_SPECIAL: Final = frozenset({"*", "?", "["})
"""Written as a one-character class (``[*]``) to stand for themselves in a GLOB pattern."""


def _like_literal(text: str) -> str:
    return "".join(LIKE_ESCAPE + char if char in _LIKE_SPECIAL else char for char in text)


def _glob_literal(text: str) -> str:
    return "".join(f"[{char}]" if char in _GLOB_SPECIAL else char for char in text)


def event_type_matches(
    column: ColumnElement[str], pattern: str, *, sqlite: bool
) -> ColumnElement[bool]:
    """``column`` holds an event type that ``pattern`` matches, as
    ``hookline.domain.event_types.matches`` decides: equality for an exact type; for a pattern
    (already validated: every ``*`` is a whole segment) a case-sensitive wildcard match and the
    pattern's number of dots."""
    if WILDCARD not in pattern:
        return column == pattern
    segments = pattern.split(SEPARATOR)
    if sqlite:
        glob = SEPARATOR.join("?*" if s == WILDCARD else _glob_literal(s) for s in segments)
        shape = column.op("GLOB")(literal(glob))
    else:
        like = SEPARATOR.join("_%" if s == WILDCARD else _like_literal(s) for s in segments)
        shape = column.like(literal(like), escape=LIKE_ESCAPE)
    dots = func.length(column) - func.length(func.replace(column, SEPARATOR, ""))
    return shape & (dots == len(segments) - 1)


async def get_event(session: AsyncSession, *, event_id: str) -> Event | None:
    """The event, or None."""
    return await session.get(Event, event_id)


async def list_events(
    session: AsyncSession,
    *,
    event_type: str | None,
    since: datetime | None,
    until: datetime | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Event]:
    """Up to ``limit`` events matching every given filter, newest first: ``event_type`` an exact
    type or a pattern, ``since <= created_at < until``, and after ``before`` (the
    ``(created_at, id)`` of the last row of the previous page) in that order."""
    query = select(Event)
    if event_type is not None:
        sqlite = session.get_bind().dialect.name == "sqlite"
        query = query.where(
            event_type_matches(Event.event_type.expression, event_type, sqlite=sqlite)
        )
    if since is not None:
        query = query.where(Event.created_at >= since)
    if until is not None:
        query = query.where(Event.created_at < until)
    if before is not None:
        created_at, event_id = before
        query = query.where(
            tuple_(Event.created_at, Event.id)
            < tuple_(literal(created_at, UtcDateTime), literal(event_id))
        )
    result = await session.execute(
        query.order_by(Event.created_at.desc(), Event.id.desc()).limit(limit)
    )
    return list(result.scalars())


async def count_deliveries_by_event(
    session: AsyncSession, *, event_ids: Sequence[str]
) -> dict[str, int]:
    """How many deliveries each of ``event_ids`` has (one grouped query; absent = none)."""
    if not event_ids:
        return {}
    postgresql = session.get_bind().dialect.name == "postgresql"
    result = await session.execute(
        select(Delivery.event_id, func.count())
        .where(one_of(Delivery.event_id.expression, postgresql=postgresql, values=list(event_ids)))
        .group_by(Delivery.event_id)
    )
    return dict(result.tuples().all())


async def event_deliveries(session: AsyncSession, *, event_id: str) -> list[Delivery]:
    """Every delivery of the event, newest first (one per endpoint it fanned out to)."""
    result = await session.execute(
        select(Delivery).where(Delivery.event_id == event_id).order_by(Delivery.id.desc())
    )
    return list(result.scalars())


async def get_delivery(session: AsyncSession, *, delivery_id: str) -> Delivery | None:
    """The delivery, or None."""
    return await session.get(Delivery, delivery_id)


async def delivery_attempts(session: AsyncSession, *, delivery_id: str) -> list[DeliveryAttempt]:
    """The delivery's attempts, first attempt first."""
    result = await session.execute(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id == delivery_id)
        .order_by(DeliveryAttempt.attempt_number, DeliveryAttempt.id)
    )
    return list(result.scalars())


async def list_deliveries(
    session: AsyncSession,
    *,
    endpoint_id: str | None,
    event_id: str | None,
    state: str | None,
    before_id: str | None,
    limit: int,
    completed_since: datetime | None = None,
    completed_until: datetime | None = None,
) -> list[Delivery]:
    """Up to ``limit`` deliveries matching every given filter, newest first
    (``completed_since <= completed_at < completed_until``)."""
    query = select(Delivery)
    if endpoint_id is not None:
        query = query.where(Delivery.endpoint_id == endpoint_id)
    if event_id is not None:
        query = query.where(Delivery.event_id == event_id)
    if state is not None:
        query = query.where(Delivery.state == state)
    if completed_since is not None:
        query = query.where(Delivery.completed_at >= completed_since)
    if completed_until is not None:
        query = query.where(Delivery.completed_at < completed_until)
    if before_id is not None:
        query = query.where(Delivery.id < before_id)
    result = await session.execute(query.order_by(Delivery.id.desc()).limit(limit))
    return list(result.scalars())
