"""`hookline` failing to start, as an operator sees it: one line naming the setting or flag at
fault, no password, no traceback, and an exit code that says what failed. A port in use fails
before anything is written."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hookline import cli

pytestmark = pytest.mark.e2e

HOOKLINE = str(Path(sys.executable).with_name("hookline"))
RUN_TIMEOUT_S = 90  # a loaded 2-core machine compiling the whole stack on first start
STARTUP_TIMEOUT_S = 90
PASSWORD = "s3cret-Pa55word"


@pytest.fixture(scope="module")
def pycache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Bytecode for the child processes, shared by this module's tests, never beside sources."""
    return tmp_path_factory.mktemp("pycache")


def hookline_env(tmp_path: Path, pycache_dir: Path, **settings: str) -> dict[str, str]:
    """This environment minus every hookline setting, plus a private data directory."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("HOOKLINE_", "DATABASE_", "REDIS_", "ALLOWED_NETWORKS"))
        and name != "PYTHONDONTWRITEBYTECODE"
    }
    env |= {
        "HOOKLINE_DATA_DIR": str(tmp_path / "data"),
        "LOG_LEVEL": "WARNING",
        "PYTHONPYCACHEPREFIX": str(pycache_dir),
    }
    return env | settings


def run_hookline(
    argv: list[str], *, cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOOKLINE, *argv],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], *, exit_code: int, names: str
) -> str:
    """The process failed with ``exit_code`` and said so in one line naming ``names``."""
    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    [line] = lines
    assert line.startswith("hookline: error: ")
    assert names in line
    assert PASSWORD not in result.stderr + result.stdout
    return line


@pytest.fixture
def occupied_port() -> Iterator[int]:
    """A port this test listens on for as long as it runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("argv", "settings", "exit_code", "names"),
    [
        pytest.param(
            ["serve"], {"DATABASE_URL": "garbage"}, cli.EXIT_USAGE, "DATABASE_URL", id="bad-db-url"
        ),
        pytest.param(
            ["serve"],
            {"DATABASE_URL": f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:1/x"},
            cli.EXIT_DATABASE,
            "DATABASE_URL",
            id="database-unreachable",
        ),
        pytest.param(
            ["migrate"],
            {"DATABASE_URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/x"},
            cli.EXIT_DATABASE,
            "DATABASE_URL",
            id="migrate-database-unreachable",
        ),
        pytest.param(
            ["worker"],
            {"REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:1/0"},
            cli.EXIT_QUEUE,
            "REDIS_URL",
            id="redis-unreachable",
        ),
        pytest.param(
            ["serve"],
            {"REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:1/0"},
            cli.EXIT_QUEUE,
            "REDIS_URL",
            id="serve-redis-unreachable",
        ),
        pytest.param(
            ["worker"],
            {},
            cli.EXIT_DATABASE,
            "DATABASE_URL: the database at sqlite",
            id="worker-on-an-unmigrated-database",
        ),
        pytest.param(
            ["migrate", "--downgrade", "nosuchrev"],
            {},
            cli.EXIT_MIGRATION,
            "--downgrade",
            id="unknown-revision",
        ),
    ],
)
@pytest.mark.timeout(RUN_TIMEOUT_S + 30)
def test_a_failed_start_is_one_line_naming_the_cause(
    argv: list[str],
    settings: dict[str, str],
    exit_code: int,
    names: str,
    tmp_path: Path,
    pycache_dir: Path,
) -> None:
    # Given a setting or flag that cannot work
    env = hookline_env(tmp_path, pycache_dir, **settings)
    if argv[0] == "serve":
        argv = [*argv, "--port", str(free_port())]

    # When hookline starts, it stops with one line and the exit code of that cause
    result = run_hookline(argv, cwd=tmp_path, env=env)
    line = assert_one_line_error(result, exit_code=exit_code, names=names)
    if exit_code == cli.EXIT_DATABASE and "schema" in line:
        assert line.endswith("run `hookline migrate` first")

    # And a failed serve did not hand out an API token first
    assert not (tmp_path / "data" / "api-token").exists()


@pytest.mark.parametrize("command", ["serve", "api"])
@pytest.mark.timeout(RUN_TIMEOUT_S + 30)
def test_a_port_in_use_fails_before_anything_is_written(
    command: str, occupied_port: int, tmp_path: Path, pycache_dir: Path
) -> None:
    # Given a port another socket listens on
    env = hookline_env(tmp_path, pycache_dir, HOOKLINE_API_TOKENS="t" * 32)

    # When hookline is asked to listen there
    result = run_hookline([command, "--port", str(occupied_port)], cwd=tmp_path, env=env)

    # Then it says so in one line naming --port, and migrated and created nothing
    line = assert_one_line_error(result, exit_code=cli.EXIT_PORT, names="--port")
    assert f"127.0.0.1:{occupied_port}" in line
    assert not (tmp_path / "data").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(STARTUP_TIMEOUT_S + 2 * RUN_TIMEOUT_S + 30)
