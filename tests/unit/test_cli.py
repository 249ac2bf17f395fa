"""The CLI: the schedule timeline, one-line errors with exit 2, migrate up and down, what it
imports, -h/--version, and --allow-loopback. Start-up failures of real processes are in
tests/e2e/test_startup.py."""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from hookline import cli
from hookline.cli import (
    LOOPBACK_NETWORKS,
    LOOPBACK_NOTE,
    effective_settings,
    format_duration,
    main,
    mask_credentials,
    start_banner,
)
from hookline.settings import Settings

HEAVY = (
    "aiohttp", "aiosqlite", "alembic", "asyncpg", "fastapi", "httpx", "opentelemetry", "orjson",
    "prometheus_client", "pydantic_settings", "redis", "sqlalchemy", "starlette", "structlog",
    "uvicorn",
)  # fmt: skip
"""What the server needs and ``--help``/``schedule`` must not wait for."""


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(argv)
    except SystemExit as exited:
        code = int(exited.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_schedule_with_defaults_and_no_jitter_ends_at_the_window(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(["schedule", "--jitter", "none", "--json"], capsys)
    assert code == 0
    plan = json.loads(out)
    rows = plan["retries"]
    assert [r["earliest_delay_s"] for r in rows] == [
        120, 240, 480, 960, 1920, 3840, 7200, 7200, 7200, 6840,
    ]  # fmt: skip
    assert rows[-1]["earliest_at_s"] == 36000
    assert rows[-1]["cut_by_window"] is True
    assert plan["window_cut_retry"] == 10


def test_schedule_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        ["schedule", "--base-delay", "5", "--max-retries", "3", "--jitter", "none"], capsys
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("max_retries=3 base_delay=5s")
    table = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert [row[:5] for row in table] == [
        ["1", "5s", "5s", "5s", "5s"],
        ["2", "10s", "10s", "15s", "15s"],
        ["3", "20s", "20s", "35s", "35s"],
    ]
    assert "window does not cut" in out


def test_default_jitter_shows_the_two_to_three_minute_first_retry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(["schedule", "--json"], capsys)
    first = json.loads(out)["retries"][0]
    assert (code, first["earliest_delay_s"], first["latest_delay_s"]) == (0, 120, 180)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["schedule", "--max-retries", "11"], "--max-retries"),
        (["schedule", "--base-delay", "0.5"], "--base-delay"),
        (["schedule", "--max-delay", "10"], "--max-delay"),
        (["schedule", "--max-retry-duration", "700000"], "--max-retry-duration"),
        (["schedule", "--jitter", "wild"], "--jitter"),
        (["schedule", "--max-retries", "many"], "--max-retries"),
        (["schedule", "--bogus"], "--bogus"),
        (["launch"], "launch"),
    ],
)
def test_bad_flags_print_one_line_and_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("hookline: error: ")
    assert needle in err
    assert "Traceback" not in err


def test_the_window_cut_row_is_ordered(capsys: pytest.CaptureFixture[str]) -> None:
    # The default schedule's last retry is cut by the window: its shortest wait (51m, after
    # the latest path's retry 9) comes before its longest (1h54m, after the earliest path's).
    code, out, _ = run(["schedule"], capsys)
    assert code == 0
    last = next(line.split() for line in out.splitlines() if line.strip().startswith("10 "))
    assert last[:5] == ["10", "51m00s", "1h54m00s", "10h00m00s", "10h00m00s"]


def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOOKLINE_QUEUE_BACKEND", "redis")
    monkeypatch.delenv("REDIS_URL", raising=False)
    code, _, err = run(["migrate"], capsys)
    assert code == 2
    assert err.startswith("hookline: error: ")
    assert "REDIS_URL" in err
    assert "Traceback" not in err


def test_migrate_goes_up_and_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOOKLINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)

    code, out, _ = run(["migrate"], capsys)
    assert code == 0
    assert "database at revision 0005" in out
    assert (tmp_path / "data" / "hookline.db").exists()

    code, out, _ = run(["migrate", "--downgrade", "base"], capsys)
    assert (code, "database at revision base" in out) == (0, True)


