"""The CLI: the schedule timeline, one-line errors with exit 2, migrate up and down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hookline.cli import format_duration, main


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


def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOOKLINE_QUEUE_BACKEND", "redis")
    monkeypatch.delenv("REDIS_URL", raising=False)
    code, _, err = run(["migrate"], capsys)
    assert code == 2
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
    assert "database at revision 0002" in out
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
