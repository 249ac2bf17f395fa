"""``/events``: publish an event (fan-out to subscribed webhooks) and read one back.

Publishing is the hot path of ingest, so its answer is serialised once by pydantic-core straight
to bytes (the same JSON FastAPI would produce from ``response_model``, which still documents it)
instead of validated again, turned into a dict and encoded by the stdlib.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from hookline.api.deps import EventId, EventsDep, QueriesDep
from hookline.api.errors import error_responses
from hookline.api.links import DELIVERY_OPERATIONS, links
from hookline.api.routing import ApiRoute
from hookline.api.schemas import EventIn, EventOut, PublishedEventOut

router = APIRouter(prefix="/events", tags=["events"], route_class=ApiRoute)
JSON_MEDIA_TYPE = "application/json"
PUBLISHED_LINKS = {
    **links("event_id", "/id", "get_event", "list_deliveries"),
    **links("delivery_id", "/deliveries/0/id", *DELIVERY_OPERATIONS),
}


@router.post(
    "",
    status_code=202,
    response_model=PublishedEventOut,
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
async def publish_event(body: EventIn, events: EventsDep) -> Response:
    """One delivery per active webhook whose event_types match (exact types, or patterns with
    `*` for one dot-separated segment; none = all), due now."""
    result = await events.publish(
        event_type=body.event_type, payload=body.payload, idempotency_key=body.idempotency_key
    )
    return Response(
        content=PublishedEventOut.from_result(result).model_dump_json(),
        status_code=202 if result.created else 200,
        media_type=JSON_MEDIA_TYPE,
    )


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
