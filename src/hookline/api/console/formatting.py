"""Text the console's delivery and event pages share: times read as UTC, relative times,
pretty JSON and how a delivery state reads."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Final

from hookline.api.console.rendering import format_duration
from hookline.domain.states import TERMINAL_STATES

TIME_RULE: Final = (
    "{label} must be a date and time such as 2026-01-31 14:30 or 2026-01-31T14:30:00Z (read as "
    "UTC unless it ends with an offset like +02:00), between 1970-01-01 and 9999-12-31."
)
"""What a time filter that is not one is told (``label`` names the field)."""
STATE_LABELS: Final = {
    "pending": "pending",
    "delivering": "delivering",
    "succeeded": "succeeded",
    "retrying": "retrying",
    "failed": "failed (dead letter)",
    "cancelled": "cancelled",
    "parked": "parked (webhook disabled)",
}
"""How a delivery state reads on a badge (an unknown one reads as itself)."""
FINAL_STATES: Final = frozenset(state.value for state in TERMINAL_STATES)
_LOCAL_TIME: Final = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:[Tt ](?P<time>[0-9]{2}:[0-9]{2})(?P<seconds>:[0-9]{2}(?:\.[0-9]{1,9})?)?)?"
)
"""A time written without an offset (what a person types, or a datetime-local field sends):
a date, or a date and a time (seconds optional)."""


def as_utc_text(value: str) -> str:
    """``value`` with ``Z`` added when it is a date or date-time written without an offset
    (read as UTC: the console shows every time in UTC); anything else unchanged, for the API's
    timestamp rule to judge."""
    found = _LOCAL_TIME.fullmatch(value)
    if found is None:
        return value
    return f"{found['date']}T{found['time'] or '00:00'}{found['seconds'] or ':00'}Z"


def relative(moment: datetime, now: datetime) -> str:
    """``5 min ago`` (or ``in 5 min`` for a time ahead of ``now``)."""
    seconds = (now - moment).total_seconds()
    if abs(seconds) < 1:
        return "just now"
    span = format_duration(abs(seconds))
    return f"{span} ago" if seconds > 0 else f"in {span}"


def relative_to(now: datetime) -> Callable[[datetime | None], str]:
    """A function giving ``5 min ago`` / ``in 5 min`` for a time (``""`` for None)."""

    def relative_to_now(moment: datetime | None) -> str:
        return "" if moment is None else relative(moment, now)

    return relative_to_now


def pretty_json(payload: str) -> str:
    """The stored compact JSON indented by two spaces (as stored if it is not JSON)."""
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:
        return payload
