"""Settings: defaults, parsing, cross-field rules, and .env.example kept in step."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from hookline.settings import QueueBackend, Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _example_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def _example_names() -> list[str]:
    text = (ROOT / ".env.example").read_text()
    return re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE)


def _aliases() -> set[str]:
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        assert alias is not None
        names.update(str(choice) for choice in alias.choices)  # type: ignore[union-attr]
    return names


def test_env_example_lists_every_setting_with_a_comment() -> None:
    assert set(_example_names()) == _aliases()
    lines = (ROOT / ".env.example").read_text().splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            assert lines[index - 1].startswith("# "), f"{line} has no comment above it"


def test_env_example_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match and match.group(2):
            monkeypatch.setenv(match.group(1), match.group(2))
    assert Settings() == Settings.model_construct(**Settings().model_dump())


def test_defaults() -> None:
    settings = Settings()
    assert settings.retry_worker_poll_interval_s == 1.0
    assert settings.failure_disable_window_s == 86400
    assert settings.max_payload_bytes == 256 * 1024
    assert settings.effective_queue_backend is QueueBackend.SQL
    assert settings.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.effective_database_url.endswith(".hookline/hookline.db")
    assert settings.api_tokens == []


def test_lists_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_API_TOKENS", " token-aaaaaaaaaaaaaaaa , token-bbbbbbbbbbbbbbbb,")
    monkeypatch.setenv("ALLOWED_NETWORKS", "127.0.0.1/32, ::1, 10.1.2.3/8")
    settings = Settings()
    assert settings.api_tokens == ["token-aaaaaaaaaaaaaaaa", "token-bbbbbbbbbbbbbbbb"]
    assert settings.allowed_networks == [
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("10.0.0.0/8"),
    ]


def test_redis_url_selects_the_redis_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert Settings().effective_queue_backend is QueueBackend.REDIS
    monkeypatch.setenv("HOOKLINE_QUEUE_BACKEND", "sql")
    assert Settings().effective_queue_backend is QueueBackend.SQL


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HOOKLINE_QUEUE_BACKEND": "redis"}, "REDIS_URL"),
        ({"RETRY_WORKER_POLL_INTERVAL": "0"}, "RETRY_WORKER_POLL_INTERVAL"),
        ({"RETRY_QUEUE_MAX_SIZE": "many"}, "RETRY_QUEUE_MAX_SIZE"),
        ({"ALLOWED_NETWORKS": "10.0.0.0/33"}, "10.0.0.0/33"),
        ({"HOOKLINE_API_TOKENS": "short"}, "16 characters"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"DELIVERY_CONNECT_TIMEOUT": "20"}, "DELIVERY_CONNECT_TIMEOUT"),
        ({"FAILURE_DISABLE_WINDOW": "-1"}, "FAILURE_DISABLE_WINDOW"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises((ValidationError, ValueError), match=message):
        Settings()
