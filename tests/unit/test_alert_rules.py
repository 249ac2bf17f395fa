"""config/prometheus/alerts.yml: valid rules (``promtool check rules``), each one unit-tested
(``promtool test rules config/prometheus/tests/*.yml``) with a case that fires it and one that
does not, and each carrying what an operator needs (summary, description, severity, ``for``).

The same expressions are evaluated against a real Prometheus scraping a real hookline in
tests/e2e/test_prometheus_dashboard.py. promtool missing is a failure (``scripts/services``
installs Debian's ``prometheus``), never a skip.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.processes import run_bounded
from tests.unit.test_dashboard import TOOL_TIMEOUT_S, metric_names, promtool

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "config" / "prometheus"
ALERTS = RULES_DIR / "alerts.yml"
TESTS_DIR = RULES_DIR / "tests"
SEVERITIES = {"info", "warning", "critical"}

EXPECTED_ALERTS = {
    "HookLineHighRetryRate",
    "HookLineDeadLettersGrowing",
    "HookLineEndpointDisabled",
    "HookLineBacklogAgeHigh",
    "HookLineNoWorkerProgress",
    "HookLineDeliverySuccessRatioLow",
}
"""Issue 11 item 4: high retry rate, dead letters growing, endpoint disabled, backlog age,
no worker progress while work is due, delivery success ratio under 99 %."""


def alert_rules(path: Path = ALERTS) -> list[dict[str, Any]]:
    """Every alerting rule of a rules file (recording rules left out)."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def _test_files(directory: Path = TESTS_DIR) -> list[Path]:
    files = sorted(directory.glob("*.yml"))
    assert files, f"no promtool test files in {directory}"
    return files


def _cases(directory: Path = TESTS_DIR) -> list[dict[str, Any]]:
    """Every ``alert_rule_test`` entry of every test file."""
    cases = []
    for path in _test_files(directory):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for test in document["tests"]:
            cases.extend(test.get("alert_rule_test", []))
    return cases


def _promtool(*args: str | Path, cwd: Path = ROOT) -> tuple[int, str]:
    result = run_bounded([promtool(), *args], timeout_s=TOOL_TIMEOUT_S, cwd=cwd)
    return result.returncode, result.stdout + result.stderr


def test_promtool_accepts_the_rules() -> None:
    code, output = _promtool("check", "rules", ALERTS)
    assert code == 0, output
    assert f"SUCCESS: {len(alert_rules())} rules found" in output


def test_the_rules_pass_their_unit_tests() -> None:
    code, output = _promtool("test", "rules", *_test_files())
    assert code == 0, output


def test_the_rules_are_the_ones_the_issue_asks_for() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(set(names)) == len(names), names
    assert set(names) == EXPECTED_ALERTS


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in _cases():
        (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fired == set(), "alerts no unit test fires"
    assert names - quiet == set(), "alerts no unit test shows staying quiet"


def test_every_alert_tells_the_operator_what_and_how_bad() -> None:
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"].strip(), name
        assert len(rule["annotations"]["description"].strip()) > 40, name
        assert "for" in rule, f"{name}: say how long the condition must hold (for: 0m is fine)"
        names = metric_names(rule["expr"])
        assert names, name
        assert all(metric.startswith("webhook_") for metric in names), (name, names)


def _copy_rules(tmp_path: Path) -> Path:
    """config/prometheus/{alerts.yml,tests/} in ``tmp_path``, to break on purpose."""
    copy = tmp_path / "prometheus"
    copy.mkdir()
    shutil.copy(ALERTS, copy / ALERTS.name)
    shutil.copytree(TESTS_DIR, copy / TESTS_DIR.name)
    return copy


def _break(rules: Path, *, alert: str, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in ``alert``'s expression (the file is rewritten by PyYAML)."""
    document = yaml.safe_load(rules.read_text(encoding="utf-8"))
    (rule,) = [r for g in document["groups"] for r in g["rules"] if r.get("alert") == alert]
    assert old in rule["expr"], (alert, old, rule["expr"])
    rule["expr"] = rule["expr"].replace(old, new, 1)
    rules.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


def test_promtool_rejects_a_broken_expression(tmp_path: Path) -> None:
    copy = _copy_rules(tmp_path)
    _break(copy / "alerts.yml", alert="HookLineBacklogAgeHigh", old=") > 300", new=" > 300")
    code, output = _promtool("check", "rules", copy / "alerts.yml", cwd=copy)
    assert code != 0
    assert "HookLineBacklogAgeHigh" in output


@pytest.mark.parametrize(
    ("alert", "old", "new"),
    [
        # A threshold that no longer matches what the tests say should fire.
        ("HookLineBacklogAgeHigh", "> 300", "> 3000"),
        # Dropping the `or vector(0)`: nothing delivered at all would never alert.
        (
            "HookLineDeliverySuccessRatioLow",
            '(sum(increase(webhook_delivery_total{outcome="delivered"}[1h])) or vector(0))\n    /',
            'sum(increase(webhook_delivery_total{outcome="delivered"}[1h]))\n    /',
        ),
        # `and ... == 0` instead of `unless`: a backlog with no worker at all would be silent.
        (
            "HookLineNoWorkerProgress",
            "unless\nsum(increase(webhook_delivery_total[10m])) > 0",
            "and\nsum(increase(webhook_delivery_total[10m])) == 0",
        ),
        # Counting manual disables too.
        ("HookLineEndpointDisabled", '{reason!="manual"}', ""),
    ],
)
def test_the_unit_tests_catch_a_wrong_rule(tmp_path: Path, alert: str, old: str, new: str) -> None:
    copy = _copy_rules(tmp_path)
    _break(copy / "alerts.yml", alert=alert, old=old, new=new)
    code, output = _promtool("check", "rules", copy / "alerts.yml", cwd=copy)
    assert code == 0, output  # still valid PromQL: only the unit tests can tell
    code, output = _promtool("test", "rules", *_test_files(copy / "tests"), cwd=copy)
    assert code != 0, f"promtool test rules passed with {alert} changed to use {new!r}"
    assert alert in output
