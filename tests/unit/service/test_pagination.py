"""Cursors: opaque, round-trip exactly, and refuse anything this API did not hand out."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookline import ids
from hookline.service.pagination import (
    InvalidCursor,
    Page,
    decode_cursor,
    encode_cursor,
    page_of,
)

ID_BODY = st.text(alphabet="0123456789ABCDEFGHJKMNPQRSTVWXYZ", min_size=26, max_size=26)


@given(body=ID_BODY, prefix=st.sampled_from(sorted(ids.PREFIXES)))
def test_a_cursor_round_trips_and_hides_the_id(body: str, prefix: str) -> None:
    last_id = f"{prefix}_{body}"
    cursor = encode_cursor(last_id)
    assert last_id not in cursor
    assert "=" not in cursor
    assert decode_cursor(cursor, prefix=prefix) == last_id


def test_no_cursor_is_the_first_page() -> None:
    assert decode_cursor(None, prefix="wh") is None


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "garbage!",
        "x" * 129,
        base64.urlsafe_b64encode(b"v2:wh_" + b"0" * 26).decode().rstrip("="),  # other version
        base64.urlsafe_b64encode(b"wh_" + b"0" * 26).decode().rstrip("="),  # no version
        base64.urlsafe_b64encode(b"v1:wh_short").decode().rstrip("="),
        base64.urlsafe_b64encode(b"v1:dlv_" + b"0" * 26).decode().rstrip("="),  # other list
        base64.urlsafe_b64encode(b"v1:wh_" + b"0" * 26).decode(),  # padded spelling
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "é",
    ],
)
def test_a_foreign_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, prefix="wh")
    assert issubclass(InvalidCursor, ValueError)


@given(st.text(max_size=200))
def test_decoding_never_fails_other_than_invalid_cursor(cursor: str) -> None:
    try:
        decoded = decode_cursor(cursor, prefix="wh")
    except InvalidCursor:
        return
    assert decoded is not None
    assert ids.has_prefix(decoded, "wh")
    assert encode_cursor(decoded) == cursor


def test_page_of_uses_the_extra_row_to_know_there_is_more() -> None:
    rows = [f"wh_{str(n) * 26}" for n in range(4)]
    full = page_of(rows, limit=3, id_of=str)
    last = page_of(rows[:3], limit=3, id_of=str)

    assert list(full.items) == rows[:3]
    assert full.next_cursor is not None
    assert decode_cursor(full.next_cursor, prefix="wh") == rows[2]
    assert last == Page(items=rows[:3], next_cursor=None)
    assert page_of([], limit=3, id_of=str) == Page(items=[], next_cursor=None)
