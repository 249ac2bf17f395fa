"""``/deliveries``: list and read deliveries (with their attempts), retry one by hand."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hookline.api.deps import DeadLettersDep, DeliveryId, QueriesDep
from hookline.api.errors import error_responses
from hookline.api.links import DELIVERY_OPERATIONS, links
from hookline.api.pagination import DEFAULT_LIMIT, Cursor, Limit, page_out
from hookline.api.routing import ApiRoute
from hookline.api.schemas import DeliveryDetailOut, DeliveryOut, Page
from hookline.api.schemas.common import id_pattern
from hookline.domain.states import DeliveryState

router = APIRouter(prefix="/deliveries", tags=["deliveries"], route_class=ApiRoute)


@router.get(
    "",
    responses={200: {"links": links("delivery_id", "/data/0/id", *DELIVERY_OPERATIONS)}},
    summary="List deliveries",
)
async def list_deliveries(
    queries: QueriesDep,
    webhook_id: Annotated[
        str | None, Query(pattern=id_pattern("wh"), description="Only this webhook's.")
    ] = None,
    event_id: Annotated[
        str | None, Query(pattern=id_pattern("evt"), description="Only this event's.")
    ] = None,
    state: Annotated[DeliveryState | None, Query(description="Only this state.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[DeliveryOut]:
    """Deliveries matching every given filter, newest first."""
    page = await queries.list_deliveries(
        webhook_id=webhook_id,
        event_id=event_id,
        state=None if state is None else state.value,
        limit=limit,
        cursor=cursor,
    )
    return page_out(page, DeliveryOut.from_delivery, Page[DeliveryOut])


@router.get("/{delivery_id}", responses=error_responses(404), summary="Get a delivery")
async def get_delivery(delivery_id: DeliveryId, queries: QueriesDep) -> DeliveryDetailOut:
    """The delivery with its attempts, first attempt first."""
    return DeliveryDetailOut.from_found(await queries.get_delivery(delivery_id=delivery_id))


@router.post(
    "/{delivery_id}/retry",
    status_code=202,
    responses=error_responses(404, 409),
    summary="Retry a delivery",
)
async def retry_delivery(delivery_id: DeliveryId, dead_letters: DeadLettersDep) -> DeliveryOut:
    """Send a failed or cancelled delivery again: state pending, due now. 409 for any other
    state, or while its webhook is disabled."""
    delivery = await dead_letters.retry_delivery(delivery_id=delivery_id)
    return DeliveryOut.from_delivery(delivery)
