"""The dead letters page ``/ui/dead-letters`` and its replay, confirmed before it runs.

The list reads ``DeliveryQueries.list_dead_letters``, the call behind ``GET /dead-letters``
(failed deliveries, newest first, cursor-paged), filtered by webhook and by when they failed
(``since`` at or after, ``until`` before; a time without an offset is read as UTC, then the API's
timestamp rule applies). Each row has a checkbox.

Replaying takes two CSRF-checked posts:

1. ``POST /ui/dead-letters/confirm`` (from "Replay selected" or "Replay all matching") asks
   "Replay N dead letters?": N is the number selected, or the dead letters matching the filter
   counted by ``DeadLetterService.preview_replay``; it also says how many would be skipped and
   why. The selection (or the filter) travels on as hidden fields.
2. ``POST /ui/dead-letters/replay`` runs ``DeadLetterService.replay_selected`` (the ids) or
   ``DeadLetterService.replay`` (the filter, the call behind ``POST /dead-letters/replay``) and
   shows what it did: how many were replayed, and how many were skipped, by reason, in words.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

from fastapi import Request
from fastapi.responses import HTMLResponse
from pydantic import Field, ValidationError
from starlette.datastructures import FormData

from hookline.api.console.auth import CheckedFormDep, SessionDep
from hookline.api.console.deliveries import (
    DELIVERIES_PATH,
    LIMIT_FIELD,
    PAGE_SIZE,
    field_errors,
    page_context,
)
from hookline.api.console.formatting import TIME_RULE, as_utc_text
from hookline.api.console.listing import (
    CURSOR_FIELD,
    MAX_FIELD_CHARS,
    ListedPage,
    fetch_page,
    list_link,
    raw_params,
)
from hookline.api.console.rendering import console_prefix, render
from hookline.api.console.routing import console_router
from hookline.api.console.session import ConsoleSession
from hookline.api.deps import DeadLettersDep, QueriesDep, RuntimeDep
from hookline.api.pagination import MAX_LIMIT
from hookline.api.schemas.common import AwareUtcDatetime, InputModel, WebhookIdField, id_pattern
from hookline.errors import NotFound
from hookline.ids import DELIVERY
from hookline.service.dead_letters import (
    ENDPOINT_DELETED,
    NOT_A_DEAD_LETTER,
    ReplayPreview,
    ReplayResult,
)
from hookline.storage.models import Delivery

router = console_router()
Outcome = TypeVar("Outcome", ReplayPreview, ReplayResult)

DEAD_LETTERS_PATH: Final = "/dead-letters"
CONFIRM_PATH: Final = DEAD_LETTERS_PATH + "/confirm"
REPLAY_PATH: Final = DEAD_LETTERS_PATH + "/replay"
FILTER_FIELDS: Final = ("webhook_id", "since", "until")
TIME_FIELDS: Final = ("since", "until")
SCOPE_FIELD: Final = "scope"
SELECTED: Final = "selected"
ALL_MATCHING: Final = "all"
ID_FIELD: Final = "delivery_id"
UNTIL_BEFORE_SINCE: Final = "Failed before must not be earlier than Failed since."
NOTHING_SELECTED: Final = (
    "Nothing was selected. Tick the dead letters to replay, or use Replay all matching."
)
BAD_SELECTION: Final = "The selection holds something that is not a delivery id; nothing was done."
NO_SCOPE: Final = "Choose Replay selected or Replay all matching."
NO_SUCH_WEBHOOK: Final = "Webhook id: no webhook has this id."
SKIP_REASONS: Final = {
    "endpoint_disabled": "the webhook is disabled (enable it, then replay again)",
    ENDPOINT_DELETED: "the webhook was deleted",
    NOT_A_DEAD_LETTER: "no longer a dead letter (already replayed or retried meanwhile)",
}
"""Why dead letters were (or would be) left alone, in words."""
_DELIVERY_ID: Final = re.compile(id_pattern(DELIVERY))


class DeadLetterFilters(InputModel):
    """The list's filters, with the API's types (``GET /dead-letters`` and ``ReplayIn``)."""

    webhook_id: WebhookIdField | None = None
    since: AwareUtcDatetime | None = None
    until: AwareUtcDatetime | None = None
    limit: int = Field(PAGE_SIZE, ge=1, le=MAX_LIMIT)


def read_filters(raw: Mapping[str, str]) -> tuple[DeadLetterFilters | None, dict[str, str]]:
    """The checked filters (an empty field is no filter), or None and an error per field."""
    given: dict[str, str] = {}
    for name in (*FILTER_FIELDS, LIMIT_FIELD):
        value = raw.get(name, "")
        if value:
            given[name] = as_utc_text(value) if name in TIME_FIELDS else value
    try:
        filters = DeadLetterFilters.model_validate(given)
    except ValidationError as exc:
        errors = field_errors(exc, default="webhook_id")
        for name in TIME_FIELDS:
            if name in errors:
                errors[name] = TIME_RULE.format(label=_label(name))
        return None, errors
    if filters.since is not None and filters.until is not None and filters.until < filters.since:
        return None, {"until": UNTIL_BEFORE_SINCE}
    return filters, {}


def _label(name: str) -> str:
    return {"since": "Failed since", "until": "Failed before"}.get(name, name)


def shown_time(value: str) -> str:
    """A time field as a datetime-local field shows it: UTC without an offset when it reads as
    a time, else as typed (so the person sees what was refused)."""
    try:
        checked = DeadLetterFilters.model_validate({"since": as_utc_text(value)}).since
    except ValidationError:
        return value
    assert checked is not None
    return checked.strftime("%Y-%m-%dT%H:%M:%S")


def skipped_in_words(skipped: Mapping[str, int]) -> list[tuple[str, int, str]]:
    """``(reason, count, words)`` for each reason with a count, in the order given."""
    return [
        (reason, count, SKIP_REASONS.get(reason, _other_reason(reason)))
        for reason, count in skipped.items()
        if count
    ]


def _other_reason(reason: str) -> str:
    status = reason.removeprefix("endpoint_")
    return f"the webhook is {status.replace('_', ' ')}"


def _form_raw(form: FormData) -> dict[str, str]:
    """The filter fields of a posted form, as the list reads them from its query."""
    raw: dict[str, str] = {}
    for name in (*FILTER_FIELDS, LIMIT_FIELD):
        value = form.get(name)
        raw[name] = value.strip()[:MAX_FIELD_CHARS] if isinstance(value, str) else ""
    raw[CURSOR_FIELD] = ""
    return raw


def _selection(form: FormData) -> list[str] | None:
    """The distinct delivery ids ticked, in order; None when one is not a delivery id."""
    chosen: list[str] = []
    for value in form.getlist(ID_FIELD):
        if not isinstance(value, str) or _DELIVERY_ID.fullmatch(value) is None:
            return None
        if value not in chosen:
            chosen.append(value)
    return chosen


# the list ----------------------------------------------------------------------------------


async def _list_page(
    request: Request,
    *,
    raw: dict[str, str],
    session: ConsoleSession,
    runtime: RuntimeDep,
    queries: QueriesDep,
    status_code: int = 200,
    errors: Mapping[str, str] | None = None,
    problem: str | None = None,
) -> HTMLResponse:
    console = console_prefix(request)
    filters, filter_errors = read_filters(raw)
    all_errors = {**filter_errors, **(errors or {})}
    listed: ListedPage[Delivery] = ListedPage()
    if filters is not None and not all_errors:
        chosen = filters
        listed = await fetch_page(
            lambda cursor: queries.list_dead_letters(
                webhook_id=chosen.webhook_id,
                since=chosen.since,
                until=chosen.until,
                limit=chosen.limit,
                cursor=cursor,
            ),
            cursor=raw[CURSOR_FIELD],
            console=console,
            path=DEAD_LETTERS_PATH,
            query=raw,
        )
    rows, next_link, cursor_error = listed.items, listed.next_link, listed.cursor_error
    query = {name: raw[name] for name in (*FILTER_FIELDS, LIMIT_FIELD)}
    shown = {**raw, **{name: shown_time(raw[name]) for name in TIME_FIELDS if raw[name]}}
    if status_code == 200 and (all_errors or cursor_error):
        status_code = 422
    return render(
        request,
        "dead_letters.html",
        session=session,
        active="dead-letters",
        status_code=status_code,
        raw=shown,
        errors=all_errors,
        problem=problem,
        cursor_error=cursor_error,
        rows=rows,
        filters=filters,
        filtered=any(raw[name] for name in FILTER_FIELDS),
        paged=bool(raw[CURSOR_FIELD]),
        next_link=next_link,
        first_link=list_link(console, DEAD_LETTERS_PATH, query, cursor=None),
        dead_letters_path=DEAD_LETTERS_PATH,
        confirm_path=CONFIRM_PATH,
        **page_context(runtime.clock.now()),
    )


@router.get(DEAD_LETTERS_PATH)
async def dead_letters_page(
    request: Request, session: SessionDep, runtime: RuntimeDep, queries: QueriesDep
) -> HTMLResponse:
    """Dead letters matching the filters, newest first, each with a checkbox."""
    raw = raw_params(request, (*FILTER_FIELDS, LIMIT_FIELD, CURSOR_FIELD))
    return await _list_page(request, raw=raw, session=session, runtime=runtime, queries=queries)


# confirm and replay ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Asked:
    """What a replay form asks for: the ids ticked (``selection``), or every dead letter
    matching ``filters``."""

    selection: list[str] | None
    filters: DeadLetterFilters | None


@dataclass(frozen=True, slots=True)
class Refused:
    """A replay form that cannot be acted on: the list comes back saying why."""

    status_code: int
    problem: str | None = None
    errors: Mapping[str, str] | None = None


def read_replay_form(form: FormData, raw: Mapping[str, str]) -> Asked | Refused:
    """The selection (``scope=selected``) or the filter (``scope=all``) a form posts."""
    scope = form.get(SCOPE_FIELD)
    if scope == SELECTED:
        chosen = _selection(form)
        if chosen is None:
            return Refused(422, problem=BAD_SELECTION)
        if not chosen:
            return Refused(422, problem=NOTHING_SELECTED)
        return Asked(selection=chosen, filters=None)
    if scope == ALL_MATCHING:
        filters, errors = read_filters(raw)
        if filters is None:
            return Refused(422, errors=errors)
        return Asked(selection=None, filters=filters)
    return Refused(422, problem=NO_SCOPE)


async def _carry_out(
    asked: Asked | Refused,
    on_selection: Callable[..., Awaitable[Outcome]],
    on_filters: Callable[..., Awaitable[Outcome]],
) -> Outcome | Refused:
    """``on_selection(delivery_ids=...)`` for a selection, else ``on_filters`` with the
    filter's webhook and times; what refused the form, or the webhook it names being unknown,
    as ``Refused``."""
    if isinstance(asked, Refused):
        return asked
    try:
        if asked.selection is not None:
            return await on_selection(delivery_ids=asked.selection)
        assert asked.filters is not None
        return await on_filters(
            endpoint_id=asked.filters.webhook_id,
            since=asked.filters.since,
            until=asked.filters.until,
        )
    except NotFound:
        return Refused(404, errors={"webhook_id": NO_SUCH_WEBHOOK})


def _back_link(request: Request, raw: Mapping[str, str]) -> str:
    query = {name: raw[name] for name in (*FILTER_FIELDS, LIMIT_FIELD)}
    return list_link(console_prefix(request), DEAD_LETTERS_PATH, query, cursor=None)


@router.post(CONFIRM_PATH)
async def confirm_replay(
    request: Request,
    session: SessionDep,
    form: CheckedFormDep,
    runtime: RuntimeDep,
    queries: QueriesDep,
    dead_letters: DeadLettersDep,
) -> HTMLResponse:
    """ "Replay N dead letters?", with the selection or the filter as hidden fields."""
    raw = _form_raw(form)
    asked = read_replay_form(form, raw)
    preview = await _carry_out(asked, dead_letters.preview_selected, dead_letters.preview_replay)
    if isinstance(preview, Refused):
        return await _refused(request, preview, raw, session, runtime, queries)
    assert isinstance(asked, Asked)
    return render(
        request,
        "dead_letters_confirm.html",
        session=session,
        active="dead-letters",
        scope=SELECTED if asked.selection is not None else ALL_MATCHING,
        selection=asked.selection or [],
        filters=asked.filters,
        raw=raw,
        matching=preview.matching,
        replayable=preview.replayable,
        skipped=skipped_in_words(preview.skipped),
        back_link=_back_link(request, raw),
        filter_fields=(*FILTER_FIELDS, LIMIT_FIELD),
        replay_path=REPLAY_PATH,
        **page_context(runtime.clock.now()),
    )


@router.post(REPLAY_PATH)
async def replay(
    request: Request,
    session: SessionDep,
    form: CheckedFormDep,
    runtime: RuntimeDep,
    queries: QueriesDep,
    dead_letters: DeadLettersDep,
) -> HTMLResponse:
    """Replay the selection, or every dead letter matching the filter; show what happened."""
    raw = _form_raw(form)
    result = await _carry_out(
        read_replay_form(form, raw), dead_letters.replay_selected, dead_letters.replay
    )
    if isinstance(result, Refused):
        return await _refused(request, result, raw, session, runtime, queries)
    return render(
        request,
        "dead_letters_result.html",
        session=session,
        active="dead-letters",
        replayed=result.replayed,
        skipped=skipped_in_words(result.skipped),
        back_link=_back_link(request, raw),
        pending_link=f"{console_prefix(request)}{DELIVERIES_PATH}?state=pending",
        **page_context(runtime.clock.now()),
    )


async def _refused(
    request: Request,
    refused: Refused,
    raw: dict[str, str],
    session: ConsoleSession,
    runtime: RuntimeDep,
    queries: QueriesDep,
) -> HTMLResponse:
    """The list again (with the form's filters), saying why nothing was done."""
    return await _list_page(
        request,
        raw=raw,
        session=session,
        runtime=runtime,
        queries=queries,
        status_code=refused.status_code,
        problem=refused.problem,
        errors=refused.errors,
    )
