"""``/dead-letters``: deliveries that ended ``failed``, and replaying them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from hookline.api.deps import DeadLettersDep, QueriesDep
from hookline.api.errors import error_responses
from hookline.api.links import DELIVERY_OPERATIONS, links
from hookline.api.pagination import DEFAULT_LIMIT, Cursor, Limit, page_out
from hookline.api.routing import ApiRoute
from hookline.api.schemas import DeliveryOut, Page, ReplayIn, ReplayOut
from hookline.api.schemas.common import id_pattern

router = APIRouter(prefix="/dead-letters", tags=["dead letters"], route_class=ApiRoute)


@router.get(
    "",
    responses={200: {"links": links("delivery_id", "/data/0/id", *DELIVERY_OPERATIONS)}},
    summary="List dead letters",
)
async def list_dead_letters(
    queries: QueriesDep,
    webhook_id: Annotated[
        str | None, Query(pattern=id_pattern("wh"), description="Only this webhook's.")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[DeliveryOut]:
    """Deliveries in state failed, newest first."""
    page = await queries.list_dead_letters(webhook_id=webhook_id, limit=limit, cursor=cursor)
    return page_out(page, DeliveryOut.from_delivery, Page[DeliveryOut])


@router.post(
    "/replay", status_code=202, responses=error_responses(404), summary="Replay dead letters"
)
async def replay_dead_letters(
    dead_letters: DeadLettersDep, body: Annotated[ReplayIn | None, Body()] = None
) -> ReplayOut:
    """Queue dead letters again (of one webhook, failed since a time, or all), due now; only
    those whose webhook is active: the others are counted in `skipped` by reason. 404 for an
    unknown webhook_id."""
    request = body or ReplayIn()
    result = await dead_letters.replay(endpoint_id=request.webhook_id, since=request.since)
    return ReplayOut(replayed=result.replayed, skipped=result.skipped)
