"""Event types and the patterns a webhook subscribes with.

An event type is published literally (``order.created``); it may not contain ``*``. A webhook's
``event_types`` lists exact types or patterns. Both are read as segments separated by dots; in a
pattern, a segment that is exactly ``*`` stands for one segment of the type: any non-empty text
without a dot. So ``order.*`` matches ``order.created`` but neither ``order`` nor
``order.created.v2``, and ``*.created`` matches ``order.created``. Any other segment matches
itself only, and may not contain ``*`` (``ord*`` is refused rather than read as a glob: one
wildcard with one meaning). An empty list of patterns subscribes to every type.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

WILDCARD: Final = "*"
SEPARATOR: Final = "."
PATTERN_RULE: Final = (
    "exact event types, or patterns in which `*` stands for exactly one dot-separated segment "
    "(`order.*` matches `order.created`, not `order` nor `order.created.v2`; `*.created` "
    "matches `order.created`); `*` cannot be part of a longer segment (`ord*`, `**`)"
)
"""What ``validate_pattern`` allows, worded for an API description or a 422."""
PATTERN_FORBIDDEN_REGEX: Final = r"[^.]\*|\*[^.]"
"""Found (unanchored) in exactly the patterns ``validate_pattern`` refuses: a ``*`` next to
anything but a dot or an end. For the JSON Schema (``not: {pattern: ...}``)."""
EVENT_TYPE_FORBIDDEN_REGEX: Final = r"\*"
"""Found (unanchored) in exactly the event types ``validate_event_type`` refuses."""


def validate_pattern(pattern: str) -> str:
    """``pattern`` unchanged if every segment holding a ``*`` is exactly ``*``; else ValueError."""
    if WILDCARD in pattern:
        for segment in pattern.split(SEPARATOR):
            if WILDCARD in segment and segment != WILDCARD:
                raise ValueError(
                    f"{pattern!r}: segment {segment!r} mixes `*` with other characters; "
                    f"allowed are {PATTERN_RULE}"
                )
    return pattern


def validate_event_type(event_type: str) -> str:
    """``event_type`` unchanged if it holds no ``*``: a published type is literal."""
    if WILDCARD in event_type:
        raise ValueError(
            "must be a literal event type: `*` is only for the patterns webhooks subscribe with"
        )
    return event_type


def matches(pattern: str, event_type: str) -> bool:
    """Whether ``event_type`` is ``pattern``, or fits it with each ``*`` standing for one
    non-empty segment."""
    if WILDCARD not in pattern:
        return pattern == event_type
    wanted = pattern.split(SEPARATOR)
    given = event_type.split(SEPARATOR)
    if len(wanted) != len(given):
        return False
    return all(
        segment == part or (segment == WILDCARD and part != "")
        for segment, part in zip(wanted, given, strict=True)
    )


def subscribed(event_types: Iterable[str], event_type: str) -> bool:
    """Whether a webhook with these ``event_types`` receives ``event_type`` (none = all)."""
    patterns = list(event_types)
    return not patterns or any(matches(pattern, event_type) for pattern in patterns)
