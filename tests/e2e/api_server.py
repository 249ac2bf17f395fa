"""``hookline serve`` as a subprocess on a free 127.0.0.1 port, for end-to-end API tests.

    with running_hookline(tmp_path, env={"DATABASE_URL": ...}) as server:
        httpx.get(f"{server.base_url}/webhooks", headers=server.auth)

The process gets a clean environment (no HOOKLINE_/DATABASE_/REDIS_ variables leak in), a data
directory under ``tmp_path`` and a known API token; it is stopped with SIGTERM (then killed if
it does not exit) and its output is kept for failure messages.
"""

from __future__ import annotations

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

HOOKLINE = str(Path(sys.executable).with_name("hookline"))
STARTUP_TIMEOUT_S = 40.0
STOP_TIMEOUT_S = 20.0
API_TOKEN = "e2e-token-0123456789abcdefghij"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class HooklineServer:
    """A running ``hookline serve``: where it listens and how to authenticate."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_TOKEN}"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_until_ready(server: HooklineServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"hookline serve exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling a subprocess's start-up, not waiting on domain time
    raise AssertionError(f"hookline serve not ready in {STARTUP_TIMEOUT_S} s:\n{server.log()}")


@contextmanager
def running_hookline(tmp_path: Path, *, env: Mapping[str, str] = {}) -> Iterator[HooklineServer]:
    """Start ``hookline serve`` with ``env`` on top of a clean environment; stop it after."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HOOKLINE_", "DATABASE_", "REDIS_", "OTEL_"))
    }
    clean.update(
        {
            "HOOKLINE_DATA_DIR": str(tmp_path / "data"),
            "HOOKLINE_API_TOKENS": API_TOKEN,
            "LOG_LEVEL": "INFO",
            **env,
        }
    )
    port = free_port()
    log_path = tmp_path / "hookline.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [HOOKLINE, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=clean,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = HooklineServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