def test_no_arguments_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([], capsys)
    assert code == 0
    assert "serve" in out
    assert "schedule" in out


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (5, "5s"),
        (2.5, "2.5s"),
        (120, "2m00s"),
        (7530, "2h05m30s"),
        (36000, "10h00m00s"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def _loaded_after(code: str) -> list[str]:
    """The heavy top-level packages loaded once ``code`` ran in a fresh interpreter."""
    probe = (
        "import sys\n"
        f"{code}\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=90, check=True
    )
    loaded: list[str] = eval(result.stdout.strip().splitlines()[-1])  # a printed list of str
    return loaded


def test_importing_the_cli_loads_no_server_stack() -> None:
    assert _loaded_after("import hookline.cli") == []


@pytest.mark.parametrize(
    "argv",
    [
        ["schedule", "--json"],
        ["schedule", "--jitter", "full", "--max-retry-duration", "3000"],
        ["--help"],
        ["schedule", "--bogus"],
        ["--version"],
    ],
)
def test_help_schedule_and_bad_flags_load_no_server_stack(argv: list[str]) -> None:
    run_main = (
        "import contextlib, io\n"
        "from hookline.cli import main\n"
        "out, err = io.StringIO(), io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit:\n"
        "        pass"
    )
    assert _loaded_after(run_main) == []


@pytest.mark.parametrize("argv", [["-h"], ["schedule", "-h"], ["serve", "-h"], ["migrate", "-h"]])
def test_dash_h_is_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(argv, capsys)
    assert (code, err) == (0, "")
    assert out.startswith("Usage: hookline")
    assert "-h, --help" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["--version"], capsys)
    assert (code, out, err) == (0, f"hookline {version('hookline')}\n", "")


def _settings(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg]


def test_allow_loopback_adds_the_loopback_networks() -> None:
    given = _settings(ALLOWED_NETWORKS="10.1.0.0/16,::1/128")
    amended = effective_settings(given, allow_loopback=True)
    assert amended.allowed_networks == [
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("127.0.0.0/8"),
    ]
    assert set(LOOPBACK_NETWORKS) <= set(amended.allowed_networks)
    assert given.allowed_networks == [
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("::1/128"),
    ]  # the settings read from the environment are left as they were
    assert effective_settings(given, allow_loopback=False) is given


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("command", ["serve", "api", "worker"])
def test_allow_loopback_reaches_the_runtime_settings(
    command: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a command line with --allow-loopback (and no server actually started)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOOKLINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HOOKLINE_API_TOKENS", "t" * 32)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    for name in ("DATABASE_URL", "REDIS_URL", "ALLOWED_NETWORKS", "HOOKLINE_QUEUE_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    ran: list[tuple[Settings, bool]] = []

    async def fake_run(settings: Settings, **options: object) -> int:
        ran.append((settings, bool(options["allow_loopback"])))
        return 0

    monkeypatch.setattr(cli, "_run", fake_run)
    argv = [command, "--allow-loopback"]
    if command != "worker":
        argv += ["--port", str(_free_port())]

    # When it runs, the runtime is opened with the loopback networks allowed
    code, _, err = run(argv, capsys)
    assert (code, err) == (0, "")
    [(settings, allow_loopback)] = ran
    assert allow_loopback is True
    assert set(LOOPBACK_NETWORKS) <= set(settings.allowed_networks)

    # And without the flag, they are not
    ran.clear()
    code, _, _ = run(argv[:1] + argv[2:], capsys)
    [(settings, allow_loopback)] = ran
    assert (code, allow_loopback, settings.allowed_networks) == (0, False, [])


def test_the_start_banner_says_loopback_is_allowed() -> None:
    settings = _settings()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        banner = start_banner(
            settings, listener=listener, work=True, database="sqlite", allow_loopback=True
        )
    assert banner == {
        "api": f"http://127.0.0.1:{port}",
        "worker": True,
        "queue": "sql",
        "database": "sqlite",
        "loopback": LOOPBACK_NOTE,
    }
    assert LOOPBACK_NOTE == "loopback receivers allowed (--allow-loopback)"
    plain = start_banner(
        settings, listener=None, work=True, database="sqlite", allow_loopback=False
    )
    assert "loopback" not in plain
    assert plain["api"] is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/hookline", "postgresql://app:***@db:5432/hookline"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://user:p%40ss@cache/0", "rediss://user:***@cache/0"),
        ("postgresql://app@db/hookline", "postgresql://app@db/hookline"),
        ("sqlite+aiosqlite:////var/lib/hookline.db", "sqlite+aiosqlite:////var/lib/hookline.db"),
        ("garbage", "garbage"),
        ("postgresql://app:s3cret@db:notaport/x", "postgresql://app:***@db:notaport/x"),
        ("postgresql://app:s3cret@[db/x", "postgresql:…"),  # not parseable: scheme only
    ],
)
def test_mask_credentials(url: str, shown: str) -> None:
    assert mask_credentials(url) == shown
