"""normalize_url: what users write in DATABASE_URL becomes an async driver URL."""

from __future__ import annotations

import pytest

from hookline.errors import ConfigurationError
from hookline.storage.db import normalize_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db:5432/hook", "postgresql+asyncpg://u:p@db:5432/hook"),
        ("postgres://u:p@db/hook", "postgresql+asyncpg://u:p@db/hook"),
        ("postgresql+asyncpg://u@db/hook", "postgresql+asyncpg://u@db/hook"),
        ("postgresql://u@db/hook?sslmode=require", "postgresql+asyncpg://u@db/hook?ssl=require"),
        ("sqlite:////var/lib/hookline/h.db", "sqlite+aiosqlite:////var/lib/hookline/h.db"),
        ("sqlite:///relative/h.db", "sqlite+aiosqlite:///relative/h.db"),
        ("sqlite+aiosqlite:///h.db", "sqlite+aiosqlite:///h.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ],
)
def test_plain_urls_get_the_async_driver(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


def test_the_password_is_kept_for_the_engine() -> None:
    assert normalize_url("postgresql://u:s%40cret@db/h") == "postgresql+asyncpg://u:s%40cret@db/h"


@pytest.mark.parametrize("given", ["", "not a url", "://nothing"])
def test_something_that_is_not_a_url_is_a_configuration_error(given: str) -> None:
    with pytest.raises(ConfigurationError, match="not a database URL"):
        normalize_url(given)
