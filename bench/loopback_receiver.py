"""A fast webhook receiver for the benchmarks: 200 to every request, in its own process.

Run by ``bench/throughput.py`` as a child process, so receiving does not take CPU from the event
loop being measured. It listens on an ephemeral port of 127.0.0.1, records the ``webhook-id`` header
and arrival time (``time.monotonic()``, the system-wide CLOCK_MONOTONIC, comparable with the
parent's) of every request, and talks to its parent in lines:

    child  → parent   PORT <port>          once, when listening
    parent → child    EXPECT <n>           forget what arrived so far; report when n have arrived
    child  → parent   DONE <n>             the n-th request of this round arrived
    parent → child    DUMP                 ask for what arrived in this round
    child  → parent   {"requests": [[webhook_id, arrival_monotonic_s], ...], "max_rss_kib": ...}

It exits when its stdin closes (the parent is done or died) or after ``--lifetime-s``, whichever
comes first, so it can never outlive a benchmark for long.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
from pathlib import Path
from typing import Final

from aiohttp import web

MAX_LIFETIME_S: Final = 3600.0
"""Upper bound of ``--lifetime-s``: no receiver runs longer than an hour."""


class LoopbackReceiver:
    """Counts requests per round and answers 200 with an empty body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, float]] = []
        self.expected: int | None = None

    async def handle(self, request: web.BaseRequest) -> web.Response:
        await request.read()  # consume the body, as a real receiver would
        self.requests.append((request.headers.get("webhook-id", ""), time.monotonic()))
        if self.expected is not None and len(self.requests) == self.expected:
            _say(f"DONE {self.expected}")
        return web.Response(status=200)

    def expect(self, count: int) -> None:
        self.requests = []
        self.expected = count
        if count == 0:
            _say("DONE 0")

    def dump(self) -> None:
        _say(json.dumps({"requests": self.requests, "max_rss_kib": _peak_rss_kib()}))


def _peak_rss_kib() -> int:
    """This process's peak RSS. ``VmHWM`` first: Linux keeps ``ru_maxrss`` across ``execve``, so
    right after a fork from a large parent it reports the parent's size, not this program's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _serve(lifetime_s: float) -> None:
    receiver = LoopbackReceiver()
    runner = web.ServerRunner(web.Server(receiver.handle), shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        _say(f"PORT {site.port}")

        loop = asyncio.get_running_loop()
        commands = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
        async with asyncio.timeout(lifetime_s):
            while raw := await commands.readline():  # b"" is end of input: the parent is done
                verb, _, argument = raw.decode().strip().partition(" ")
                if verb == "EXPECT":
                    receiver.expect(int(argument))
                elif verb == "DUMP":
                    receiver.dump()
                elif verb:
                    print(f"loopback_receiver: unknown command {verb!r}", file=sys.stderr)
    except TimeoutError:
        print(f"loopback_receiver: stopping after its {lifetime_s} s lifetime", file=sys.stderr)
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lifetime-s", type=float, default=900.0)
    args = parser.parse_args()
    lifetime_s = float(args.lifetime_s)
    if not 0 < lifetime_s <= MAX_LIFETIME_S:
        parser.error(f"--lifetime-s must be in (0, {MAX_LIFETIME_S:g}]")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the whole process group
        asyncio.run(_serve(lifetime_s))


if __name__ == "__main__":
    main()