def test_serve_with_allow_loopback_says_so_at_start(tmp_path: Path, pycache_dir: Path) -> None:
    # Given a fresh data directory
    env = hookline_env(tmp_path, pycache_dir, LOG_LEVEL="INFO")
    port = free_port()

    # When `hookline serve --allow-loopback` starts and is stopped
    base_url = f"http://127.0.0.1:{port}"
    argv = ["serve", "--port", str(port), "--allow-loopback"]
    with stopped_cleanly(argv, cwd=tmp_path, env=env, base_url=base_url) as run:
        # Then a webhook may point at this machine (its URL is an IP: nothing is looked up)
        token = (tmp_path / "data" / "api-token").read_text().strip()
        created = httpx.post(
            f"{base_url}/webhooks",
            json={"url": f"http://127.0.0.1:{port}/receiver"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert created.status_code == 201, created.text

    # And its start-up banner said that loopback receivers are allowed
    banner = start_banner(run.stdout)
    assert banner["loopback"] == "loopback receivers allowed (--allow-loopback)"
    assert banner["api"] == base_url


@dataclass
class Run:
    """A process ``stopped_cleanly`` ran: what it wrote to stdout, once it has stopped."""

    stdout: str = ""


@contextmanager
def stopped_cleanly(
    argv: list[str], *, cwd: Path, env: Mapping[str, str], base_url: str
) -> Iterator[Run]:
    """Start ``hookline argv``, wait for ``base_url``/healthz, run the block, then SIGTERM it:
    it must exit 0 (killed and reaped on every way out)."""
    run = Run()
    with subprocess.Popen(
        [HOOKLINE, *argv],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            wait_until_up(base_url, process)
            yield run
            process.send_signal(signal.SIGTERM)
            run.stdout, _ = process.communicate(timeout=RUN_TIMEOUT_S)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=RUN_TIMEOUT_S)
    assert process.returncode == 0


def start_banner(stdout: str) -> dict[str, object]:
    """The ``hookline.start`` line among a process's JSON log lines."""
    [banner] = [
        record
        for record in (json.loads(line) for line in stdout.splitlines() if line.startswith("{"))
        if record.get("event") == "hookline.start"
    ]
    return banner


def wait_until_up(base_url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"hookline exited with {process.returncode}"
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling a subprocess's start-up, not waiting on domain time
    raise AssertionError(f"hookline did not answer within {STARTUP_TIMEOUT_S} s")


@pytest.mark.timeout(2 * RUN_TIMEOUT_S + 30)
def test_a_worker_metrics_port_in_use_fails_naming_metrics_port(
    occupied_port: int, tmp_path: Path, pycache_dir: Path
) -> None:
    # Given a migrated database and a METRICS_PORT another socket listens on
    env = hookline_env(tmp_path, pycache_dir, METRICS_PORT=str(occupied_port))
    assert run_hookline(["migrate"], cwd=tmp_path, env=env).returncode == 0

    # When a worker starts, it stops with one line naming METRICS_PORT and the port's exit code
    result = run_hookline(["worker"], cwd=tmp_path, env=env)
    line = assert_one_line_error(result, exit_code=cli.EXIT_PORT, names="METRICS_PORT")
    assert f"127.0.0.1:{occupied_port}" in line


@pytest.mark.timeout(STARTUP_TIMEOUT_S + 3 * RUN_TIMEOUT_S + 30)
def test_a_worker_serves_its_own_metrics(tmp_path: Path, pycache_dir: Path) -> None:
    # Given a migrated database and a free METRICS_PORT
    port = free_port()
    env = hookline_env(tmp_path, pycache_dir, METRICS_PORT=str(port), LOG_LEVEL="INFO")
    assert run_hookline(["migrate"], cwd=tmp_path, env=env).returncode == 0

    # When `hookline worker` runs
    base_url = f"http://127.0.0.1:{port}"
    with stopped_cleanly(["worker"], cwd=tmp_path, env=env, base_url=base_url) as run:
        # Then Prometheus can scrape it: hookline's metrics, the stored-state gauges too
        scraped = httpx.get(f"{base_url}/metrics", timeout=30)
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain")
        assert "webhook_backlog_due 0.0" in scraped.text
        assert 'webhook_endpoints_disabled{reason="failing"} 0.0' in scraped.text

    # And its start-up banner says where
    assert start_banner(run.stdout)["metrics"] == f"{base_url}/metrics"
