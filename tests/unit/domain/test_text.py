"""storable_text: whatever a subscriber answers, what we store is NUL-free, valid UTF-8 text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookline.domain.text import REPLACEMENT, storable_text


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        (None, None),
        ("ok", "ok"),
        ("is it? yes", "is it? yes"),
        ("ok\x00\x00", f"ok{REPLACEMENT}{REPLACEMENT}"),
        ("a\ud800b", f"a{REPLACEMENT}b"),
        ("\x00\udfff?", f"{REPLACEMENT}{REPLACEMENT}?"),
    ],
)
def test_nul_and_lone_surrogates_are_replaced(raw: str | None, stored: str | None) -> None:
    assert storable_text(raw) == stored


def test_long_text_is_cut() -> None:
    assert storable_text("x" * 10, max_chars=4) == "xxxx"
    assert storable_text("xx", max_chars=4) == "xx"


@given(st.text())
def test_result_always_encodes_and_has_no_nul(raw: str) -> None:
    stored = storable_text(raw)
    assert stored is not None
    assert "\x00" not in stored
    stored.encode("utf-8")
    assert len(stored) == len(raw)
