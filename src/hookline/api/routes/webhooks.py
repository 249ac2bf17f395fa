"""``/webhooks``: endpoints, their retry config and timeline, enable/disable, secret, stats."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Body, Query, Response

from hookline.api.deps import EndpointsDep, EndpointSendsDep, LifecycleDep, WebhookId
from hookline.api.errors import error_responses
from hookline.api.links import WEBHOOK_OPERATIONS, links
from hookline.api.pagination import DEFAULT_LIMIT, Cursor, Limit, page_out
from hookline.api.routing import ApiRoute
from hookline.api.schemas import (
    DiscardedOut,
    EnableIn,
    Page,
    ProbeOut,
    RetryConfigIn,
    RetryConfigOut,
    RetryScheduleOut,
    SecretOut,
    SecretRotateIn,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
    WebhookSendResult,
    WebhookStatsOut,
)
from hookline.domain.states import EndpointStatus
from hookline.service.endpoints import EndpointChanges, EndpointService
from hookline.storage.models import Endpoint

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
        payload_format=body.payload_format.value,
        rate_limit_per_s=body.rate_limit_per_s,
        probe_enabled=body.probe_enabled,
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
    parked = await endpoints.parked_counts(endpoint_ids=[e.id for e in page.items])
    return page_out(
        page, lambda e: WebhookOut.from_endpoint(e, parked=parked[e.id]), Page[WebhookOut]
    )


async def _out(endpoints: EndpointService, endpoint: Endpoint) -> WebhookOut:
    """The webhook as answered, with its count of parked deliveries."""
    parked = await endpoints.parked_counts(endpoint_ids=[endpoint.id])
    return WebhookOut.from_endpoint(endpoint, parked=parked[endpoint.id])


@router.get("/{webhook_id}", responses=NOT_FOUND, summary="Get a webhook")
async def get_webhook(webhook_id: WebhookId, endpoints: EndpointsDep) -> WebhookOut:
    return await _out(endpoints, await endpoints.get(endpoint_id=webhook_id))


@router.patch("/{webhook_id}", responses=NOT_FOUND, summary="Change a webhook")
async def update_webhook(
    webhook_id: WebhookId, body: WebhookPatch, endpoints: EndpointsDep
) -> WebhookOut:
    """Change url (vetted as on create), description, event_types, headers, retry_config
    (null: back to the defaults), payload_format, rate_limit_per_s (null: no limit),
    probe_enabled or trace_propagation; absent fields stay as they are. A refused change
    changes nothing."""
    changes = body.changes()
    if "payload_format" in changes:
        changes["payload_format"] = changes["payload_format"].value
    endpoint = await endpoints.update(
        endpoint_id=webhook_id, changes=cast(EndpointChanges, changes)
    )
    return await _out(endpoints, endpoint)


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
    """Status disabled, reason manual; its pending and retrying deliveries are parked, and so
    are the events that match it until it is enabled (nothing is sent, nothing is lost)."""
    return await _out(endpoints, await endpoints.disable(endpoint_id=webhook_id))


@router.post("/{webhook_id}/enable", responses=NOT_FOUND, summary="Enable a webhook")
async def enable_webhook(
    webhook_id: WebhookId,
    endpoints: EndpointsDep,
    body: Annotated[EnableIn | None, Body()] = None,
) -> WebhookOut:
    """Bring a disabled webhook back. With parked deliveries (``recover`` ``parked``, the
    default, or ``since:<time>``, which also parks again what failed or was cancelled since
    then) it is ``recovering``: they are released oldest first through a slow start that
    ramps up while the webhook answers 2xx, new events queue behind them, then it is
    ``active``. ``recover`` ``none`` discards the parked ones (dead letters, reason
    ``discarded``). With ``replay_cancelled`` the deliveries a disable cancelled are queued
    again, due now. A webhook that is not disabled is answered unchanged."""
    body = body or EnableIn()
    outcome = await endpoints.enable_with_outcome(
        endpoint_id=webhook_id, replay_cancelled=body.replay_cancelled, recover=body.recovery()
    )
    return await _out(endpoints, outcome.endpoint)


@router.delete(
    "/{webhook_id}/parked", responses=NOT_FOUND, summary="Discard a webhook's parked deliveries"
)
async def discard_parked(webhook_id: WebhookId, endpoints: EndpointsDep) -> DiscardedOut:
    """Its parked deliveries become dead letters (reason ``discarded``); they can still be
    replayed from there."""
    return DiscardedOut(discarded=await endpoints.discard_parked(endpoint_id=webhook_id))


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


@router.post(
    "/{webhook_id}/test",
    responses=error_responses(404, 409),
    summary="Send a signed test message to a webhook",
)
async def test_webhook(webhook_id: WebhookId, sends: EndpointSendsDep) -> WebhookSendResult:
    """Send one signed hookline.test message now and answer what came of it (status_code,
    duration_ms, error). It is signed and shaped like a delivery (the webhook's payload_format,
    headers and secret), with a webhook-id of its own (msg_…) and data {"webhook_id",
    "trigger": "test", "sent_at"}; it is recorded as an attempt with trigger test. Works
    whatever the webhook's status (a disabled one too), and changes neither its status nor its
    health. 409 when its stored secret or payload format cannot make a request."""
    outcome = await sends.send_once(endpoint_id=webhook_id, trigger="test")
    return WebhookSendResult.from_outcome(webhook_id, outcome)


@router.post(
    "/{webhook_id}/probe",
    responses=error_responses(404, 409),
    summary="Probe a disabled webhook now",
)
async def probe_webhook(webhook_id: WebhookId, lifecycle: LifecycleDep) -> ProbeOut:
    """Send one signed hookline.probe message to a disabled webhook now, as the automatic probes
    do, and answer what came of it. For a webhook disabled as failing it counts towards the
    PROBE_SUCCESSES 2xx answers in a row that bring it back (status recovering, or active with
    nothing parked); for other reasons it only reports (enable those by hand). 409 when the
    webhook is not disabled."""
    outcome = await lifecycle.probe_now(endpoint_id=webhook_id)
    return ProbeOut.from_outcome(webhook_id, outcome, needed=lifecycle.successes_needed)
