"""Real ``hookline worker`` processes for tests: start them, read their logs, stop them.

A worker is the installed console script (``hookline`` next to ``sys.executable``) run with an
environment built here from scratch, so nothing from the developer's shell or a stray ``.env``
changes its settings (its working directory is the test's temporary directory). Its stdout and
stderr go to a file; ``LOG_FORMAT=json`` makes every structured log event one JSON line, which is
how tests see that a worker started, stopped, or attempted a given delivery.

Every wait is bounded and fails with the worker's log tail; ``stop()`` sends SIGTERM and, when
the process outlives ``kill_after_s``, SIGKILL, always to the one PID this module started.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

HOOKLINE: Final = Path(sys.executable).with_name("hookline")
"""The console script of the venv running the tests."""

POLL_S: Final = 0.05
"""How often bounded waits look again (at a log file, a process, a database)."""

INHERITED_ENV: Final = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH")
"""The only variables a worker inherits (``PYTHONPATH``: it runs the code the tests import);
its settings are given explicitly."""

WARM_IMPORTS: Final = "import hookline.cli, hookline.worker.retry_worker, hookline.worker.sweeper"


def base_env(*, pycache_dir: Path) -> dict[str, str]:
    """A clean environment for a hookline process.

    The test machine may set ``PYTHONDONTWRITEBYTECODE``, which makes every process compile
    hookline and its dependencies from source (seconds per start on a small machine). Bytecode
    is instead written under ``pycache_dir`` (``PYTHONPYCACHEPREFIX``), never beside the sources.
    """
    env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPYCACHEPREFIX"] = str(pycache_dir)
    env["METRICS_PORT"] = "0"  # several workers at once: none binds the default metrics port
    return env


def warm_bytecode(*, pycache_dir: Path, timeout_s: float = 120.0) -> None:
    """Compile what a worker imports into ``pycache_dir`` once, so each start is quick."""
    subprocess.run(
        [sys.executable, "-c", WARM_IMPORTS],
        env=base_env(pycache_dir=pycache_dir),
        check=True,
        timeout=timeout_s,
        capture_output=True,
    )


@dataclass
class WorkerProcess:
    """One ``hookline worker`` this test started."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    started_monotonic_s: float

    @classmethod
    def start(
        cls, name: str, *, settings_env: Mapping[str, str], pycache_dir: Path, work_dir: Path
    ) -> WorkerProcess:
        """Start ``hookline worker`` with ``settings_env`` (and nothing else) as its settings."""
        if not HOOKLINE.exists():
            raise AssertionError(f"the hookline console script is missing at {HOOKLINE}")
        work_dir.mkdir(parents=True, exist_ok=True)
        log_path = work_dir / f"{name}.log"
        env = base_env(pycache_dir=pycache_dir) | dict(settings_env)
        with log_path.open("wb") as log_file:
            popen = subprocess.Popen(
                [str(HOOKLINE), "worker"],
                cwd=work_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        return cls(name=name, popen=popen, log_path=log_path, started_monotonic_s=time.monotonic())

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")

    def log_events(self, event: str | None = None) -> list[dict[str, Any]]:
        """The JSON log events written so far (named ``event``, if given); other lines skipped."""
        found: list[dict[str, Any]] = []
        for line in self.log_text().splitlines():
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line still being written
            if isinstance(record, dict) and (event is None or record.get("event") == event):
                found.append(record)
        return found

    def describe(self, *, tail_lines: int = 30) -> str:
        """PID, exit status and the end of the log: what a failure message needs."""
        tail = "\n".join(self.log_text().splitlines()[-tail_lines:])
        return f"worker {self.name} (pid {self.pid}, exit {self.returncode}); log tail:\n{tail}"

    async def wait_for_log(self, event: str, *, timeout_s: float) -> dict[str, Any]:
        """The first log event named ``event``; fails if it does not come within ``timeout_s``
        or the process exits first."""
        deadline = time.monotonic() + timeout_s
        while True:
            events = self.log_events(event)
            if events:
                return events[0]
            if self.returncode is not None:
                raise AssertionError(f"{event!r} never logged: {self.describe()}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"no {event!r} within {timeout_s} s: {self.describe()}")
            await asyncio.sleep(POLL_S)

    async def wait_exit(self, *, timeout_s: float) -> int:
        """The exit status; fails if the process is still running after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while (code := self.returncode) is None:
            if time.monotonic() >= deadline:
                raise AssertionError(f"still running after {timeout_s} s: {self.describe()}")
            await asyncio.sleep(POLL_S)
        return code

    def send_signal(self, signum: signal.Signals) -> None:
        if self.returncode is None:
            self.popen.send_signal(signum)

    async def stop(self, *, kill_after_s: float = 5.0) -> int:
        """SIGTERM, then SIGKILL if it is still running after ``kill_after_s``; the exit status."""
        if self.returncode is None:
            self.send_signal(signal.SIGTERM)
            try:
                return await self.wait_exit(timeout_s=kill_after_s)
            except AssertionError:
                self.send_signal(signal.SIGKILL)
        # SIGKILL cannot be ignored: this returns at once, and reaps the process.
        return self.popen.wait(timeout=kill_after_s)
