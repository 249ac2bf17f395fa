"""Shapes every resource shares: the list envelope, the error body, and safe text and ids.

Text that reaches the database is refused when it cannot be stored as it is (a NUL character, or
a lone surrogate that JSON allows but UTF-8 cannot encode): that is a ``422`` naming the field,
never a ``500`` from the driver.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

T = TypeVar("T")

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


StorableText = Annotated[str, AfterValidator(_storable)]
"""A string the database can store unchanged."""

UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
"""A timestamp, always written in UTC with a ``Z``."""

AwareUtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
"""An input timestamp that must carry its offset (RFC 3339); kept in UTC."""


def id_pattern(prefix: str) -> str:
    """The regular expression of a whole id of kind ``prefix`` (``wh``, ``evt``, ...)."""
    return f"^{prefix}_{ID_BODY_PATTERN}$"


WebhookIdField = Annotated[str, Field(pattern=id_pattern("wh"), examples=["wh_01JH8X..."])]
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
