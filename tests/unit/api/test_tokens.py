"""The embedded token: created once with mode 0600, then read back; auth compares all tokens."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hookline.api.auth import token_matches
from hookline.api.tokens import ensure_api_token, token_path
from hookline.errors import ConfigurationError


def test_first_call_creates_a_private_token_and_later_calls_read_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    token, created = ensure_api_token(data_dir)
    again, created_again = ensure_api_token(data_dir)

    assert created is True
    assert created_again is False
    assert again == token
    assert len(token) >= 40
    path = token_path(data_dir)
    assert path == data_dir / "api-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == token + "\n"


def test_tokens_differ_between_data_dirs(tmp_path: Path) -> None:
    assert ensure_api_token(tmp_path / "a")[0] != ensure_api_token(tmp_path / "b")[0]


@pytest.mark.parametrize("content", ["", "short\n", "has space inside token\n"])
def test_an_unusable_token_file_is_a_configuration_error(tmp_path: Path, content: str) -> None:
    token_path(tmp_path).write_text(content)
    with pytest.raises(ConfigurationError, match="api-token"):
        ensure_api_token(tmp_path)


def test_an_existing_token_is_read_stripped(tmp_path: Path) -> None:
    token_path(tmp_path).write_text("  my-own-token-0123456789  \n")
    assert ensure_api_token(tmp_path) == ("my-own-token-0123456789", False)


@pytest.mark.parametrize(
    ("presented", "expected"),
    [
        ("first-token-0123456789", True),
        ("second-token-0123456789", True),
        ("first-token-012345678", False),
        ("first-token-01234567890", False),
        ("", False),
        ("ünïcode-\udcff", False),
    ],
)
def test_token_matches_any_configured_token(presented: str, expected: bool) -> None:
    tokens = ("first-token-0123456789", "second-token-0123456789")
    assert token_matches(presented, tokens) is expected


def test_no_configured_token_matches_nothing() -> None:
    assert token_matches("anything", ()) is False
