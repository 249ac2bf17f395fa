"""``DeliveryQueries``: the read side of events, deliveries, attempts and dead letters.

Read-only: one short transaction per call, nothing written. Filters that match nothing give an
empty page (a filter on an unknown webhook is not an error); an unknown id asked for directly is
``NotFound``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hookline import ids
from hookline.domain.states import DeliveryState
from hookline.errors import NotFound
from hookline.service.pagination import Page, decode_cursor, page_of
from hookline.storage.models import Delivery, DeliveryAttempt, Event
from hookline.storage.repositories import queries as repo

DEAD_LETTER_STATE = DeliveryState.FAILED.value
"""Dead letters are the deliveries in this state."""


@dataclass(frozen=True, slots=True)
class EventWithDeliveries:
    """An event and every delivery it fanned out to, newest first."""

    event: Event
    deliveries: list[Delivery]


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
        limit: int,
        cursor: str | None = None,
    ) -> Page[Delivery]:
        """Deliveries matching every given filter, newest first.

        Raises ``InvalidCursor`` (a ``ValueError``) for a cursor this API did not hand out.
        """
        before_id = decode_cursor(cursor, prefix=ids.DELIVERY)
        async with self._sessions() as session:
            rows = await repo.list_deliveries(
                session,
                endpoint_id=webhook_id,
                event_id=event_id,
                state=state,
                before_id=before_id,
                limit=limit + 1,
            )
        return page_of(rows, limit=limit, id_of=_delivery_id)

    async def list_dead_letters(
        self, *, webhook_id: str | None = None, limit: int, cursor: str | None = None
    ) -> Page[Delivery]:
        """Deliveries in the dead-letter state (``failed``), newest first."""
        return await self.list_deliveries(
            webhook_id=webhook_id, state=DEAD_LETTER_STATE, limit=limit, cursor=cursor
        )
