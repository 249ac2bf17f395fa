"""``/webhooks``: endpoints, their retry config and timeline, enable/disable, secret, stats."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Body, Query, Response

from hookline.api.deps import EndpointsDep, WebhookId
from hookline.api.errors import error_responses
from hookline.api.links import WEBHOOK_OPERATIONS, links
from hookline.api.pagination import DEFAULT_LIMIT, Cursor, Limit, page_out
from hookline.api.routing import ApiRoute
from hookline.api.schemas import (
    EnableIn,
    Page,
    RetryConfigIn,
    RetryConfigOut,
    RetryScheduleOut,
    SecretOut,
    SecretRotateIn,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
    WebhookStatsOut,
)
from hookline.domain.states import EndpointStatus
from hookline.service.endpoints import EndpointChanges

router = APIRouter(prefix="/webhooks", tags=["webhooks"], route_class=ApiRoute)
NOT_FOUND = error_responses(404)


@router.post(
    "",
    status_code=201,
    responses={201: {"links": links("webhook_id", "/id", *WEBHOOK_OPERATIONS)}},
    summary="Create a webhook",
)
async def create_webhook(body: WebhookIn, endpoints: EndpointsDep) -> WebhookOut:
    """Create a webhook endpoint; its signing secret is generated unless given. A URL whose
    host is, or resolves only to, an address that is not public is a 422 on url (naming
    ALLOWED_NETWORKS), unless ALLOWED_NETWORKS lists it."""
    endpoint = await endpoints.create(
        url=body.url,
        description=body.description,
        event_types=body.event_types,
        headers=body.headers,
        secret=body.secret,
        retry_config=body.retry_config,
        trace_propagation=body.trace_propagation,
    )
    return WebhookOut.from_endpoint(endpoint)


@router.get(
    "",
    responses={200: {"links": links("webhook_id", "/data/0/id", *WEBHOOK_OPERATIONS)}},
    summary="List webhooks",
)
async def list_webhooks(
    endpoints: EndpointsDep,
    status: Annotated[EndpointStatus | None, Query(description="Only this status.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[WebhookOut]:
    """Webhooks, newest first (never with their secrets)."""
    page = await endpoints.list_endpoints(
        status=None if status is None else status.value, limit=limit, cursor=cursor
    )
    return page_out(page, WebhookOut.from_endpoint, Page[WebhookOut])


@router.get("/{webhook_id}", responses=NOT_FOUND, summary="Get a webhook")
async def get_webhook(webhook_id: WebhookId, endpoints: EndpointsDep) -> WebhookOut:
    return WebhookOut.from_endpoint(await endpoints.get(endpoint_id=webhook_id))


@router.patch("/{webhook_id}", responses=NOT_FOUND, summary="Change a webhook")
async def update_webhook(
    webhook_id: WebhookId, body: WebhookPatch, endpoints: EndpointsDep
) -> WebhookOut:
    """Change url (vetted as on create), description, event_types, headers or retry_config
    (null: back to the defaults); absent fields stay as they are. A refused change changes
    nothing."""
    changes = cast(EndpointChanges, body.changes())
    endpoint = await endpoints.update(endpoint_id=webhook_id, changes=changes)
    return WebhookOut.from_endpoint(endpoint)


@router.delete("/{webhook_id}", status_code=204, responses=NOT_FOUND, summary="Delete a webhook")
async def delete_webhook(webhook_id: WebhookId, endpoints: EndpointsDep) -> Response:
    """Delete the webhook; its pending and retrying deliveries become cancelled."""
    await endpoints.delete(endpoint_id=webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/retry-config", responses=NOT_FOUND, summary="Get the retry config")
async def get_retry_config(webhook_id: WebhookId, endpoints: EndpointsDep) -> RetryConfigOut:
    """The effective retry config, and whether it is the webhook's own or the defaults."""
    return RetryConfigOut.from_effective(await endpoints.get_retry_config(endpoint_id=webhook_id))


@router.put("/{webhook_id}/retry-config", responses=NOT_FOUND, summary="Set the retry config")
async def set_retry_config(
    webhook_id: WebhookId, body: RetryConfigIn, endpoints: EndpointsDep
) -> RetryConfigOut:
    """Replace the webhook's retry config (absent fields take their defaults)."""
    effective = await endpoints.set_retry_config(endpoint_id=webhook_id, config=body)
    return RetryConfigOut.from_effective(effective)


@router.delete("/{webhook_id}/retry-config", responses=NOT_FOUND, summary="Reset the retry config")
async def reset_retry_config(webhook_id: WebhookId, endpoints: EndpointsDep) -> RetryConfigOut:
    """Go back to the default retry config."""
    effective = await endpoints.set_retry_config(endpoint_id=webhook_id, config=None)
    return RetryConfigOut.from_effective(effective)


@router.get(
    "/{webhook_id}/retry-config/schedule",
    responses=NOT_FOUND,
    summary="Plan the retry timeline",
)
async def get_retry_schedule(webhook_id: WebhookId, endpoints: EndpointsDep) -> RetryScheduleOut:
    """Per retry: its number, earliest and latest delay and time since the first attempt, and
    where the window (``max_retry_duration``) cuts the timeline."""
    schedule = await endpoints.get_retry_schedule(endpoint_id=webhook_id)
    return RetryScheduleOut.model_validate(schedule)


@router.post("/{webhook_id}/disable", responses=NOT_FOUND, summary="Disable a webhook")
async def disable_webhook(webhook_id: WebhookId, endpoints: EndpointsDep) -> WebhookOut:
    """Status disabled, reason manual; its pending and retrying deliveries are cancelled."""
    return WebhookOut.from_endpoint(await endpoints.disable(endpoint_id=webhook_id))


@router.post("/{webhook_id}/enable", responses=NOT_FOUND, summary="Enable a webhook")
async def enable_webhook(
    webhook_id: WebhookId,
    endpoints: EndpointsDep,
    body: Annotated[EnableIn | None, Body()] = None,
) -> WebhookOut:
    """Status active; with ``replay_cancelled`` the deliveries the disable cancelled are
    queued again, due now."""
    replay = body is not None and body.replay_cancelled
    endpoint = await endpoints.enable(endpoint_id=webhook_id, replay_cancelled=replay)
    return WebhookOut.from_endpoint(endpoint)


@router.get("/{webhook_id}/secret", responses=NOT_FOUND, summary="Get the signing secret")
async def get_secret(webhook_id: WebhookId, endpoints: EndpointsDep) -> SecretOut:
    return SecretOut.model_validate(await endpoints.get_secret(endpoint_id=webhook_id))


@router.post(
    "/{webhook_id}/secret/rotate",
    responses=error_responses(404, 409),
    summary="Rotate the signing secret",
)
async def rotate_secret(
    webhook_id: WebhookId,
    endpoints: EndpointsDep,
    body: Annotated[SecretRotateIn | None, Body()] = None,
) -> SecretOut:
    """A new secret (generated unless given); the old one keeps signing beside it for
    SECRET_ROTATION_GRACE seconds (both signatures are sent)."""
    new_secret = None if body is None else body.secret
    rotated = await endpoints.rotate_secret(endpoint_id=webhook_id, new_secret=new_secret)
    return SecretOut.model_validate(rotated)


@router.get("/{webhook_id}/stats", responses=NOT_FOUND, summary="Last 24 hours of a webhook")
async def get_stats(webhook_id: WebhookId, endpoints: EndpointsDep) -> WebhookStatsOut:
    """Deliveries created in the last 24 h by state, and attempts made in them."""
    return WebhookStatsOut.from_stats(await endpoints.stats(endpoint_id=webhook_id))
