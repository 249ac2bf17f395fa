"""The webhooks pages: the list, create and edit (with the live retry preview), the detail page
and its actions.

    GET  /ui/webhooks                    list: health, last success, failure rate (24 h),
                                         filter by status, "Next page" with the API's cursor
    GET  /ui/webhooks/new                the empty form;   POST: create
    GET  /ui/webhooks/retry-preview      the retry timeline of the retry fields (a fragment
                                         htmx swaps in as they change; errors shown in it)
    GET  /ui/webhooks/{id}               detail: 24-hour stats, health, retry timeline,
                                         latest deliveries, actions
    GET  /ui/webhooks/{id}/edit          the filled form; POST: save
    POST /ui/webhooks/{id}/disable       → 303 back, ``?done=disabled``
    POST /ui/webhooks/{id}/enable        (``replay_cancelled``) → 303 back, ``?done=enabled``
                                         and how many deliveries were queued again
    GET  /ui/webhooks/{id}/rotate-secret the form;  POST: rotate, and show the new secret once
    GET  /ui/webhooks/{id}/delete        the confirmation; POST: delete → 303 to the list

Every call is the one the API's ``/webhooks`` handlers make on ``EndpointService`` (and
``DeliveryQueries`` for the latest deliveries); the list's failure rates come from one grouped
call for the whole page (``EndpointService.recent_attempts``), not one per row. Forms are read
into the API's own models (``webhook_form``); a refused form comes back as typed, with status
422 and each error next to its field, and nothing stored. The ``done`` message after an action
is chosen from ``DONE_MESSAGES`` by key: nothing from the query string is echoed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, cast
from urllib.parse import urlencode

from fastapi import Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from hookline.api.console.auth import CheckedFormDep, SessionDep
from hookline.api.console.listing import fetch_page
from hookline.api.console.rendering import console_prefix, format_duration, render
from hookline.api.console.retry_timeline import retry_timeline
from hookline.api.console.routing import console_router
from hookline.api.console.session import ConsoleSession
from hookline.api.console.webhook_form import (
    JITTER_CHOICES,
    RETRY_FIELDS,
    RETRY_GROUP,
    Checked,
    FieldErrors,
    WebhookFormValues,
    check_new_webhook,
    check_retry_config,
    check_webhook_changes,
    errors_of,
    labelled,
    refusal_errors,
    retry_values,
)
from hookline.api.deps import EndpointsDep, QueriesDep, RuntimeDep, WebhookId
from hookline.api.schemas import SecretRotateIn
from hookline.domain.schedule import plan_schedule
from hookline.domain.states import EndpointStatus
from hookline.errors import Conflict
from hookline.service.endpoints import (
    EndpointChanges,
    EndpointSecret,
    InvalidWebhookField,
    RecentAttempts,
    masked_headers,
    retry_config_of,
)

if TYPE_CHECKING:
    from hookline.storage.models import Endpoint

router = console_router()

PAGE_SIZE: Final = 25
"""Webhooks per list page."""
RECENT_DELIVERIES: Final = 20
"""Deliveries the detail page lists (newest first)."""
STATUS_FILTERS: Final = ("", *(status.value for status in EndpointStatus))
"""The list's status filter: all, or one status."""
DONE_MESSAGES: Final = {
    "created": "Webhook created.",
    "saved": "Changes saved.",
    "disabled": "Webhook disabled: its pending and retrying deliveries are parked until it is "
    "enabled again.",
    "enabled": "Webhook enabled.",
    "deleted": "Webhook deleted: its pending, retrying and parked deliveries were cancelled.",
}
"""What ``?done=<key>`` says after an action; any other value says nothing."""
MAX_REPLAYED_SHOWN: Final = 10**9
"""A ``replayed`` count above this is not one an action produced: it is ignored."""
REPLAY_FIELD: Final = "replay_cancelled"
SECRET_FIELD: Final = "secret"  # noqa: S105 - the name of a form field
ROTATION_CONFLICT: Final = (
    "This is the current secret: give a different one, or leave the field empty to have one "
    "generated."
)
TRACE_OPTIONS: Final = (
    ("", "Default (the HOOKLINE_TRACE_PROPAGATION setting)"),
    ("on", "On: send traceparent"),
    ("off", "Off: never send traceparent"),
)
FORM_FIELDS: Final = (
    ("url", "URL"),
    ("description", "Description"),
    ("event_types", "Event types"),
    ("headers", "Headers"),
    *((item.name, item.label) for item in RETRY_FIELDS),
    (RETRY_GROUP, "Retry config"),
    ("trace_propagation", "Trace propagation"),
)
"""Every field an error can be about, in form order, with its label (the error summary)."""


@dataclass(frozen=True, slots=True)
class WebhookRow:
    """One webhook of the list and its attempts of the last 24 hours."""

    endpoint: Endpoint
    attempts: RecentAttempts
    parked: int = 0


