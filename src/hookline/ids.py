"""Prefixed, time-ordered ids: ``wh_`` endpoint, ``evt_`` event, ``dlv_`` delivery, ``att_``
attempt, and the ``webhook-id`` of messages that are no event (``alt_`` alert, ``msg_`` test
send or probe).

The body is a ULID-like 26-character Crockford base32 string: 48 bits of milliseconds then 80
random bits, so ids created later sort later (useful for newest-first lists and index locality).
Within one process ids are strictly increasing, also inside one millisecond: the random part of a
later id in the same millisecond is the previous one plus one (monotonic ULIDs).
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime
from typing import Final

ENDPOINT: Final = "wh"
EVENT: Final = "evt"
DELIVERY: Final = "dlv"
ATTEMPT: Final = "att"
ALERT: Final = "alt"
"""An alert message's ``webhook-id`` (``service.alert_webhook``): never taken for an event."""
MESSAGE: Final = "msg"
"""The ``webhook-id`` of a message that is no event: a test send or a probe
(``service.endpoint_sends``), so a receiver never mistakes one for an event it deduplicates."""

PREFIXES: Final = frozenset({ENDPOINT, EVENT, DELIVERY, ATTEMPT, ALERT, MESSAGE})
_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BODY_LENGTH: Final = 26
_RANDOM_BITS: Final = 80


class _Monotonic:
    """The last (millisecond, random) pair handed out, so the next id sorts after it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ms = -1
        self._random = 0

    def next(self, ms: int) -> int:
        with self._lock:
            if ms > self._ms:
                self._ms, self._random = ms, secrets.randbits(_RANDOM_BITS)
            else:  # same millisecond (or a clock step back): count on from the last id
                self._random += 1
                if self._random >> _RANDOM_BITS:
                    self._ms, self._random = self._ms + 1, 0
            return (self._ms << _RANDOM_BITS) | self._random


_monotonic = _Monotonic()


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))


def new_id(prefix: str, *, now_ms: int | None = None, at: datetime | None = None) -> str:
    """A new id with ``prefix`` (one of ``PREFIXES``), ordered by ``at`` (or ``now_ms``, or the
    wall clock)."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    if at is not None:
        now_ms = int(at.timestamp() * 1000)
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return f"{prefix}_{_encode(_monotonic.next(ms), _BODY_LENGTH)}"


def has_prefix(value: str, prefix: str) -> bool:
    """Whether ``value`` looks like an id of kind ``prefix``."""
    head, sep, body = value.partition("_")
    return (
        sep == "_"
        and head == prefix
        and len(body) == _BODY_LENGTH
        and all(c in _ALPHABET for c in body)
    )
