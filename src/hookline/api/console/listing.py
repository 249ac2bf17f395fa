"""What the console's list pages share: their query fields, their page links and cursor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar
from urllib.parse import urlencode

from fastapi import Request

from hookline.service.pagination import MAX_CURSOR_CHARS, InvalidCursor, Page

T = TypeVar("T")

MAX_FIELD_CHARS: Final = 1000
"""A query value longer than this is cut before it is checked or shown again."""
CURSOR_FIELD: Final = "cursor"
BAD_CURSOR: Final = (
    "This page link is not one this console handed out (or it was cut short). "
    "Start again from the first page."
)


def raw_params(request: Request, names: Sequence[str]) -> dict[str, str]:
    """The query's fields ``names``, trimmed and cut to ``MAX_FIELD_CHARS`` ("" when absent)."""
    return {name: request.query_params.get(name, "").strip()[:MAX_FIELD_CHARS] for name in names}


def list_link(console: str, path: str, query: Mapping[str, str], *, cursor: str | None) -> str:
    """``path`` with the non-empty fields of ``query``, at ``cursor`` (None: the first page)."""
    fields = {name: value for name, value in query.items() if value}
    if cursor is not None:
        fields[CURSOR_FIELD] = cursor
    return f"{console}{path}" + (f"?{urlencode(fields)}" if fields else "")


def checked_cursor(value: str) -> str | None:
    """The ``cursor`` field as the service takes it (None: the first page); one too long to be
    ours is refused here, as ``GET`` lists refuse it before the service sees it."""
    if not value:
        return None
    if len(value) > MAX_CURSOR_CHARS:
        raise InvalidCursor(BAD_CURSOR)
    return value


@dataclass(frozen=True, slots=True)
class ListedPage(Generic[T]):
    """One page of a list as a console page shows it: its rows, the link to the next page, or
    why the page link given cannot be used."""

    items: Sequence[T] = ()
    next_link: str | None = None
    cursor_error: str | None = None


async def fetch_page(
    fetch: Callable[[str | None], Awaitable[Page[T]]],
    *,
    cursor: str,
    console: str,
    path: str,
    query: Mapping[str, str],
) -> ListedPage[T]:
    """``fetch(cursor)`` (a service's list call), with the next page's link keeping ``query``;
    a cursor that is not ours becomes ``BAD_CURSOR`` instead of an error."""
    try:
        page = await fetch(checked_cursor(cursor))
    except InvalidCursor:
        return ListedPage(cursor_error=BAD_CURSOR)
    if page.next_cursor is None:
        return ListedPage(page.items)
    return ListedPage(page.items, list_link(console, path, query, cursor=page.next_cursor))
