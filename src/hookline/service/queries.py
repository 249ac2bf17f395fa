"""``DeliveryQueries``: the read side of events, deliveries, attempts and dead letters.

Read-only: one short transaction per call, nothing written. Filters that match nothing give an
empty page (a filter on an unknown webhook is not an error); an unknown id asked for directly is
``NotFound``.

The event list is newest first by ``(created_at, id)`` (the time its ``since``/``until`` filter
reads), so its cursor carries both: ``encode_event_cursor``. It behaves like every other cursor
(``hookline.service.pagination``): opaque, one spelling, ``InvalidCursor`` for anything else.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookline import ids
from hookline.domain.states import DeliveryState
from hookline.errors import NotFound
from hookline.service.pagination import (
    CURSOR_VERSION,
    MAX_CURSOR_CHARS,
    InvalidCursor,
    Page,
    decode_cursor,
    page_of,
)
from hookline.storage.models import Delivery, DeliveryAttempt, Event
from hookline.storage.repositories import queries as repo

DEAD_LETTER_STATE = DeliveryState.FAILED.value
"""Dead letters are the deliveries in this state."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_MICROSECONDS_RANGE: Final = range(
    (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND,
    (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND + 1,
)
"""Microseconds from the epoch that a ``datetime`` can hold."""
_INTEGER: Final = re.compile(r"-?[0-9]+")
_NOT_OURS: Final = "cursor is not one this API handed out"


def encode_event_cursor(created_at: datetime, event_id: str) -> str:
    """The opaque cursor that continues the event list after this row (``created_at`` is
    aware; kept to the microsecond, as both databases store it)."""
    microseconds = (created_at - _EPOCH) // _MICROSECOND
    raw = f"{CURSOR_VERSION}:{event_id}:{microseconds}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_event_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """The ``(created_at, id)`` an event cursor stands for (None for no cursor);
    ``InvalidCursor`` if it is not one ``encode_event_cursor`` made."""
    if cursor is None:
        return None
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursor(_NOT_OURS)
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InvalidCursor(_NOT_OURS) from exc
    parts = text.split(":")
    if (
        len(parts) != 3
        or parts[0] != CURSOR_VERSION
        or not ids.has_prefix(parts[1], ids.EVENT)
        or not _INTEGER.fullmatch(parts[2])
        or int(parts[2]) not in _MICROSECONDS_RANGE
    ):
        raise InvalidCursor(_NOT_OURS)
    event_id = parts[1]
    created_at = _EPOCH + int(parts[2]) * _MICROSECOND
    if encode_event_cursor(created_at, event_id) != cursor:  # one spelling per cursor
        raise InvalidCursor(_NOT_OURS)
    return created_at, event_id


@dataclass(frozen=True, slots=True)
class EventWithDeliveries:
    """An event and every delivery it fanned out to, newest first."""

    event: Event
    deliveries: list[Delivery]


@dataclass(frozen=True, slots=True)
class EventSummary:
    """An event of the list, and how many deliveries it has now."""

    event: Event
    delivery_count: int


@dataclass(frozen=True, slots=True)
class DeliveryWithAttempts:
    """A delivery and its attempts, first attempt first."""

    delivery: Delivery
    attempts: list[DeliveryAttempt]


def _delivery_id(row: Delivery) -> str:
    return row.id


class DeliveryQueries:
    """Reads for the API: events, deliveries with attempts, and the dead-letter list."""

    def __init__(self, *, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def get_event(self, *, event_id: str) -> EventWithDeliveries:
        """The event and its deliveries; ``NotFound`` for an unknown id."""
        async with self._sessions() as session:
            event = await repo.get_event(session, event_id=event_id)
            if event is None:
                raise NotFound("event", event_id)
            deliveries = await repo.event_deliveries(session, event_id=event_id)
        return EventWithDeliveries(event=event, deliveries=deliveries)

    async def list_events(
        self,
        *,
        event_type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[EventSummary]:
        """Events matching every given filter, newest first: ``event_type`` an exact type or a
        validated pattern (``hookline.domain.event_types``), ``since <= created_at < until``.
        Two statements: the page, then its delivery counts grouped in one.

        Raises ``InvalidCursor`` (a ``ValueError``) for a cursor this API did not hand out.
        """
        before = decode_event_cursor(cursor)
        async with self._sessions() as session:
            rows = await repo.list_events(
                session,
                event_type=event_type,
                since=since,
                until=until,
                before=before,
                limit=limit + 1,
            )
            shown = rows[:limit]
            counts = await repo.count_deliveries_by_event(
                session, event_ids=[event.id for event in shown]
            )
        items = [EventSummary(event=e, delivery_count=counts.get(e.id, 0)) for e in shown]
        if len(rows) > limit:
            last = shown[-1]
            return Page(items=items, next_cursor=encode_event_cursor(last.created_at, last.id))
        return Page(items=items, next_cursor=None)

    async def get_delivery(self, *, delivery_id: str) -> DeliveryWithAttempts:
        """The delivery and its attempts; ``NotFound`` for an unknown id."""
        async with self._sessions() as session:
            delivery = await repo.get_delivery(session, delivery_id=delivery_id)
            if delivery is None:
                raise NotFound("delivery", delivery_id)
            attempts = await repo.delivery_attempts(session, delivery_id=delivery_id)
        return DeliveryWithAttempts(delivery=delivery, attempts=attempts)

    async def list_deliveries(
        self,
        *,
        webhook_id: str | None = None,
        event_id: str | None = None,
        state: str | None = None,
        completed_since: datetime | None = None,
        completed_until: datetime | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[Delivery]:
        """Deliveries matching every given filter, newest first; ``completed_since <=
        completed_at < completed_until`` when given (so only finished ones).

        Raises ``InvalidCursor`` (a ``ValueError``) for a cursor this API did not hand out.
        """
        before_id = decode_cursor(cursor, prefix=ids.DELIVERY)
        async with self._sessions() as session:
            rows = await repo.list_deliveries(
                session,
                endpoint_id=webhook_id,
                event_id=event_id,
                state=state,
                completed_since=completed_since,
                completed_until=completed_until,
                before_id=before_id,
                limit=limit + 1,
            )
        return page_of(rows, limit=limit, id_of=_delivery_id)

    async def list_dead_letters(
        self,
        *,
        webhook_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int,
        cursor: str | None = None,
    ) -> Page[Delivery]:
        """Deliveries in the dead-letter state (``failed``), newest first; ``since <= failed
        at (completed_at) < until`` when given, the window ``DeadLetterService.replay`` takes."""
        return await self.list_deliveries(
            webhook_id=webhook_id,
            state=DEAD_LETTER_STATE,
            completed_since=since,
            completed_until=until,
            limit=limit,
            cursor=cursor,
        )
