"""The body a subscriber receives: the Standard Webhooks envelope, or the payload alone.

``envelope`` (the default) wraps the event as ``{"type": <event_type>, "timestamp": <created_at>,
"data": <payload>}``; ``raw`` sends the stored payload as it is. The envelope is put together by
concatenation, not by re-serialising: the stored payload text is embedded byte for byte (key
order, number spelling, non-ASCII characters unchanged), and the same event gives the same bytes
on every attempt, so a retry carries the signature of the very bytes the first attempt sent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum


class PayloadFormat(StrEnum):
    """How an endpoint wants its bodies (``webhook_endpoints.payload_format``)."""

    ENVELOPE = "envelope"
    RAW = "raw"


def rfc3339(when: datetime) -> str:
    """``when`` in UTC with a ``Z``, microseconds only when there are any: the spelling the API
    uses for every timestamp (pydantic's). A naive ``when`` is a caller bug: ``ValueError``."""
    if when.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def message_body(
    *, payload_format: str, event_type: str, created_at: datetime, payload: str
) -> bytes:
    """The exact bytes sent (and signed) for an event whose stored payload text is ``payload``.

    ``payload_format`` is the endpoint's stored value; one that is not a ``PayloadFormat`` is a
    ``ValueError`` (the caller fails that one delivery, not its batch). ``payload`` must already
    be JSON text, as ``events.payload`` is: it is embedded, never parsed.
    """
    match payload_format:
        case PayloadFormat.RAW:
            return payload.encode()
        case PayloadFormat.ENVELOPE:
            envelope = (
                f'{{"type":{json.dumps(event_type, ensure_ascii=False)},'
                f'"timestamp":"{rfc3339(created_at)}",'
                f'"data":{payload}}}'
            )
            return envelope.encode()
        case _:
            raise ValueError(
                f"unknown payload format {payload_format!r} "
                f"(expected one of: {', '.join(PayloadFormat)})"
            )
