"""The harness's side of ``bench/receiver.py``: start it, ask it, read what arrived."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench import processes
from bench.common import BenchFailure, child_env

RECEIVER_SCRIPT: Final = Path(__file__).resolve().with_name("receiver.py")
START_TIMEOUT_S: Final = 60.0
READ_LIMIT_BYTES: Final = 256 * 1024 * 1024
"""Longest line read from the receiver: a DUMP of a million requests fits."""
ANSWER_TIMEOUT_S: Final = 120.0


@dataclass(frozen=True, slots=True)
class Arrivals:
    """What one group recorded: ``[webhook_id, monotonic_s, wall_s, status]`` in arrival order."""

    requests: list[list[Any]]
    receiver_peak_rss_kib: int

    def ok(self) -> list[list[Any]]:
        return [r for r in self.requests if 200 <= r[3] < 300]

    def last_ok_monotonic(self) -> float | None:
        ok = self.ok()
        return max(r[1] for r in ok) if ok else None


class ReceiverClient:
    """Talks to the receiver child over its stdin/stdout."""

    def __init__(self, child: processes.Child, port: int) -> None:
        self._child = child
        self.port = port
        self._done: dict[str, asyncio.Event] = {}
        self._answers: asyncio.Queue[str] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._reader = asyncio.create_task(self._read_lines(), name="receiver-reader")

    @property
    def pid(self) -> int:
        return self._child.pid

    def url(self, mode: str, group: str, name: str = "x") -> str:
        """``mode`` is ``ok``, ``flaky`` or ``hang`` (see ``bench/receiver.py``)."""
        return f"http://127.0.0.1:{self.port}/{mode}/{group}/{name}"

    async def _read_lines(self) -> None:
        stdout = self._child.process.stdout
        assert stdout is not None
        while raw := await stdout.readline():
            line = raw.decode().strip()
            if line.startswith("DONE "):
                self._done.setdefault(line[5:], asyncio.Event()).set()
            else:
                await self._answers.put(line)
        await self._answers.put("")  # the receiver exited: wake whoever waits

    async def _send(self, line: str) -> None:
        stdin = self._child.process.stdin
        assert stdin is not None
        stdin.write(line.encode() + b"\n")
        await stdin.drain()

    async def _ask(self, line: str) -> str:
        async with self._lock:
            await self._send(line)
            try:
                answer = await asyncio.wait_for(self._answers.get(), ANSWER_TIMEOUT_S)
            except TimeoutError:
                raise BenchFailure(f"the receiver did not answer {line!r}") from None
        if not answer:
            raise BenchFailure(f"the receiver exited: {self._child.describe()}")
        return answer

    async def expect(self, group: str, count: int) -> asyncio.Event:
        """An event set once ``group`` has ``count`` 2xx answers."""
        event = self._done[group] = asyncio.Event()
        await self._send(f"EXPECT {group} {count}")
        return event

    async def count(self, group: str) -> tuple[int, int]:
        """(2xx answers, all requests) of ``group`` so far."""
        _, _, ok, total = (await self._ask(f"COUNT {group}")).split()
        return int(ok), int(total)

    async def dump(self, group: str) -> Arrivals:
        data = json.loads(await self._ask(f"DUMP {group}"))
        return Arrivals(requests=data["requests"], receiver_peak_rss_kib=int(data["max_rss_kib"]))

    async def forget(self, group: str) -> None:
        await self._send(f"FORGET {group}")

    async def wait_ok(self, group: str, count: int, *, timeout_s: float, what: str) -> None:
        """Return once ``group`` has ``count`` 2xx answers; fail with the count after
        ``timeout_s``."""
        done = await self.expect(group, count)
        try:
            await asyncio.wait_for(done.wait(), timeout_s)
        except TimeoutError:
            ok, total = await self.count(group)
            raise BenchFailure(
                f"{what}: {ok} of {count} answered 2xx ({total} requests) within {timeout_s:g} s"
            ) from None

    async def close(self) -> None:
        stdin = self._child.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._child.process.wait(), 5)
        await processes.stop(self._child, timeout_s=5)
        self._reader.cancel()


@asynccontextmanager
async def running_receiver(
    *, run_dir: Path, lifetime_s: float, hang_s: float
) -> AsyncIterator[ReceiverClient]:
    """Start the receiver child; on the way out close its stdin and make sure it is gone."""
    with (run_dir / "receiver.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(RECEIVER_SCRIPT),
            "--lifetime-s",
            str(lifetime_s),
            "--hang-s",
            str(hang_s),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=child_env(),
            limit=READ_LIMIT_BYTES,
            start_new_session=True,
        )
    child = processes.Child(name="receiver", process=process, log_path=run_dir / "receiver.log")
    processes.LIVE.add(child)
    try:
        assert process.stdout is not None
        try:
            first = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
        except TimeoutError:
            raise BenchFailure("the receiver did not start listening in time") from None
        verb, _, port = first.decode().strip().partition(" ")
        if verb != "PORT":
            raise BenchFailure(f"the receiver said {first[:80]!r}, expected PORT")
        client = ReceiverClient(child, int(port))
        try:
            yield client
        finally:
            await client.close()
    finally:
        await processes.stop(child, timeout_s=5)
