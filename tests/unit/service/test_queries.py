"""The event list's cursor: ``(created_at, id)`` of the last row, opaque, one spelling, and
``InvalidCursor`` for anything this API did not hand out (like every other list's cursor)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookline.service.pagination import MAX_CURSOR_CHARS, InvalidCursor, encode_cursor
from hookline.service.queries import decode_event_cursor, encode_event_cursor

ID_BODY = st.text(alphabet="0123456789ABCDEFGHJKMNPQRSTVWXYZ", min_size=26, max_size=26)
EVENT_ID = "evt_" + "0" * 26
# Any instant a datetime can hold, to the microsecond as both databases keep it.
instants = st.datetimes(timezones=st.just(UTC))


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@given(created_at=instants, body=ID_BODY)
def test_a_cursor_round_trips_and_hides_what_it_holds(created_at: datetime, body: str) -> None:
    event_id = f"evt_{body}"
    cursor = encode_event_cursor(created_at, event_id)
    assert event_id not in cursor
    assert "=" not in cursor
    assert len(cursor) <= MAX_CURSOR_CHARS
    assert decode_event_cursor(cursor) == (created_at, event_id)


def test_the_instant_is_kept_whatever_offset_it_was_written_with() -> None:
    utc = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    elsewhere = utc.astimezone(datetime.now().astimezone().tzinfo)
    assert decode_event_cursor(encode_event_cursor(elsewhere, EVENT_ID)) == (utc, EVENT_ID)


def test_no_cursor_is_the_first_page() -> None:
    assert decode_event_cursor(None) is None


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "garbage!",
        "x" * (MAX_CURSOR_CHARS + 1),
        "é",
        encode_cursor(EVENT_ID),  # an id cursor (another list's kind) without the time
        encode_cursor("dlv_" + "0" * 26),
        _raw(f"v2:{EVENT_ID}:0"),  # other version
        _raw(f"{EVENT_ID}:0"),  # no version
        _raw(f"v1:dlv_{'0' * 26}:0"),  # other list's id
        _raw("v1:evt_short:0"),
        _raw(f"v1:{EVENT_ID}:"),
        _raw(f"v1:{EVENT_ID}:x"),
        _raw(f"v1:{EVENT_ID}:1.5"),
        _raw(f"v1:{EVENT_ID}:+1"),
        _raw(f"v1:{EVENT_ID}:01"),  # a second spelling of 1
        _raw(f"v1:{EVENT_ID}:-0"),
        _raw(f"v1:{EVENT_ID}:٣"),  # a digit, but not an ASCII one
        _raw(f"v1:{EVENT_ID}:0:0"),
        _raw(f"v1:{EVENT_ID}:{10**20}"),  # beyond any datetime
        _raw(f"v1:{EVENT_ID}:{-(10**20)}"),
        base64.urlsafe_b64encode(f"v1:{EVENT_ID}:0".encode()).decode() + "=",  # padded
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_foreign_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_event_cursor(cursor)


@given(st.text(max_size=200))
def test_decoding_never_fails_other_than_invalid_cursor(cursor: str) -> None:
    try:
        decoded = decode_event_cursor(cursor)
    except InvalidCursor:
        return
    assert decoded is not None
    assert encode_event_cursor(*decoded) == cursor


def test_instants_before_the_epoch_round_trip_too() -> None:
    early = datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert decode_event_cursor(encode_event_cursor(early, EVENT_ID)) == (early, EVENT_ID)
    epoch = early + timedelta(microseconds=1)
    assert decode_event_cursor(encode_event_cursor(epoch, EVENT_ID)) == (epoch, EVENT_ID)
