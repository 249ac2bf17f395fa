"""Child processes of the harness, and what ``/proc`` says about them (CPU, RSS, sockets).

Every child is started in its own session (so a Ctrl-C at the terminal reaches the harness only,
which then stops them in order) and recorded in ``LIVE``; ``stop`` sends SIGTERM to its PID,
waits, then SIGKILLs the process group that child leads (a Celery pool's children with it).
``kill_leftovers`` is the last resort the entry point calls on every way out: nothing the harness
started outlives it. Signals only ever go to PIDs (and groups) this module started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from bench.common import BenchFailure

CLOCK_TICKS_PER_S: Final = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT_S: Final = 40.0
"""How long a child gets after SIGTERM (a worker finishes in-flight requests) before SIGKILL."""
POLL_S: Final = 0.05


@dataclass(eq=False)
class Child:
    """A process the harness started; its output goes to ``log_path``."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text("utf-8", errors="replace")
        except OSError as exc:
            return f"<{self.log_path}: {exc}>"
        return "\n".join(text.splitlines()[-lines:])

    def describe(self) -> str:
        return (
            f"{self.name} (pid {self.pid}, exit {self.process.returncode}); "
            f"log {self.log_path}, tail:\n{self.tail()}"
        )


LIVE: set[Child] = set()
"""Children started and not yet reaped."""


async def start(
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
) -> Child:
    """Start ``argv`` with stdin closed and output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *[os.fspath(arg) for arg in argv],
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    child = Child(name=name, process=process, log_path=log_path)
    LIVE.add(child)
    return child


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


async def stop(
    child: Child, *, timeout_s: float = STOP_TIMEOUT_S, stop_signal: int = signal.SIGTERM
) -> int | None:
    """``stop_signal`` to the child, wait up to ``timeout_s``, then SIGKILL its group; its
    exit status."""
    try:
        if child.running:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(stop_signal)
            try:
                await asyncio.wait_for(child.process.wait(), timeout_s)
            except TimeoutError:
                _signal_group(child.pid, signal.SIGKILL)
                await asyncio.wait_for(child.process.wait(), timeout_s)
    finally:
        _signal_group(child.pid, signal.SIGKILL)  # what its own children left behind
        if child.process.returncode is not None:
            LIVE.discard(child)
        child.stopped = True
    return child.process.returncode


async def stop_all(children: Sequence[Child]) -> None:
    """Stop these children concurrently; every one is stopped even if another fails."""
    results = await asyncio.gather(*(stop(c) for c in children), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result


def kill_leftovers() -> None:
    """SIGKILL the group of every child still recorded (synchronous: the loop may be gone)."""
    for child in list(LIVE):
        _signal_group(child.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(child.pid, os.WNOHANG)
        LIVE.discard(child)


async def run_to_end(
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    timeout_s: float,
) -> None:
    """Run a command that ends by itself (``hookline migrate``); fail on a non-zero status."""
    child = await start(name, argv, env=env, cwd=cwd, log_path=log_path)
    try:
        await asyncio.wait_for(child.process.wait(), timeout_s)
    except TimeoutError:
        raise BenchFailure(
            f"{name} did not finish in {timeout_s:g} s: {child.describe()}"
        ) from None
    finally:
        await stop(child)
    if child.process.returncode != 0:
        raise BenchFailure(f"{name} failed: {child.describe()}")


async def wait_for(
    condition: Callable[[], Awaitable[bool]],
    *,
    timeout_s: float,
    what: str,
    children: Sequence[Child] = (),
) -> None:
    """Poll ``condition`` until true; fail when the time is up or a child exits."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        for child in children:
            if not child.running:
                raise BenchFailure(f"{what}: {child.name} exited: {child.describe()}")
        if await condition():
            return
        if loop.time() >= deadline:
            detail = "; ".join(f"{c.name}: {c.tail(5)}" for c in children)
            raise BenchFailure(f"{what}: not within {timeout_s:g} s. {detail}")
        await asyncio.sleep(POLL_S)


# /proc ----------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()  # fields from the 3rd (state) on


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process (all its threads); 0 once it is gone."""
    try:
        fields = _stat_fields(pid)
    except (OSError, ValueError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (a Celery pool's children)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in parents.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def tree_cpu_s(pids: Sequence[int]) -> float:
    """CPU seconds of these processes and all their descendants."""
    return sum(cpu_s(p) for pid in pids for p in [pid, *descendants(pid)])


def rss_kib(pid: int, field_name: str = "VmRSS") -> int:
    """``VmRSS`` (or another ``Vm*`` line) of the process in KiB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def connected_ports(pid: int) -> set[int]:
    """Remote TCP ports of the process's established connections (to learn that a worker has
    reached Redis or PostgreSQL, i.e. finished starting)."""
    inodes: set[str] = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    except OSError:
        return set()
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "01" and parts[9] in inodes:
                ports.add(int(parts[2].rsplit(":", 1)[1], 16))
    return ports
