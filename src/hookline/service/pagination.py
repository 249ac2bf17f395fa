"""Keyset pagination for every list: ``Page[T]`` and the opaque cursor that continues it.

Ids are time-ordered (``hookline.ids``), so "newest first" is ``ORDER BY id DESC`` and the next
page is ``WHERE id < :last_id``. A cursor is the last id of a page, base64url-encoded behind a
version tag; it says nothing about offsets, so rows inserted while a client pages (always newer,
so always before the cursor) never shift, repeat or hide the rows it has yet to see.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from hookline import ids

T = TypeVar("T")

CURSOR_VERSION: Final = "v1"
MAX_CURSOR_CHARS: Final = 128
"""Longer than any cursor this module makes; a longer one is refused before decoding."""


class InvalidCursor(ValueError):
    """A ``cursor`` that this API did not hand out (or one for a different list)."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a newest-first list; ``next_cursor`` is None on the last page."""

    items: Sequence[T]
    next_cursor: str | None


def encode_cursor(last_id: str) -> str:
    """The opaque cursor that continues a list after the row with id ``last_id``."""
    raw = f"{CURSOR_VERSION}:{last_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, prefix: str) -> str | None:
    """The last id a cursor stands for (None for no cursor); ``InvalidCursor`` if it is not one.

    ``prefix`` is the id kind of the list (``wh``, ``dlv``): a cursor from another list is refused.
    """
    if cursor is None:
        return None
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursor("cursor is not one this API handed out")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InvalidCursor("cursor is not one this API handed out") from exc
    version, sep, last_id = text.partition(":")
    if version != CURSOR_VERSION or not sep or not ids.has_prefix(last_id, prefix):
        raise InvalidCursor("cursor is not one this API handed out")
    if encode_cursor(last_id) != cursor:  # one spelling per cursor (no stray padding or bits)
        raise InvalidCursor("cursor is not one this API handed out")
    return last_id


def page_of(rows: Sequence[T], *, limit: int, id_of: Callable[[T], str]) -> Page[T]:
    """A page from ``rows`` fetched with ``LIMIT limit + 1``: the extra row means "more"."""
    if len(rows) > limit:
        items = rows[:limit]
        return Page(items=items, next_cursor=encode_cursor(id_of(items[-1])))
    return Page(items=rows, next_cursor=None)
