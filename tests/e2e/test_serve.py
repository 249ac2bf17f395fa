"""`hookline serve` as a user runs it: a fresh data directory, no settings, one process."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import httpx
import pytest

from tests.e2e.api_server import free_port
from tests.fixtures.processes import (
    HOOKLINE,
    STARTUP_TIMEOUT_S,
    STOP_TIMEOUT_S,
    child_process,
    hookline_env,
    wait_http_ok,
    wait_until,
)

pytestmark = pytest.mark.e2e

HTTP_TIMEOUT_S = 30.0
"""Each API call of the test (the server is up by then; a loaded machine is still slow)."""


@pytest.mark.timeout(STARTUP_TIMEOUT_S + 2 * HTTP_TIMEOUT_S + 3 * STOP_TIMEOUT_S + 30)
def test_serve_starts_on_a_fresh_directory_and_stops_on_sigterm(tmp_path: Path) -> None:
    # Given an empty working directory and no hookline settings in the environment
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HOOKLINE_", "DATABASE_", "REDIS_"))
    }
    env["LOG_LEVEL"] = "WARNING"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    work_dir = tmp_path / "work"
    work_dir.mkdir()

    # When `hookline serve` starts
    with child_process(
        [HOOKLINE, "serve", "--port", str(port)],
        log_path=tmp_path / "serve.stdout",
        stderr_path=tmp_path / "serve.stderr",
        cwd=work_dir,
        env=hookline_env(env),
        name="hookline serve",
    ) as serve:
        wait_http_ok(f"{base_url}/healthz", child=serve, timeout_s=STARTUP_TIMEOUT_S)

        # Then it answers /healthz, created its SQLite file and a private token file,
        # and the API refuses requests without that token
        data_dir = work_dir / ".hookline"
        assert (data_dir / "hookline.db").exists()
        token_file = data_dir / "api-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32
        assert httpx.get(f"{base_url}/webhooks", timeout=HTTP_TIMEOUT_S).status_code == 401
        authorized = httpx.get(
            f"{base_url}/webhooks",
            headers={"Authorization": f"Bearer {token}"},
            timeout=HTTP_TIMEOUT_S,
        )
        assert authorized.status_code == 200

        # When it gets SIGTERM it exits cleanly
        serve.popen.send_signal(signal.SIGTERM)
        wait_until(
            lambda: None if serve.returncode is not None else "still running",
            timeout_s=STOP_TIMEOUT_S,
            what="hookline serve exiting after SIGTERM",
            context=serve.describe,
        )
        assert serve.returncode == 0, serve.describe()

    # and the token was printed once, on the first start
    assert serve.errors().count(token) == 1, serve.describe()