def _shown_count(value: str | None) -> int | None:
    """A count from the query string, if it is one (ASCII digits, not absurdly large)."""
    if value is None or not value.isascii() or not value.isdigit():
        return None
    count = int(value)
    return None if count > MAX_REPLAYED_SHOWN else count


def done_message(done: str | None, replayed: str | None, parked: str | None = None) -> str | None:
    """The message of ``?done=`` (and ``replayed=`` / ``parked=`` after enabling), from the
    fixed set only: nothing of the query string but a count is shown."""
    message = DONE_MESSAGES.get(done or "")
    if message is None or done != "enabled":
        return message
    parts = [message]
    released = _shown_count(parked)
    if released:
        noun = "delivery is" if released == 1 else "deliveries are"
        parts = [
            f"Webhook enabled: {released:,} parked {noun} being released, oldest first, at a "
            "pace that rises while it answers 2xx."
        ]
    count = _shown_count(replayed)
    if count == 0:
        parts.append("Disabling it had cancelled no delivery, so none was queued again.")
    elif count is not None:
        noun = "delivery" if count == 1 else "deliveries"
        parts.append(f"{count:,} {noun} that disabling had cancelled queued again.")
    return " ".join(parts)


def ago_at(now: datetime) -> Callable[[datetime | None], str]:
    """A function giving how long before ``now`` a time was ("3 h 2 min ago")."""

    def ago(value: datetime | None) -> str:
        if value is None:
            return ""
        seconds = (now - value).total_seconds()
        if seconds < 0:
            return f"in {format_duration(-seconds)}"
        return f"{format_duration(seconds)} ago"

    return ago


def _webhook_url(request: Request, endpoint_id: str, **query: str) -> str:
    url = f"{console_prefix(request)}/webhooks/{endpoint_id}"
    return url + (f"?{urlencode(query)}" if query else "")


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# the list ------------------------------------------------------------------------------------


@router.get("/webhooks")
async def webhooks_page(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    endpoints: EndpointsDep,
    status: Annotated[str | None, Query()] = None,
    cursor: Annotated[str | None, Query()] = None,
    done: Annotated[str | None, Query()] = None,
) -> HTMLResponse:
    """Webhooks newest first, ``PAGE_SIZE`` a page, with their health and last 24 hours."""
    status = status or ""
    context: dict[str, Any] = {
        "status": status,
        "status_filters": STATUS_FILTERS,
        "rows": [],
        "next_url": None,
        "problem": None,
        "paged": cursor is not None,
        "message": done_message(done, None),
        "ago": ago_at(runtime.clock.now()),
    }
    if status not in STATUS_FILTERS:
        context["status"] = ""
        context["problem"] = "There is no such status to filter by. Choose one in the list."
        return _list_page(request, session, context, status_code=400)
    listed = await fetch_page(
        lambda page_cursor: endpoints.list_endpoints(
            status=status or None, limit=PAGE_SIZE, cursor=page_cursor
        ),
        cursor=cursor or "",
        console=console_prefix(request),
        path="/webhooks",
        query={"status": status},
    )
    if listed.cursor_error is not None:
        context["problem"] = listed.cursor_error
        return _list_page(request, session, context, status_code=400)
    listed_ids = [row.id for row in listed.items]
    figures = await endpoints.recent_attempts(endpoint_ids=listed_ids)
    parked = await endpoints.parked_counts(endpoint_ids=listed_ids)
    context["rows"] = [
        WebhookRow(endpoint=row, attempts=figures[row.id], parked=parked[row.id])
        for row in listed.items
    ]
    context["next_url"] = listed.next_link
    return _list_page(request, session, context, status_code=200)


def _list_page(
    request: Request, session: ConsoleSession, context: dict[str, Any], *, status_code: int
) -> HTMLResponse:
    return render(
        request,
        "webhooks.html",
        session=session,
        active="webhooks",
        status_code=status_code,
        **context,
    )


# create, edit and the retry preview ------------------------------------------------------------


@router.get("/webhooks/new")
async def new_webhook_page(request: Request, session: SessionDep) -> HTMLResponse:
    """The empty form (retry fields empty: the defaults, previewed)."""
    return _form_page(request, session, values=WebhookFormValues(), errors={}, endpoint=None)


