"""Root fixtures: real PostgreSQL and Redis, a ManualClock. A missing service fails the run.

Under pytest-xdist (``scripts/test`` runs ``-n auto --dist loadgroup``) every worker is its own
session: its own PostgreSQL database (``tests.fixtures.services``), Redis key prefixes per test,
its own temporary directories, Prometheus registries and environment. The tests that start
hookline, PostgreSQL or Redis *processes* (markers ``e2e``, ``chaos`` and ``processes``) are put
in one xdist group, so they run one after another on one worker while the other workers run the
in-process tests: two of them at once on a 2-core machine would starve each other's child
processes.
"""

from __future__ import annotations

import pytest
import structlog

from hookline.clock import ManualClock

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.db"]

# structlog's default console renderer formats an exception with rich (syntax-highlighted
# frames, locals): ~1 s of CPU per logged traceback, which made tests that log failures on
# purpose take a minute on a loaded machine. Tests read logs through capture_logs, not this.
structlog.configure(
    processors=[
        *structlog.get_config()["processors"][:-1],
        structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        ),
    ]
)

PROCESS_MARKERS = ("e2e", "chaos", "processes")
"""Markers of tests that start processes; they share the xdist group ``PROCESS_GROUP``."""
PROCESS_GROUP = "processes"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (it runs in this same hook)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is None and any(
            item.get_closest_marker(name) for name in PROCESS_MARKERS
        ):
            item.add_marker(pytest.mark.xdist_group(PROCESS_GROUP))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
