"""Root fixtures: real PostgreSQL and Redis, a ManualClock. A missing service fails the run."""

from __future__ import annotations

import pytest

from hookline.clock import ManualClock

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.db"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
