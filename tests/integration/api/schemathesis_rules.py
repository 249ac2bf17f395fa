"""The five request rules of the API that its JSON Schema cannot state, applied to the valid
requests schemathesis generates (``map_case`` hook), so "valid data is accepted" can be checked.

Everything else a request must satisfy is in ``api/openapi.yaml``. These five are not, because
JSON Schema has no way to say them (each is also in the field's description):

- ``cursor`` is a ``next_cursor`` this API handed out (opaque; any other string is a 422): a
  generated one is swapped for a real cursor (of an id that may or may not exist, which is
  still a valid place to continue a newest-first list from; the event list's cursor holds a
  created_at too);
- ``GET /events``'s ``until`` is not before its ``since`` (a comparison of two fields): given
  both the other way round, they are swapped;
- a retry config's ``max_delay`` and ``max_retry_duration`` are at least its ``base_delay`` (a
  comparison of two fields): a given one below it is raised to it;
- ``headers`` names are unique regardless of letter case: a later duplicate is dropped;
- an integer in an event ``payload`` fits in 64 bits (JSON Schema's ``integer`` also covers
  ``1e300``, which is a float to every JSON parser and sent as one): a larger one is wrapped
  into the range. (The payload's nesting limit, also unstated, is never reached by generated
  data.)

Only cases generated as valid are touched, and only in ways that keep them valid; invalid
(negative) cases go out as generated, and the server must refuse them.

One check needs to be told one thing about the API (``keep_failure``, a ``filter_failure``
hook): ``DELETE /webhooks/{id}/retry-config`` resets the config to the defaults (API.md: "back
to defaults → 200 effective config"), it does not remove a resource, so the config stays
readable after it. "Deleted resource still available" is dropped for that DELETE alone.

``tests/integration/api/test_schemathesis.py`` registers both hooks on its schemas; for a
schemathesis CLI run, point ``SCHEMATHESIS_HOOKS`` at
``tests.integration.api.schemathesis_cli_hooks``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import schemathesis
from pydantic import TypeAdapter, ValidationError
from schemathesis.core.failures import Failure
from schemathesis.openapi.checks import UseAfterFree

from hookline import ids
from hookline.api.schemas.common import AwareUtcDatetime
from hookline.domain.retry_config import DEFAULT_RETRY_CONFIG, MAX_RETRY_DURATION_LIMIT_S
from hookline.service.pagination import MAX_CURSOR_CHARS, encode_cursor
from hookline.service.queries import encode_event_cursor

CURSOR_PREFIX: Final = {
    "/webhooks": ids.ENDPOINT,
    "/deliveries": ids.DELIVERY,
    "/dead-letters": ids.DELIVERY,
    "/events": ids.EVENT,
}
"""The id kind of each list's cursor."""
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RESET_NOT_DELETE: Final = re.compile(r"^DELETE /webhooks/[^/]+/retry-config$")
"""The one DELETE that resets rather than removes."""
MIN_PAYLOAD_INT: Final = -(2**63)
MAX_PAYLOAD_INT: Final = 2**64 - 1
_TIMESTAMP: Final = TypeAdapter(AwareUtcDatetime)
"""Reads a query timestamp as the API does."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _issued_cursor(generated: str, prefix: str) -> str:
    """A cursor the API could have handed out, derived from ``generated`` (deterministic)."""
    digest = hashlib.sha256(generated.encode("utf-8", "surrogatepass")).digest()
    body = "".join(_CROCKFORD[byte % 32] for byte in digest[:26])
    if prefix == ids.EVENT:  # the event list continues after a (created_at, id)
        created_at = _EPOCH + timedelta(seconds=int.from_bytes(digest[26:30]))
        return encode_event_cursor(created_at, f"{prefix}_{body}")
    return encode_cursor(f"{prefix}_{body}")


def _since_not_after_until(query: dict[str, Any]) -> dict[str, Any]:
    since, until = query.get("since"), query.get("until")
    try:
        if _TIMESTAMP.validate_python(until) < _TIMESTAMP.validate_python(since):
            return {**query, "since": until, "until": since}
    except ValidationError:  # either absent (or not a timestamp): nothing to compare
        pass
    return query


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _raise_bounds_to_base_delay(config: object) -> None:
    if not isinstance(config, dict):
        return
    base = config.get("base_delay", DEFAULT_RETRY_CONFIG.base_delay)
    if not _is_number(base) or not 1 <= base <= MAX_RETRY_DURATION_LIMIT_S:
        return
    for name in ("max_delay", "max_retry_duration"):
        if _is_number(config.get(name)) and config[name] < base:
            config[name] = base


def _drop_case_duplicate_headers(body: object) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("headers"), dict):
        return
    seen: set[str] = set()
    kept: dict[str, Any] = {}
    for name, value in body["headers"].items():
        if name.lower() not in seen:
            seen.add(name.lower())
            kept[name] = value
    body["headers"] = kept


def _integers_in_64_bits(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if MIN_PAYLOAD_INT <= value <= MAX_PAYLOAD_INT else value % 2**63
    if isinstance(value, dict):
        return {name: _integers_in_64_bits(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_integers_in_64_bits(item) for item in value]
    return value


def apply_unstated_rules(context: schemathesis.HookContext, case: schemathesis.Case) -> Any:
    """``map_case``: make a valid generated request follow the unstated rules."""
    if case.meta is not None and not case.meta.generation.mode.is_positive:
        return case
    path, method = case.operation.path, case.method.upper()
    cursor = (case.query or {}).get("cursor")
    if path in CURSOR_PREFIX and isinstance(cursor, str) and len(cursor) <= MAX_CURSOR_CHARS:
        case.query = {**(case.query or {}), "cursor": _issued_cursor(cursor, CURSOR_PREFIX[path])}
    if path == "/events" and method == "GET" and case.query:
        case.query = _since_not_after_until(case.query)
    if path == "/webhooks/{webhook_id}/retry-config" and method == "PUT":
        _raise_bounds_to_base_delay(case.body)
    if path == "/webhooks" and method == "POST" and isinstance(case.body, dict):
        _raise_bounds_to_base_delay(case.body.get("retry_config"))
    if path in {"/webhooks", "/webhooks/{webhook_id}"} and method in {"POST", "PATCH"}:
        _drop_case_duplicate_headers(case.body)
    body = case.body
    if path == "/events" and method == "POST" and isinstance(body, dict) and "payload" in body:
        body["payload"] = _integers_in_64_bits(body["payload"])
    return case


def keep_failure(
    context: schemathesis.HookContext, failure: Failure, case: schemathesis.Case, response: Any
) -> bool:
    """``filter_failure``: every failure counts except a read after the retry-config reset."""
    return not (isinstance(failure, UseAfterFree) and RESET_NOT_DELETE.match(failure.free))
