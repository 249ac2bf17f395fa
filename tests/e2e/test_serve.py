"""`hookline serve` as a user runs it: a fresh data directory, no settings, one process."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

HOOKLINE = str(Path(sys.executable).with_name("hookline"))
STARTUP_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(base_url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"hookline serve exited with {process.returncode}"
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling a subprocess's start-up, not waiting on domain time
    raise AssertionError(f"hookline serve did not answer within {STARTUP_TIMEOUT_S} s")


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

    # When `hookline serve` starts
    process = subprocess.Popen(
        [HOOKLINE, "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_up(base_url, process)

        # Then it answers /healthz, created its SQLite file and a private token file,
        # and the API refuses requests without that token
        data_dir = tmp_path / ".hookline"
        assert (data_dir / "hookline.db").exists()
        token_file = data_dir / "api-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert len(token) >= 32
        assert httpx.get(f"{base_url}/webhooks", timeout=5).status_code == 401
        authorized = httpx.get(
            f"{base_url}/webhooks", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert authorized.status_code == 200

        # When it gets SIGTERM it exits cleanly
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    _, err = process.communicate(timeout=10)
    # and the token was printed once, on the first start
    assert err.count(token) == 1
