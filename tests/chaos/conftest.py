"""Chaos suite options: the quick form by default, the long form with ``--chaos-long``.

``pytest tests/chaos --chaos-long`` (or ``HOOKLINE_CHAOS=long`` in the environment, which also
works when pytest is started without ``tests/chaos`` on its command line, where this conftest is
not loaded early enough to add a command-line option). ``HOOKLINE_CHAOS_SEED`` changes the seed
of every random choice (fault kinds and moments, receiver answers); ``HOOKLINE_CHAOS_REPORT``
names a file that receives the JSON summary of every scenario run in the session.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import LONG, QUICK, ChaosProfile


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-long",
        action="store_true",
        default=False,
        help="run the chaos suite in its long form (>= 10,000 events per scenario, more faults)",
    )


@pytest.fixture(scope="session")
def chaos_profile(request: pytest.FixtureRequest) -> ChaosProfile:
    long_flag = bool(request.config.getoption("chaos_long", default=False))
    long_env = os.environ.get("HOOKLINE_CHAOS", "").strip().lower() == "long"
    profile = LONG if (long_flag or long_env) else QUICK
    seed = os.environ.get("HOOKLINE_CHAOS_SEED")
    return profile.with_seed(int(seed)) if seed else profile


@pytest.fixture(scope="session")
def chaos_reports() -> dict[str, Any]:
    """Summaries by scenario; written to ``HOOKLINE_CHAOS_REPORT`` as each one is added."""
    return {}


@pytest.fixture
def record_chaos_report(chaos_reports: dict[str, Any], tmp_path: Path) -> Any:
    """``record(name, summary)``: keep the summary in tmp_path and in HOOKLINE_CHAOS_REPORT."""

    def record(name: str, summary: dict[str, Any]) -> Path:
        chaos_reports[name] = summary
        local = tmp_path / f"chaos-{name}.json"
        local.write_text(json.dumps(summary, indent=2, sort_keys=True))
        target = os.environ.get("HOOKLINE_CHAOS_REPORT")
        if target:
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(chaos_reports, indent=2, sort_keys=True))
        return local

    return record
