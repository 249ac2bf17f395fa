"""api/openapi.yaml is what the app serves, and documents every route and its errors."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
import yaml

from hookline.api.openapi import openapi_document, render_yaml

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "api" / "openapi.yaml"

# Every row of API.md (method, path).
CONTRACT = {
    ("post", "/webhooks"),
    ("get", "/webhooks"),
    ("get", "/webhooks/{webhook_id}"),
    ("patch", "/webhooks/{webhook_id}"),
    ("delete", "/webhooks/{webhook_id}"),
    ("get", "/webhooks/{webhook_id}/retry-config"),
    ("put", "/webhooks/{webhook_id}/retry-config"),
    ("delete", "/webhooks/{webhook_id}/retry-config"),
    ("get", "/webhooks/{webhook_id}/retry-config/schedule"),
    ("post", "/webhooks/{webhook_id}/disable"),
    ("post", "/webhooks/{webhook_id}/enable"),
    ("post", "/webhooks/{webhook_id}/test"),
    ("post", "/webhooks/{webhook_id}/probe"),
    ("delete", "/webhooks/{webhook_id}/parked"),
    ("get", "/webhooks/{webhook_id}/secret"),
    ("post", "/webhooks/{webhook_id}/secret/rotate"),
    ("get", "/webhooks/{webhook_id}/stats"),
    ("post", "/events"),
    ("get", "/events"),
    ("get", "/events/{event_id}"),
    ("get", "/deliveries"),
    ("get", "/deliveries/{delivery_id}"),
    ("post", "/deliveries/{delivery_id}/retry"),
    ("get", "/dead-letters"),
    ("post", "/dead-letters/replay"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
}
PUBLIC = {"/healthz", "/readyz", "/metrics"}


def _operations() -> dict[tuple[str, str], dict[str, object]]:
    paths = openapi_document()["paths"]
    return {(m, p): op for p, ops in paths.items() for m, op in ops.items()}


def test_committed_file_matches_the_app() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_yaml(openapi_document()), (
        "api/openapi.yaml drifted from the app: run scripts/gen_openapi"
    )


def test_rendering_is_deterministic_and_round_trips() -> None:
    first = render_yaml(openapi_document())
    assert render_yaml(openapi_document()) == first
    assert yaml.safe_load(first) == openapi_document()


def _run_script(script: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(script), run_name="__main__")
    return int(exit_info.value.code or 0)


def test_gen_openapi_writes_and_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A copy of the script in a tree of its own, so the real file is never touched.
    (tmp_path / "scripts").mkdir()
    (tmp_path / "api").mkdir()
    (tmp_path / "src").symlink_to(ROOT / "src")
    script = tmp_path / "scripts" / "gen_openapi"
    script.write_text((ROOT / "scripts" / "gen_openapi").read_text())
    target = tmp_path / "api" / "openapi.yaml"
    target.write_text("openapi: 3.1.0\n")

    assert _run_script(script, monkeypatch, "--check") == 1
    assert "out of date" in capsys.readouterr().out
    assert _run_script(script, monkeypatch) == 0
    assert target.read_text() == COMMITTED.read_text()
    assert _run_script(script, monkeypatch, "--check") == 0


def test_every_contract_row_is_documented_and_nothing_else() -> None:
    assert set(_operations()) == CONTRACT


def test_error_responses_are_documented() -> None:
    for (method, path), operation in _operations().items():
        responses = operation["responses"]
        assert isinstance(responses, dict)
        if path in PUBLIC:
            assert "security" not in operation
            continue
        assert operation["security"] == [{"bearer": []}]
        assert {"401", "422", "503"} <= set(responses), (method, path)
        assert "Retry-After" in responses["503"]["headers"]
        if "{" in path or path == "/dead-letters/replay":
            assert "404" in responses, (method, path)
    operations = _operations()
    assert "409" in operations[("post", "/deliveries/{delivery_id}/retry")]["responses"]  # type: ignore[operator]
    assert {"200", "202", "413"} <= set(operations[("post", "/events")]["responses"])  # type: ignore[arg-type]
    assert "503" in operations[("get", "/readyz")]["responses"]  # type: ignore[operator]


def test_retry_config_schema_carries_the_rules() -> None:
    schema = openapi_document()["components"]["schemas"]["RetryConfig"]
    props = schema["properties"]
    assert schema["additionalProperties"] is False
    assert (props["max_retries"]["minimum"], props["max_retries"]["maximum"]) == (0, 10)
    assert props["max_retries"]["default"] == 10
    assert props["base_delay"]["minimum"] == 1
    assert props["base_delay"]["default"] == 120
    assert props["max_delay"]["default"] == 7200
    assert (props["multiplier"]["minimum"], props["multiplier"]["maximum"]) == (1, 10)
    assert (props["jitter_ratio"]["minimum"], props["jitter_ratio"]["maximum"]) == (0, 1)
    assert props["max_retry_duration"]["maximum"] == 7 * 86400
    assert props["max_retry_duration"]["default"] == 36000
    assert props["respect_retry_after"]["default"] is True
    assert props["disable_on_status"]["items"] == {
        "type": "integer",
        "maximum": 599,
        "minimum": 400,
    }
    jitter = openapi_document()["components"]["schemas"]["JitterMode"]
    assert jitter["enum"] == ["none", "full", "equal", "proportional"]
    assert all(props[name].get("description") for name in props)


def test_links_lead_from_created_ids_to_the_operations_that_take_them() -> None:
    by_id = {op["operationId"]: op for op in _operations().values()}
    found = []
    for (method, path), operation in _operations().items():
        for status, response in operation["responses"].items():  # type: ignore[union-attr]
            for name, link in response.get("links", {}).items():
                target = by_id[link["operationId"]]
                params = {p["name"] for p in target.get("parameters", [])}
                assert set(link["parameters"]) <= params, (method, path, status, name)
                found.append((method, path, link["operationId"]))
    assert ("post", "/webhooks", "get_webhook") in found
    assert ("post", "/webhooks", "set_retry_config") in found
    assert ("post", "/webhooks", "delete_webhook") in found
    assert ("post", "/events", "get_event") in found
    assert ("get", "/events/{event_id}", "get_delivery") in found
    assert ("get", "/deliveries", "retry_delivery") in found
