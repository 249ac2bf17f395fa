"""The events pages: ``/ui/events`` (list and search) and ``/ui/events/{event_id}`` (one event).

The list reads ``DeliveryQueries.list_events``, the call behind ``GET /events``, with its
filters and cursor: an event type (exact, or a pattern such as ``order.*``), ``since`` (at or
after) and ``until`` (before), newest first, ``PAGE_SIZE`` a page and a "Next page" link that
keeps the filters. The filters are checked by the API's own rules (``EventFilters`` reuses its
types); a filter that breaks them re-renders the form with the error next to its field (422),
never JSON. A time written without an offset (``2026-01-01 10:00``, what a person types) is
read as UTC before those rules apply.

The id box (``?id=``) goes straight to the event's page when the event exists, and otherwise
says so next to the field (404, the list still shown below).

An event's page shows its payload (pretty JSON, escaped) and its deliveries, each with its state
linking to ``/ui/deliveries/{id}``. While one of them can still change, the deliveries section
refreshes itself (htmx polls ``/ui/events/{id}/deliveries`` every ``LIVE_REFRESH_S`` and swaps
the section whole; a section whose deliveries are all finished carries no trigger, so polling
stops). When the database cannot answer, that fragment answers 503 with the notice inside a
section that keeps polling; the pages themselves get the console's 503 page (``routing``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from hookline import ids
from hookline.api.console.auth import SessionDep
from hookline.api.console.formatting import (
    FINAL_STATES,
    STATE_LABELS,
    TIME_RULE,
    as_utc_text,
    pretty_json,
    relative,
)
from hookline.api.console.listing import (
    CURSOR_FIELD,
    ListedPage,
    fetch_page,
    list_link,
    raw_params,
)
from hookline.api.console.rendering import console_prefix, render
from hookline.api.console.routing import UNAVAILABLE_MESSAGE, UNAVAILABLE_TITLE, console_router
from hookline.api.console.session import ConsoleSession
from hookline.api.deps import QueriesDep, RuntimeDep
from hookline.api.errors import UNAVAILABLE_RETRY_AFTER_S
from hookline.api.pagination import DEFAULT_LIMIT
from hookline.api.schemas.common import AwareUtcDatetime, InputModel
from hookline.api.schemas.webhooks import EventTypePattern
from hookline.errors import NotFound
from hookline.service.console import is_unreachable
from hookline.service.queries import DeliveryQueries, EventSummary

if TYPE_CHECKING:  # a row the service hands back; the console runs no SQL
    from hookline.storage.models import Delivery

router = console_router()

PAGE_SIZE: Final = DEFAULT_LIMIT
"""Events a page of the list shows (the API's default page)."""
LIVE_REFRESH_S: Final = 5
"""How often an event's unfinished deliveries refresh themselves (htmx polling)."""
EVENTS_PATH: Final = "/events"
FILTER_FIELDS: Final = ("event_type", "since", "until")
ID_FIELD: Final = "id"
NO_SUCH_EVENT: Final = "No event with that id."
NO_NUL: Final = "must not contain NUL characters"
"""The one pattern an event type must match (``StorableText``), in words."""
PATTERN_RULE_START: Final = "; allowed are "
WHOLE_SEGMENT: Final = "; * stands for one whole segment, as in order.* or *.created"
UNTIL_BEFORE_SINCE: Final = "Until must not be before Since."
FIELD_LABELS: Final = {"event_type": "Event type", "since": "Since", "until": "Until"}
_OTHER_KINDS: Final = {
    ids.DELIVERY: ("delivery", "/deliveries"),
    ids.ENDPOINT: ("webhook", "/webhooks"),
}
"""Ids the id box may be given by mistake: what they are, and where their pages are."""


class EventFilters(InputModel):
    """The list's filters, checked by the rules of ``GET /events`` (the same types; like its
    handler, ``read_filters`` then refuses an ``until`` before ``since``)."""

    event_type: EventTypePattern | None = None
    since: AwareUtcDatetime | None = None
    until: AwareUtcDatetime | None = None


@dataclass(frozen=True, slots=True)
class EventRow:
    """One line of the list."""

    id: str
    event_type: str
    created_at: datetime
    age: str
    delivery_count: int


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One delivery of an event's page."""

    id: str
    webhook_id: str
    state: str
    state_label: str
    attempt_number: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    completed_at: datetime | None
    finished: bool


def read_filters(raw: Mapping[str, str]) -> tuple[EventFilters | None, dict[str, str]]:
    """The checked filters (empty fields are no filter), or None and an error in words per
    field name."""
    given: dict[str, str] = {}
    for name in FILTER_FIELDS:
        value = raw.get(name, "")
        if value:
            given[name] = value if name == "event_type" else as_utc_text(value)
    try:
        filters = EventFilters.model_validate(given)
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "event_type"
            errors.setdefault(field, _in_words(field, _message(error)))
        return None, errors
    if filters.since is not None and filters.until is not None and filters.until < filters.since:
        return None, {"until": UNTIL_BEFORE_SINCE}
    return filters, {}


def _message(error: ErrorDetails) -> str:
    """Pydantic's message, reworded where it is off for a person (a NUL, a length, a pattern)."""
    if error["type"] == "string_pattern_mismatch":
        return NO_NUL
    if error["type"] in {"too_long", "string_too_long"}:
        return f"must be at most {error.get('ctx', {}).get('max_length')} characters long"
    message = error["msg"].removeprefix("Value error, ")
    if PATTERN_RULE_START in message:  # the API's rule in full, already hinted at the field
        message = message.split(PATTERN_RULE_START, 1)[0].replace("`", "") + WHOLE_SEGMENT
    return message


def _in_words(field: str, message: str) -> str:
    """An error of ``field`` as a sentence: a time in the console's words, anything else the
    API's message about the field (pydantic's ``Value error, `` dropped)."""
    if field in {"since", "until"}:
        return TIME_RULE.format(label=FIELD_LABELS[field])
    message = message.removeprefix("Value error, ")
    return f"{FIELD_LABELS.get(field, field)}: {message}".rstrip(".") + "."


def delivery_row(delivery: Delivery) -> DeliveryRow:
    return DeliveryRow(
        id=delivery.id,
        webhook_id=delivery.endpoint_id,
        state=delivery.state,
        state_label=STATE_LABELS.get(delivery.state, delivery.state),
        attempt_number=delivery.attempt_number,
        last_status_code=delivery.last_status_code,
        # "HTTP 500" as the error of a 500 says nothing the status does not
        last_error=None
        if delivery.last_error == f"HTTP {delivery.last_status_code}"
        else delivery.last_error,
        next_attempt_at=delivery.next_attempt_at,
        completed_at=delivery.completed_at,
        finished=delivery.state in FINAL_STATES,
    )


async def _find_event(queries: DeliveryQueries, wanted: str) -> bool:
    if not ids.has_prefix(wanted, ids.EVENT):
        return False
    try:
        await queries.get_event(event_id=wanted)
    except NotFound:
        return False
    return True


@dataclass(frozen=True, slots=True)
class OtherId:
    """An id of another kind given to the id box: what it is and its page."""

    kind: str
    path: str


def _other_id(console: str, wanted: str) -> OtherId | None:
    for prefix, (kind, pages) in _OTHER_KINDS.items():
        if ids.has_prefix(wanted, prefix):
            return OtherId(kind=kind, path=f"{console}{pages}/{wanted}")
    return None


@router.get(EVENTS_PATH)
async def events_page(
    request: Request, session: SessionDep, queries: QueriesDep, runtime: RuntimeDep
) -> Response:
    """The list, filtered and paged; or, for the id box, the event's page."""
    raw = raw_params(request, (*FILTER_FIELDS, ID_FIELD, CURSOR_FIELD))
    console = console_prefix(request)
    wanted = raw[ID_FIELD]
    id_error: str | None = None
    if wanted:
        if await _find_event(queries, wanted):
            return RedirectResponse(f"{console}{EVENTS_PATH}/{wanted}", status_code=303)
        id_error = NO_SUCH_EVENT
    filters, errors = read_filters(raw)
    query = {name: raw[name] for name in FILTER_FIELDS}
    listed: ListedPage[EventSummary] = ListedPage()
    if filters is not None:
        chosen = filters
        listed = await fetch_page(
            lambda cursor: queries.list_events(
                event_type=chosen.event_type,
                since=chosen.since,
                until=chosen.until,
                limit=PAGE_SIZE,
                cursor=cursor,
            ),
            cursor=raw[CURSOR_FIELD],
            console=console,
            path=EVENTS_PATH,
            query=query,
        )
    now = runtime.clock.now()
    rows = [_event_row(item, now) for item in listed.items]
    next_link, cursor_error = listed.next_link, listed.cursor_error
    filtered = any(raw[name] for name in FILTER_FIELDS)
    status = 422 if errors or cursor_error else 404 if id_error else 200
    return render(
        request,
        "events.html",
        session=session,
        active="events",
        status_code=status,
        raw=raw,
        errors=errors,
        id_error=id_error,
        other_id=_other_id(console, wanted) if id_error else None,
        cursor_error=cursor_error,
        rows=rows,
        filtered=filtered,
        paged=bool(raw[CURSOR_FIELD]),
        next_link=next_link,
        first_link=list_link(console, EVENTS_PATH, query, cursor=None),
        api_base=str(request.base_url).rstrip("/"),
    )


def _event_row(item: EventSummary, now: datetime) -> EventRow:
    event = item.event
    return EventRow(
        id=event.id,
        event_type=event.event_type,
        created_at=event.created_at,
        age=relative(event.created_at, now),
        delivery_count=item.delivery_count,
    )


def _event_id(event_id: str) -> str:
    """``event_id`` if it can be an event id; else the 404 page (no database asked)."""
    if not ids.has_prefix(event_id, ids.EVENT):
        raise NotFound("event", event_id[:64])
    return event_id


@router.get(EVENTS_PATH + "/{event_id}")
async def event_page(
    request: Request,
    event_id: str,
    session: SessionDep,
    queries: QueriesDep,
    runtime: RuntimeDep,
) -> HTMLResponse:
    """One event: its payload and its deliveries."""
    found = await queries.get_event(event_id=_event_id(event_id))
    event = found.event
    now = runtime.clock.now()
    return render(
        request,
        "event.html",
        session=session,
        active="events",
        event=event,
        age=relative(event.created_at, now),
        payload=pretty_json(event.payload),
        **_deliveries_context(event.id, [delivery_row(d) for d in found.deliveries]),
    )


@router.get(EVENTS_PATH + "/{event_id}/deliveries")
async def event_deliveries(
    request: Request, event_id: str, session: SessionDep, queries: QueriesDep
) -> HTMLResponse:
    """The deliveries section alone (what the event's page swaps in while they change)."""
    checked = _event_id(event_id)
    try:
        found = await queries.get_event(event_id=checked)
    except Exception as exc:
        if not is_unreachable(exc):
            raise
        return _deliveries_section(request, session, checked, None)
    return _deliveries_section(
        request, session, checked, [delivery_row(d) for d in found.deliveries]
    )


def _deliveries_section(
    request: Request,
    session: ConsoleSession,
    event_id: str,
    deliveries: list[DeliveryRow] | None,
) -> HTMLResponse:
    return render(
        request,
        "_event_deliveries.html",
        session=session,
        status_code=200 if deliveries is not None else 503,
        headers=None if deliveries is not None else {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)},
        **_deliveries_context(event_id, deliveries),
    )


def _deliveries_context(event_id: str, deliveries: list[DeliveryRow] | None) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "deliveries": deliveries,
        # None (unavailable) keeps polling: the next answer may bring them back.
        "live": deliveries is None or not all(d.finished for d in deliveries),
        "refresh_s": LIVE_REFRESH_S,
        "unavailable_title": UNAVAILABLE_TITLE,
        "unavailable_message": UNAVAILABLE_MESSAGE,
    }
