"""``/events``: publish an event (fan-out to subscribed webhooks) and read one back."""

from __future__ import annotations

from fastapi import APIRouter, Response

from hookline.api.deps import EventId, EventsDep, QueriesDep
from hookline.api.errors import error_responses
from hookline.api.links import DELIVERY_OPERATIONS, links
from hookline.api.routing import ApiRoute
from hookline.api.schemas import EventIn, EventOut, PublishedEventOut

router = APIRouter(prefix="/events", tags=["events"], route_class=ApiRoute)
PUBLISHED_LINKS = {
    **links("event_id", "/id", "get_event", "list_deliveries"),
    **links("delivery_id", "/deliveries/0/id", *DELIVERY_OPERATIONS),
}


@router.post(
    "",
    status_code=202,
    responses={
        202: {"links": PUBLISHED_LINKS},
        200: {
            "model": PublishedEventOut,
            "description": "A repeated idempotency_key with the same event_type and payload: "
            "the first event, nothing new created.",
            "links": PUBLISHED_LINKS,
        },
        **error_responses(413, 503),
        409: {
            **error_responses(409)[409],
            "description": "The idempotency_key was already used with a different event_type "
            "and/or payload (named in detail); nothing was created.",
        },
    },
    summary="Publish an event",
)
async def publish_event(body: EventIn, events: EventsDep, response: Response) -> PublishedEventOut:
    """One delivery per active webhook whose event_types match (exact types, or patterns with
    `*` for one dot-separated segment; none = all), due now."""
    result = await events.publish(
        event_type=body.event_type, payload=body.payload, idempotency_key=body.idempotency_key
    )
    if not result.created:
        response.status_code = 200
    return PublishedEventOut.from_result(result)


@router.get(
    "/{event_id}",
    responses={
        200: {"links": links("delivery_id", "/deliveries/0/id", *DELIVERY_OPERATIONS)},
        **error_responses(404),
    },
    summary="Get an event",
)
async def get_event(event_id: EventId, queries: QueriesDep) -> EventOut:
    """The event, its payload, and its deliveries."""
    return EventOut.from_found(await queries.get_event(event_id=event_id))
