"""``hookline serve`` as a subprocess on a free 127.0.0.1 port, for end-to-end API tests.

    with running_hookline(tmp_path, env={"DATABASE_URL": ...}) as server:
        httpx.get(f"{server.base_url}/webhooks", headers=server.auth)

The process gets a clean environment (no HOOKLINE_/DATABASE_/REDIS_ variables leak in), a data
directory under ``tmp_path`` and a known API token; it is started and stopped by
``tests.fixtures.processes.child_process`` (SIGTERM, then SIGKILL, reaped, on every way out of the
block) and its output is kept in a file for failure messages. Start-up waits for ``/readyz`` up
to ``STARTUP_TIMEOUT_S`` (minutes: a loaded 2-core machine is slow to import FastAPI and friends).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.processes import (
    HOOKLINE,
    STARTUP_TIMEOUT_S,
    STOP_TIMEOUT_S,
    child_process,
    hookline_env,
    wait_http_ok,
)

API_TOKEN = "e2e-token-0123456789abcdefghij"
__all__ = ["API_TOKEN", "STARTUP_TIMEOUT_S", "HooklineServer", "free_port", "running_hookline"]


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


@contextmanager
def running_hookline(
    tmp_path: Path,
    *,
    env: Mapping[str, str] = {},
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
) -> Iterator[HooklineServer]:
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
    with child_process(
        [HOOKLINE, "serve", "--host", "127.0.0.1", "--port", str(port)],
        log_path=tmp_path / "hookline.log",
        cwd=tmp_path,
        env=hookline_env(clean),
        name="hookline serve",
        stop_timeout_s=STOP_TIMEOUT_S,
    ) as child:
        server = HooklineServer(f"http://127.0.0.1:{port}", child.popen, child.log_path)
        wait_http_ok(f"{server.base_url}/readyz", child=child, timeout_s=startup_timeout_s)
        yield server
