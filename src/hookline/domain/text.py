"""Text from outside (a subscriber's answer, an exception message) made safe to store.

PostgreSQL ``text`` cannot hold NUL, and no UTF-8 column can hold a lone surrogate: one such
character in one attempt's response excerpt once rolled back a whole batch's outcomes. Whatever a
subscriber sends, what we store is valid, NUL-free text of bounded length.
"""

from __future__ import annotations

from typing import Final

REPLACEMENT: Final = "\ufffd"
"""What NUL and unencodable characters become (U+FFFD, the Unicode replacement character)."""


def storable_text(value: str | None, *, max_chars: int | None = None) -> str | None:
    """``value`` with NUL and lone surrogates replaced, cut to ``max_chars``; None stays None."""
    if value is None:
        return None
    if max_chars is not None and len(value) > max_chars:
        value = value[:max_chars]
    if "\x00" in value:
        value = value.replace("\x00", REPLACEMENT)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = "".join(REPLACEMENT if "\ud800" <= ch <= "\udfff" else ch for ch in value)
    return value
