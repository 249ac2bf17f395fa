"""``/events``: publish an event (fan-out to subscribed webhooks), list events, read one back.

Publishing is the hot path of ingest, so its answer is serialised once by pydantic-core straight
to bytes (the same JSON FastAPI would produce from ``response_model``, which still documents it)
instead of validated again, turned into a dict and encoded by the stdlib.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from hookline.api.deps import EventId, EventsDep, QueriesDep
from hookline.api.errors import error_responses
from hookline.api.links import DELIVERY_OPERATIONS, links
from hookline.api.pagination import DEFAULT_LIMIT, Cursor, Limit, page_out
from hookline.api.routing import ApiRoute
from hookline.api.schemas import EventIn, EventOut, Page, PublishedEventOut
from hookline.api.schemas.common import TIMESTAMP_RULE, AwareUtcDatetime
from hookline.api.schemas.events import EventSummaryOut
from hookline.api.schemas.webhooks import EventTypePattern
from hookline.domain.event_types import PATTERN_RULE

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
    "",
    responses={200: {"links": links("event_id", "/data/0/id", "get_event", "list_deliveries")}},
    summary="List events",
)
async def list_events(
    request: Request,
    queries: QueriesDep,
    event_type: Annotated[
        EventTypePattern | None,
        Query(description=f"Only events of this type or pattern: {PATTERN_RULE}."),
    ] = None,
    since: Annotated[
        AwareUtcDatetime | None,
        Query(description=f"Only those created at or after this time: {TIMESTAMP_RULE}"),
    ] = None,
    until: Annotated[
        AwareUtcDatetime | None,
        Query(
            description="Only those created before this time (not at it), which is not before "
            f"since: {TIMESTAMP_RULE}"
        ),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[EventSummaryOut]:
    """Events matching every given filter, newest first, with their payloads and delivery
    counts (an event's deliveries are at `GET /events/{event_id}`)."""
    if since is not None and until is not None and until < since:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "until"),
                    "msg": "must not be before since",
                    "input": request.query_params.get("until"),
                }
            ]
        )
    page = await queries.list_events(
        event_type=event_type, since=since, until=until, limit=limit, cursor=cursor
    )
    return page_out(page, EventSummaryOut.from_summary, Page[EventSummaryOut])


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
