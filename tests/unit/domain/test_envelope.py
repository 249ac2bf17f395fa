"""The body a subscriber receives: the Standard Webhooks envelope built around the stored payload
bytes, or the payload alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookline.domain.envelope import PayloadFormat, message_body, rfc3339

CREATED_AT = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
# Key order that sorting would change, a float spelling that re-serialising could change, and
# non-ASCII text stored as raw UTF-8 (not \u escapes).
PAYLOAD = '{"z":1,"a":{"y":[1.50,true,null],"b":"Zoë ✓ 😀"},"m":"\\u00e9"}'


def _envelope(
    payload: str = PAYLOAD,
    *,
    payload_format: str = "envelope",
    event_type: str = "order.paid",
    created_at: datetime = CREATED_AT,
) -> bytes:
    return message_body(
        payload_format=payload_format,
        event_type=event_type,
        created_at=created_at,
        payload=payload,
    )


def test_the_envelope_has_type_timestamp_and_data() -> None:
    body = json.loads(_envelope())

    assert list(body) == ["type", "timestamp", "data"]
    assert body["type"] == "order.paid"
    assert body["timestamp"] == "2025-03-04T05:06:07Z"
    assert body["data"] == json.loads(PAYLOAD)


def test_the_stored_payload_bytes_are_embedded_unchanged() -> None:
    body = _envelope()

    assert body == (
        b'{"type":"order.paid","timestamp":"2025-03-04T05:06:07Z","data":' + PAYLOAD.encode() + b"}"
    )
    assert list(json.loads(body)["data"]) == ["z", "a", "m"]


def test_the_same_event_gives_the_same_bytes_every_time() -> None:
    assert _envelope() == _envelope()
    assert message_body(
        payload_format="raw", event_type="x", created_at=CREATED_AT, payload=PAYLOAD
    ) == message_body(payload_format="raw", event_type="y", created_at=CREATED_AT, payload=PAYLOAD)


def test_the_timestamp_is_utc_with_a_z_and_keeps_microseconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    created_at = datetime(2025, 3, 4, 7, 6, 7, 120, tzinfo=plus_two)

    body = json.loads(_envelope(created_at=created_at))

    assert body["timestamp"] == "2025-03-04T05:06:07.000120Z"


def test_the_timestamp_is_spelled_as_the_api_spells_timestamps() -> None:
    from pydantic import TypeAdapter

    for when in (CREATED_AT, CREATED_AT.replace(microsecond=987654)):
        assert json.dumps(rfc3339(when)).encode() == TypeAdapter(datetime).dump_json(when)


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _envelope(created_at=datetime(2025, 3, 4))


def test_the_event_type_is_a_json_string() -> None:
    body = json.loads(_envelope(event_type='odd"type\\ü'))

    assert body["type"] == 'odd"type\\ü'


def test_raw_sends_the_stored_payload_alone() -> None:
    body = message_body(
        payload_format=PayloadFormat.RAW,
        event_type="order.paid",
        created_at=CREATED_AT,
        payload=PAYLOAD,
    )

    assert body == PAYLOAD.encode()


def test_the_enum_and_its_stored_value_give_the_same_body() -> None:
    assert _envelope(payload_format=PayloadFormat.ENVELOPE) == _envelope(payload_format="envelope")


@pytest.mark.parametrize("stored", ["", "Envelope", "json", "raw "])
def test_an_unknown_format_is_refused(stored: str) -> None:
    with pytest.raises(ValueError, match="unknown payload format"):
        _envelope(payload_format=stored)


_text = st.text(st.characters(exclude_categories=["Cs"]))  # what UTF-8 (and JSON text) can hold
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda children: st.lists(children) | st.dictionaries(_text, children),
    max_leaves=20,
)


@given(value=_json)
def test_any_stored_payload_comes_back_as_data(value: object) -> None:
    payload = orjson.dumps(value).decode()

    body = _envelope(payload)

    assert body.endswith(b',"data":' + payload.encode() + b"}")
    assert orjson.loads(body)["data"] == orjson.loads(payload)
