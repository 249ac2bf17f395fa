"""What ``configure_logging`` lets through from libraries."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from hookline.observability.logging import configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # structlog too: left configured for stdlib, a later test's logs would go to the restored
    # root handlers instead of stdout (test_webhook_headers reads them from capsys)
    saved_structlog = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    names = ("alembic.runtime.plugins", "alembic.runtime.migration", "uvicorn.access")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    structlog.configure(**saved_structlog)
    root.handlers[:], root.level = handlers, level
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


def test_library_chatter_is_quiet_at_info_but_migrations_are_reported() -> None:
    configure_logging(level="INFO", json_format=True)
    assert not logging.getLogger("alembic.runtime.plugins").isEnabledFor(logging.INFO)
    assert not logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO)
    assert logging.getLogger("alembic.runtime.migration").isEnabledFor(logging.INFO)


def test_a_stricter_level_applies_to_the_libraries_too() -> None:
    configure_logging(level="ERROR", json_format=False)
    assert not logging.getLogger("alembic.runtime.plugins").isEnabledFor(logging.WARNING)
    assert logging.getLogger("alembic.runtime.plugins").isEnabledFor(logging.ERROR)