@router.post("/webhooks/new")
async def create_webhook(
    request: Request, session: SessionDep, form: CheckedFormDep, endpoints: EndpointsDep
) -> Response:
    """Create the webhook the form describes, or show the form again with what is wrong."""
    values = WebhookFormValues.from_form(form)
    checked = check_new_webhook(values)
    if checked.model is not None:
        body = checked.model
        try:
            endpoint = await endpoints.create(
                url=body.url,
                description=body.description,
                event_types=body.event_types,
                headers=body.headers,
                retry_config=body.retry_config,
                trace_propagation=body.trace_propagation,
            )
        except InvalidWebhookField as exc:
            checked = Checked(model=None, errors=refusal_errors(exc))
        else:
            return _see_other(_webhook_url(request, endpoint.id, done="created"))
    return _form_page(
        request, session, values=values, errors=checked.errors, endpoint=None, status_code=422
    )


@router.get("/webhooks/retry-preview")
async def retry_preview(request: Request, session: SessionDep) -> HTMLResponse:
    """The retry timeline of the retry fields in the query string (what the form's retry
    fieldset sends as they change); what is wrong with them instead, when something is.
    Always 200, so htmx swaps the errors in too."""
    config, errors = check_retry_config(retry_values(request.query_params))
    return render(
        request,
        "_webhook_retry_preview.html",
        session=session,
        timeline=None if config is None else retry_timeline(plan_schedule(config)),
        preview_errors=labelled(errors),
    )


@router.get("/webhooks/{webhook_id}/edit")
async def edit_webhook_page(
    request: Request, session: SessionDep, webhook_id: WebhookId, endpoints: EndpointsDep
) -> HTMLResponse:
    """The form filled with the webhook as stored (credentials masked)."""
    endpoint = await endpoints.get(endpoint_id=webhook_id)
    values = WebhookFormValues.from_endpoint(endpoint)
    return _form_page(request, session, values=values, errors={}, endpoint=endpoint)


@router.post("/webhooks/{webhook_id}/edit")
async def save_webhook(
    request: Request,
    session: SessionDep,
    form: CheckedFormDep,
    webhook_id: WebhookId,
    endpoints: EndpointsDep,
) -> Response:
    """Save the form's fields (all or none), or show it again with what is wrong."""
    endpoint = await endpoints.get(endpoint_id=webhook_id)
    values = WebhookFormValues.from_form(form)
    checked = check_webhook_changes(values, endpoint)
    if checked.model is not None:
        changes = cast(EndpointChanges, checked.model.changes())
        try:
            await endpoints.update(endpoint_id=webhook_id, changes=changes)
        except InvalidWebhookField as exc:
            checked = Checked(model=None, errors=refusal_errors(exc))
        else:
            return _see_other(_webhook_url(request, webhook_id, done="saved"))
    return _form_page(
        request,
        session,
        values=values,
        errors=checked.errors,
        endpoint=endpoint,
        status_code=422,
    )


def _form_page(
    request: Request,
    session: ConsoleSession,
    *,
    values: WebhookFormValues,
    errors: FieldErrors,
    endpoint: Endpoint | None,
    status_code: int = 200,
) -> HTMLResponse:
    """The create (``endpoint`` None) or edit form, with its retry preview drawn from the
    retry fields as they are (without JavaScript: the saved config, or what was typed)."""
    config, preview_errors = check_retry_config(values.retry)
    labels = dict(FORM_FIELDS)
    return render(
        request,
        "webhook_form.html",
        session=session,
        active="webhooks",
        status_code=status_code,
        endpoint=endpoint,
        effective=None if endpoint is None else retry_config_of(endpoint),
        values=values,
        errors=errors,
        error_fields=[(name, labels[name]) for name, _ in FORM_FIELDS if name in errors],
        retry_fields=RETRY_FIELDS,
        jitter_choices=JITTER_CHOICES,
        trace_options=TRACE_OPTIONS,
        timeline=None if config is None else retry_timeline(plan_schedule(config)),
        preview_errors=labelled(preview_errors),
    )


# the detail page and its actions ---------------------------------------------------------------


@router.get("/webhooks/{webhook_id}")
async def webhook_page(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    webhook_id: WebhookId,
    endpoints: EndpointsDep,
    queries: QueriesDep,
    done: Annotated[str | None, Query()] = None,
    replayed: Annotated[str | None, Query()] = None,
    parked_shown: Annotated[str | None, Query(alias="parked")] = None,
) -> HTMLResponse:
    """The webhook, its last 24 hours, its retry timeline and its latest deliveries."""
    endpoint = await endpoints.get(endpoint_id=webhook_id)
    stats = await endpoints.stats(endpoint_id=webhook_id)
    parked = await endpoints.parked_counts(endpoint_ids=[webhook_id])
    deliveries = await queries.list_deliveries(webhook_id=webhook_id, limit=RECENT_DELIVERIES)
    effective = retry_config_of(endpoint)
    failure_rate = None if stats.success_rate is None else 1 - stats.success_rate
    return render(
        request,
        "webhook_detail.html",
        session=session,
        active="webhooks",
        endpoint=endpoint,
        parked=parked[webhook_id],
        next_probe_at=(
            endpoint.probe_next_at
            if endpoint.status == "disabled"
            and endpoint.disabled_reason == "failing"
            and endpoint.probe_enabled
            else None
        ),
        masked_headers=masked_headers(endpoint.headers),
        stats=stats,
        failure_rate=failure_rate,
        effective=effective,
        timeline=retry_timeline(plan_schedule(effective.config)),
        deliveries=deliveries.items,
        more_deliveries=deliveries.next_cursor is not None,
        message=done_message(done, replayed, parked_shown),
        ago=ago_at(runtime.clock.now()),
        replay_field=REPLAY_FIELD,
        secret_field=SECRET_FIELD,
    )


