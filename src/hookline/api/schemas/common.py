"""Shapes every resource shares: the list envelope, the error body, safe text, ids, timestamps
and the nesting limit of JSON input.

Text that reaches the database is refused when it cannot be stored as it is (a NUL character, or
a lone surrogate that JSON allows but UTF-8 cannot encode): that is a ``422`` naming the field,
never a ``500`` from the driver. So is a timestamp outside ``MIN_TIMESTAMP..MAX_TIMESTAMP`` (one
that Python cannot even convert to UTC included), and JSON nested deeper than ``MAX_JSON_DEPTH``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic_core import InitErrorDetails

T = TypeVar("T")

MAX_JSON_DEPTH: Final = 64
"""How many arrays/objects a JSON value in a request may nest (``[]`` is 1, ``[[]]`` is 2): an
event payload, or any other field. Far deeper than real payloads, far below the depth at which
parsing, validating or echoing the value back in a 422 would exhaust Python's stack."""

NO_NUL_PATTERN: Final = r"^[^\x00]*$"
"""The part of ``StorableText`` a JSON Schema can state (lone surrogates it cannot)."""

MIN_TIMESTAMP: Final = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIMESTAMP: Final = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
TIMESTAMP_RULE: Final = (
    "RFC 3339 with its offset (`Z` or `±hh:mm`), from 1970-01-01T00:00:00Z to "
    "9999-12-31T23:59:59Z: on 1970-01-01 no positive offset, on 9999-12-31 no negative one "
    "(write those in UTC)."
)
"""The one rule every timestamp the API takes follows (stated in each field's description)."""
_DATE_TIME: Final = (
    r"(?:19[7-9][0-9]|[2-9][0-9]{3})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
)
TIMESTAMP_PATTERN: Final = rf"^{_DATE_TIME}(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
"""RFC 3339 date-time with a year of 1970-9999 as written."""
_NONZERO_OFFSET: Final = r"(?:(?:0[1-9]|1[0-9]|2[0-3]):[0-5][0-9]|00:(?:0[1-9]|[1-5][0-9]))"
TIMESTAMP_EDGE_PATTERN: Final = (
    rf"^1970-01-01[Tt][0-9:.]+\+{_NONZERO_OFFSET}$|^9999-12-31[Tt][0-9:.]+-{_NONZERO_OFFSET}$"
)
"""The written timestamps of the first and last day whose instant may fall outside the range."""
_TIMESTAMP: Final = re.compile(TIMESTAMP_PATTERN)
_TIMESTAMP_EDGE: Final = re.compile(TIMESTAMP_EDGE_PATTERN)

ID_BODY_PATTERN = "[0-9A-HJKMNP-TV-Z]{26}"
"""The 26 Crockford base32 characters after an id's prefix (``hookline.ids``)."""


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from exc
    return value


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _timestamp_text(value: Any) -> Any:
    """Only an RFC 3339 string in the range is a timestamp (pydantic alone would also take
    numbers as Unix time, and other spellings)."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp string")
    if not _TIMESTAMP.match(value) or _TIMESTAMP_EDGE.match(value):
        raise ValueError(f"must be {TIMESTAMP_RULE}")
    return value


def _in_range_utc(value: datetime) -> datetime:
    """``value`` in UTC; out of range (or beyond what Python can convert) is a ``ValueError``."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not MIN_TIMESTAMP <= utc <= MAX_TIMESTAMP:
        raise ValueError(f"must be {TIMESTAMP_RULE}")
    return utc


def nesting_exceeds(value: Any, max_depth: int) -> bool:
    """Whether ``value`` nests lists/dicts more than ``max_depth`` deep (iteratively: no input
    can exhaust the stack here)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


_JSON_SCALAR_CHECKS: Final[dict[str, tuple[str, Callable[[Any], bool]]]] = {
    "integer": (
        "int_type",
        lambda v: (
            (isinstance(v, int) and not isinstance(v, bool))
            or (isinstance(v, float) and v.is_integer())
        ),
    ),
    "number": ("float_type", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "boolean": ("bool_type", lambda v: isinstance(v, bool)),
}


def json_scalars_of(model: type[BaseModel]) -> Callable[[Any], Any]:
    """A before-validator for ``model`` that refuses a field (or array item) whose JSON type is
    not the integer, number or boolean the model's schema states: pydantic's lax mode, which
    reads ``true`` as 1 and ``"5"`` as 5, must not accept what the OpenAPI document forbids.
    Each refusal is an error on the field's own ``loc``."""
    expected: dict[str, tuple[str, bool]] = {}  # field -> (JSON type, is an array of it)
    for name, schema in model.model_json_schema()["properties"].items():
        kind, items = schema.get("type"), schema.get("items", {})
        if kind in _JSON_SCALAR_CHECKS:
            expected[name] = (kind, False)
        elif kind == "array" and items.get("type") in _JSON_SCALAR_CHECKS:
            expected[name] = (items["type"], True)

    def check(value: Any) -> Any:
        if not isinstance(value, dict):
            return value  # the model itself refuses a non-object
        errors: list[InitErrorDetails] = []
        for name, (kind, is_array) in expected.items():
            if name not in value:
                continue
            error_type, fits = _JSON_SCALAR_CHECKS[kind]
            given = value[name]
            if not is_array:
                places: list[tuple[tuple[str | int, ...], Any]] = [((name,), given)]
            elif isinstance(given, list):
                places = [((name, index), item) for index, item in enumerate(given)]
            else:
                continue  # the model refuses a non-array
            errors.extend(
                {"type": error_type, "loc": loc, "input": item}
                for loc, item in places
                if not fits(item)
            )
        if errors:
            raise ValidationError.from_exception_data(model.__name__, errors)
        return value

    return check


StorableText = Annotated[str, Field(pattern=NO_NUL_PATTERN), AfterValidator(_storable)]
"""A string the database can store unchanged (the schema states the NUL rule as a pattern)."""

UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
"""A timestamp, always written in UTC with a ``Z``."""

AwareUtcDatetime = Annotated[
    AwareDatetime,
    BeforeValidator(_timestamp_text),
    AfterValidator(_in_range_utc),
    Field(
        json_schema_extra={"pattern": TIMESTAMP_PATTERN, "not": {"pattern": TIMESTAMP_EDGE_PATTERN}}
    ),
]
"""An input timestamp: RFC 3339 with its offset, in ``MIN_TIMESTAMP..MAX_TIMESTAMP``; kept in
UTC. Every timestamp a request may carry (body or query) has this type."""


def id_pattern(prefix: str) -> str:
    """The regular expression of a whole id of kind ``prefix`` (``wh``, ``evt``, ...)."""
    return f"^{prefix}_{ID_BODY_PATTERN}$"


WebhookIdField = Annotated[
    str, Field(pattern=id_pattern("wh"), examples=["wh_01JH8X4T0Q3W8YV4ZK9D3M2N1P"])
]
EventIdField = Annotated[str, Field(pattern=id_pattern("evt"))]


class InputModel(BaseModel):
    """Base of request bodies: an unknown field is a ``422``, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class OutputModel(BaseModel):
    """Base of response bodies, read from service results by attribute."""

    model_config = ConfigDict(from_attributes=True)


class ErrorOut(BaseModel):
    """Every error but validation: a sentence saying what went wrong."""

    detail: str = Field(examples=["webhook 'wh_01JH8X...' not found"])


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first; pass ``next_cursor`` as ``cursor`` for the next one."""

    data: list[T]
    next_cursor: str | None = Field(description="Opaque; null on the last page.", examples=[None])
