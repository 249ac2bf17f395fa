"""SQL pieces the repositories share."""

from __future__ import annotations

from sqlalchemy import ARRAY, ColumnElement, String, any_, bindparam


def one_of(
    column: ColumnElement[str],
    *,
    postgresql: bool,
    name: str = "ids",
    values: list[str] | None = None,
) -> ColumnElement[bool]:
    """``column`` is one of the strings bound to ``name`` (``values``, or given at execution).

    PostgreSQL: ``= ANY(array)``, whose SQL text is the same for any number of values: one
    server-side prepared statement, where an ``IN`` list would be a new statement (and a new
    prepare round trip) for each length. Elsewhere an expanding ``IN``.
    """
    if postgresql:
        return column == any_(bindparam(name, values, type_=ARRAY(String)))
    return column.in_(bindparam(name, values, expanding=True))