@router.post("/webhooks/{webhook_id}/disable")
async def disable_webhook(
    request: Request, form: CheckedFormDep, webhook_id: WebhookId, endpoints: EndpointsDep
) -> RedirectResponse:
    """Disable by hand (its queued deliveries are parked)."""
    await endpoints.disable(endpoint_id=webhook_id)
    return _see_other(_webhook_url(request, webhook_id, done="disabled"))


@router.post("/webhooks/{webhook_id}/enable")
async def enable_webhook(
    request: Request, form: CheckedFormDep, webhook_id: WebhookId, endpoints: EndpointsDep
) -> RedirectResponse:
    """Enable again; with the box ticked, what disabling cancelled is queued again."""
    replay = form.get(REPLAY_FIELD) == "yes"
    outcome = await endpoints.enable_with_outcome(endpoint_id=webhook_id, replay_cancelled=replay)
    query = {"done": "enabled"}
    if replay:
        query["replayed"] = str(len(outcome.replayed_delivery_ids))
    if outcome.parked:
        query["parked"] = str(outcome.parked)
    return _see_other(_webhook_url(request, webhook_id, **query))


@router.get("/webhooks/{webhook_id}/rotate-secret")
async def rotate_secret_page(
    request: Request, session: SessionDep, webhook_id: WebhookId, endpoints: EndpointsDep
) -> HTMLResponse:
    """The rotation form (the new secret optional: generated when left empty)."""
    endpoint = await endpoints.get(endpoint_id=webhook_id)
    return _secret_page(request, session, endpoint=endpoint, rotated=None, errors=[])


@router.post("/webhooks/{webhook_id}/rotate-secret")
async def rotate_secret(
    request: Request,
    session: SessionDep,
    form: CheckedFormDep,
    webhook_id: WebhookId,
    endpoints: EndpointsDep,
) -> HTMLResponse:
    """Rotate, and show the new secret on this page, once (it is never put in a URL, and the
    console shows it nowhere else). A refused secret is not echoed back."""
    endpoint = await endpoints.get(endpoint_id=webhook_id)
    given = form.get(SECRET_FIELD)
    text = given.strip() if isinstance(given, str) else ""
    try:
        body = SecretRotateIn.model_validate({"secret": text or None})
    except ValidationError as exc:
        messages = errors_of(exc, prefix=()).get(SECRET_FIELD, ["This is not a signing secret."])
        return _secret_page(
            request, session, endpoint=endpoint, rotated=None, errors=messages, status_code=422
        )
    try:
        rotated = await endpoints.rotate_secret(endpoint_id=webhook_id, new_secret=body.secret)
    except Conflict:
        return _secret_page(
            request,
            session,
            endpoint=endpoint,
            rotated=None,
            errors=[ROTATION_CONFLICT],
            status_code=409,
        )
    return _secret_page(request, session, endpoint=endpoint, rotated=rotated, errors=[])


def _secret_page(
    request: Request,
    session: ConsoleSession,
    *,
    endpoint: Endpoint,
    rotated: EndpointSecret | None,
    errors: list[str],
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "webhook_secret.html",
        session=session,
        active="webhooks",
        status_code=status_code,
        endpoint=endpoint,
        rotated=rotated,
        errors=errors,
        secret_field=SECRET_FIELD,
    )


@router.get("/webhooks/{webhook_id}/delete")
async def delete_webhook_page(
    request: Request, session: SessionDep, webhook_id: WebhookId, endpoints: EndpointsDep
) -> HTMLResponse:
    """Ask before deleting."""
    endpoint = await endpoints.get(endpoint_id=webhook_id)
    return render(
        request, "webhook_delete.html", session=session, active="webhooks", endpoint=endpoint
    )


@router.post("/webhooks/{webhook_id}/delete")
async def delete_webhook(
    request: Request, form: CheckedFormDep, webhook_id: WebhookId, endpoints: EndpointsDep
) -> RedirectResponse:
    """Delete (its queued deliveries are cancelled) and go back to the list."""
    await endpoints.delete(endpoint_id=webhook_id)
    return _see_other(f"{console_prefix(request)}/webhooks?done=deleted")
