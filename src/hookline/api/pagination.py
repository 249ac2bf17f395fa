"""List parameters and the list envelope: ``limit`` (1-500, default 50) and an opaque ``cursor``.

Lists are newest first; a page's ``next_cursor`` continues it (``hookline.service.pagination``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Final, TypeVar

from fastapi import Query
from pydantic import BaseModel

from hookline.api.schemas.common import Page as PageOut
from hookline.service.pagination import MAX_CURSOR_CHARS, Page

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500

Row = TypeVar("Row")
Out = TypeVar("Out", bound=BaseModel)

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1-500).")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_CHARS,
        description="`next_cursor` of the previous page; absent for the first page.",
    ),
]


def page_out(
    page: Page[Row], shape: Callable[[Row], Out], envelope: type[PageOut[Out]]
) -> PageOut[Out]:
    """The ``{"data": [...], "next_cursor": ...}`` envelope (``envelope``) of a service page."""
    return envelope(data=[shape(row) for row in page.items], next_cursor=page.next_cursor)
