"""The deliveries pages: ``/ui/deliveries`` (list) and ``/ui/deliveries/{id}`` (one delivery).

The list reads ``DeliveryQueries.list_deliveries``, the call behind ``GET /deliveries``, with its
filters (webhook id, event id, state), checked by the same rules (``DeliveryFilters`` reuses its
types), newest first, ``PAGE_SIZE`` a page and a "Next page" link that keeps the filters. A
filter that breaks a rule re-renders the form with the error next to its field (422).

A delivery's page shows its state, its attempt timeline (time, status, latency, error, the
response excerpt as text, the delay to the next attempt), its webhook and its event's payload
(pretty JSON, escaped), and **Retry now**: a CSRF-checked post that makes the call behind
``POST /deliveries/{id}/retry`` (``DeadLetterService.retry_delivery``). When the service refuses
(409: the delivery is not failed or cancelled, or its webhook is not active) the page comes back
with the refusal, naming the reason, next to the button; it is not an error page.

While the delivery can still change on its own (pending, delivering, retrying) its state and
attempts section refreshes itself: htmx polls ``/ui/deliveries/{id}/live`` every
``LIVE_REFRESH_S`` seconds and swaps the section whole. A section of a finished delivery carries
no trigger, so polling stops with the last swap. When the database cannot answer, the fragment
answers 503 with the notice inside a section that keeps polling; the pages get the console's
503 page (``routing``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import Field, ValidationError

from hookline.api.console.auth import CheckedFormDep, SessionDep
from hookline.api.console.formatting import FINAL_STATES, STATE_LABELS, pretty_json, relative_to
from hookline.api.console.listing import (
    CURSOR_FIELD,
    ListedPage,
    fetch_page,
    list_link,
    raw_params,
)
from hookline.api.console.rendering import console_prefix, format_duration, render
from hookline.api.console.routing import UNAVAILABLE_MESSAGE, UNAVAILABLE_TITLE, console_router
from hookline.api.console.session import ConsoleSession
from hookline.api.deps import DeadLettersDep, DeliveryId, EndpointsDep, QueriesDep, RuntimeDep
from hookline.api.errors import UNAVAILABLE_RETRY_AFTER_S, readable
from hookline.api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from hookline.api.schemas.common import EventIdField, InputModel, WebhookIdField
from hookline.domain.states import RETRYABLE_BY_HAND, DeliveryState
from hookline.errors import Conflict, NotFound
from hookline.service.console import is_unreachable
from hookline.service.queries import DeliveryWithAttempts
from hookline.storage.models import Delivery, DeliveryAttempt, Endpoint, Event

router = console_router()

DELIVERIES_PATH: Final = "/deliveries"
LIVE_SUFFIX: Final = "/live"
RETRY_SUFFIX: Final = "/retry"
PAGE_SIZE: Final = DEFAULT_LIMIT
"""Rows a page of a list shows unless ``?limit=`` says otherwise (the API's default and range)."""
LIVE_REFRESH_S: Final = 5
"""How often the state and attempts of an unfinished delivery refresh themselves."""
FILTER_FIELDS: Final = ("webhook_id", "event_id", "state")
LIMIT_FIELD: Final = "limit"
RETRIED_FIELD: Final = "retried"
"""``?retried=1``: the page after a successful Retry now says so."""
FIELD_LABELS: Final = {
    "webhook_id": "Webhook id",
    "event_id": "Event id",
    "state": "State",
    "limit": "Rows per page",
    "since": "Failed since",
    "until": "Failed before",
}
RETRYABLE_STATES: Final = frozenset(state.value for state in RETRYABLE_BY_HAND)
_VALUE_ERROR_PREFIX: Final = "Value error, "


class DeliveryFilters(InputModel):
    """The list's filters, checked by the rules of ``GET /deliveries`` (the same types)."""

    webhook_id: WebhookIdField | None = None
    event_id: EventIdField | None = None
    state: DeliveryState | None = None
    limit: int = Field(PAGE_SIZE, ge=1, le=MAX_LIMIT)


# what every list page shares ---------------------------------------------------------------


def field_errors(exc: ValidationError, *, default: str) -> dict[str, str]:
    """The first error of each field, in the API's words (``api.errors.readable``) led by the
    field's label; an error without a field goes under ``default``."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = error.get("loc") or ()
        field = str(loc[0]) if loc else default
        message = str(readable(dict(error))["msg"]).removeprefix(_VALUE_ERROR_PREFIX)
        message = message[:1].lower() + message[1:]
        errors.setdefault(field, f"{FIELD_LABELS.get(field, field)}: {message}".rstrip(".") + ".")
    return errors


def page_context(now: datetime) -> dict[str, Any]:
    """What every template of these pages uses besides its own data."""
    return {
        "ago": relative_to(now),
        "state_labels": STATE_LABELS,
        "final_states": FINAL_STATES,
        "deliveries_path": DELIVERIES_PATH,
    }


# the list ----------------------------------------------------------------------------------


def read_filters(raw: Mapping[str, str]) -> tuple[DeliveryFilters | None, dict[str, str]]:
    """The checked filters (an empty field is no filter), or None and an error per field."""
    given = {name: value for name, value in raw.items() if value and name != CURSOR_FIELD}
    try:
        return DeliveryFilters.model_validate(given), {}
    except ValidationError as exc:
        return None, field_errors(exc, default="state")


@router.get(DELIVERIES_PATH)
async def deliveries_page(
    request: Request, session: SessionDep, queries: QueriesDep, runtime: RuntimeDep
) -> HTMLResponse:
    """Deliveries matching the filters, newest first, one page at a time."""
    raw = raw_params(request, (*FILTER_FIELDS, LIMIT_FIELD, CURSOR_FIELD))
    console = console_prefix(request)
    filters, errors = read_filters(raw)
    listed: ListedPage[Delivery] = ListedPage()
    if filters is not None:
        chosen = filters
        listed = await fetch_page(
            lambda cursor: queries.list_deliveries(
                webhook_id=chosen.webhook_id,
                event_id=chosen.event_id,
                state=None if chosen.state is None else chosen.state.value,
                limit=chosen.limit,
                cursor=cursor,
            ),
            cursor=raw[CURSOR_FIELD],
            console=console,
            path=DELIVERIES_PATH,
            query=raw,
        )
    rows, next_link, cursor_error = listed.items, listed.next_link, listed.cursor_error
    query = {name: raw[name] for name in (*FILTER_FIELDS, LIMIT_FIELD)}
    return render(
        request,
        "deliveries.html",
        session=session,
        active="deliveries",
        status_code=422 if errors or cursor_error else 200,
        raw=raw,
        errors=errors,
        cursor_error=cursor_error,
        rows=rows,
        states=[state.value for state in DeliveryState],
        filtered=any(raw[name] for name in FILTER_FIELDS),
        paged=bool(raw[CURSOR_FIELD]),
        next_link=next_link,
        first_link=list_link(console, DELIVERIES_PATH, query, cursor=None),
        **page_context(runtime.clock.now()),
    )


# one delivery ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptView:
    """One attempt of the timeline, with what followed it."""

    attempt: DeliveryAttempt
    next_delay: str | None
    """The delay it scheduled, in words (None when it scheduled no retry)."""
    next_attempt_at: datetime | None
    """When the attempt it scheduled is due: known exactly for the latest one only."""


def attempt_views(found: DeliveryWithAttempts) -> list[AttemptView]:
    """The attempts, first first; the last one of a retrying delivery carries its due time."""
    delivery, attempts = found.delivery, found.attempts
    views: list[AttemptView] = []
    for index, attempt in enumerate(attempts):
        latest = index == len(attempts) - 1
        waits = latest and delivery.state == DeliveryState.RETRYING.value
        views.append(
            AttemptView(
                attempt=attempt,
                next_delay=None
                if attempt.next_delay is None
                else format_duration(attempt.next_delay),
                next_attempt_at=delivery.next_attempt_at if waits else None,
            )
        )
    return views


def live_context(
    delivery_id: str, found: DeliveryWithAttempts | None, *, csrf: str
) -> dict[str, Any]:
    """What the state and attempts section needs (``found`` None: the database is away)."""
    delivery = None if found is None else found.delivery
    return {
        "delivery_id": delivery_id,
        "delivery": delivery,
        "attempts": [] if found is None else attempt_views(found),
        # Unavailable keeps polling: the next answer may bring the section back.
        "live": delivery is None or delivery.state not in FINAL_STATES,
        "retryable": delivery is not None and delivery.state in RETRYABLE_STATES,
        "refresh_s": LIVE_REFRESH_S,
        "csrf": csrf,
        "unavailable_title": UNAVAILABLE_TITLE,
        "unavailable_message": UNAVAILABLE_MESSAGE,
    }


async def _delivery_page(
    request: Request,
    *,
    delivery_id: str,
    session: ConsoleSession,
    runtime: RuntimeDep,
    queries: QueriesDep,
    endpoints: EndpointsDep,
    status_code: int = 200,
    retry_refused: str | None = None,
) -> HTMLResponse:
    found = await queries.get_delivery(delivery_id=delivery_id)
    delivery = found.delivery
    event: Event | None
    try:
        event = (await queries.get_event(event_id=delivery.event_id)).event
    except NotFound:  # pruned meanwhile: the delivery is shown without its payload
        event = None
    webhook: Endpoint | None
    try:
        webhook = await endpoints.get(endpoint_id=delivery.endpoint_id)
    except NotFound:  # deleted: its deliveries stay readable
        webhook = None
    return render(
        request,
        "delivery.html",
        session=session,
        active="deliveries",
        status_code=status_code,
        event=event,
        payload=None if event is None else pretty_json(event.payload),
        webhook=webhook,
        retried=request.query_params.get(RETRIED_FIELD) == "1" and retry_refused is None,
        retry_refused=retry_refused,
        **live_context(delivery_id, found, csrf=session.csrf),
        **page_context(runtime.clock.now()),
    )


@router.get(DELIVERIES_PATH + "/{delivery_id}")
async def delivery_page(
    request: Request,
    delivery_id: DeliveryId,
    session: SessionDep,
    runtime: RuntimeDep,
    queries: QueriesDep,
    endpoints: EndpointsDep,
) -> HTMLResponse:
    """One delivery: state, attempts, webhook, event payload, Retry now."""
    return await _delivery_page(
        request,
        delivery_id=delivery_id,
        session=session,
        runtime=runtime,
        queries=queries,
        endpoints=endpoints,
    )


@router.get(DELIVERIES_PATH + "/{delivery_id}" + LIVE_SUFFIX)
async def delivery_live(
    request: Request,
    delivery_id: DeliveryId,
    session: SessionDep,
    runtime: RuntimeDep,
    queries: QueriesDep,
) -> HTMLResponse:
    """The state and attempts section alone (what the page swaps in while it changes)."""
    try:
        found: DeliveryWithAttempts | None = await queries.get_delivery(delivery_id=delivery_id)
    except Exception as exc:
        if not is_unreachable(exc):
            raise
        found = None
    return render(
        request,
        "_delivery_live.html",
        session=session,
        status_code=200 if found is not None else 503,
        headers=None if found is not None else {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
        **live_context(delivery_id, found, csrf=session.csrf),
        **page_context(runtime.clock.now()),
    )


@router.post(DELIVERIES_PATH + "/{delivery_id}" + RETRY_SUFFIX)
async def retry_now(
    request: Request,
    delivery_id: DeliveryId,
    session: SessionDep,
    form: CheckedFormDep,
    runtime: RuntimeDep,
    queries: QueriesDep,
    endpoints: EndpointsDep,
    dead_letters: DeadLettersDep,
) -> Response:
    """Retry now: the delivery back to pending, due now; or the page saying why not (409)."""
    try:
        await dead_letters.retry_delivery(delivery_id=delivery_id)
    except Conflict as exc:
        return await _delivery_page(
            request,
            delivery_id=delivery_id,
            session=session,
            runtime=runtime,
            queries=queries,
            endpoints=endpoints,
            status_code=409,
            retry_refused=_sentence(str(exc)),
        )
    page = f"{console_prefix(request)}{DELIVERIES_PATH}/{delivery_id}"
    return RedirectResponse(f"{page}?{RETRIED_FIELD}=1", status_code=303)


_REASON_CODE: Final = re.compile(r" \((endpoint_[a-z_]+)\)")


def _sentence(refusal: str) -> str:
    """The service's refusal as a sentence: capitalised, with a full stop; the reason code in
    brackets (``endpoint_disabled``, for scripts and logs) is left out of the words."""
    text = _REASON_CODE.sub("", refusal).strip()
    return text[:1].upper() + text[1:].rstrip(".") + "."
