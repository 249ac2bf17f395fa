"""Reading a ``Retry-After`` header (RFC 9110 §10.2.3) into seconds from ``now``."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

# delta-seconds is a non-negative integer; a decimal fraction is accepted because servers send it.
_DELTA_SECONDS: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait that ``value`` asks for, or ``None`` when it asks for nothing usable.

    ``value`` is delta-seconds (``"120"``, also ``"1.5"``) or an HTTP-date; a date in the past
    means ``0.0``; a date without a zone is read as UTC (HTTP-dates are GMT). ``None``, empty,
    negative, non-finite or unparsable values give ``None``: a header value never makes this
    raise. ``now`` must be timezone-aware (a naive ``now`` is a caller bug: ``ValueError``).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)
