"""The benchmarks' webhook receiver: a child process on 127.0.0.1 that answers by URL path.

Run by ``bench/run`` (``bench.receivers.running_receiver``), never by hand. It listens on an
ephemeral port and answers ``/<mode>/<group>/<rest>``:

    /ok/<group>/...      200 at once
    /flaky/<group>/...   503 the first time a webhook-id is seen in the group, 200 after that
    /hang/<group>/...    holds the request for --hang-s seconds (longer than any delivery
                         timeout the bench sets), then 200; the sender gives up first

Each request is recorded per group as ``[webhook-id, arrival monotonic s, arrival wall s, status]``
(``time.monotonic()`` is CLOCK_MONOTONIC, comparable across processes; the wall time is compared
with due times). A hanging request is recorded on arrival with status 0. Lines on stdin/stdout:

    child  → parent   PORT <port>                 once, when listening
    parent → child    EXPECT <group> <n>          say DONE when the group has n 2xx answers
    child  → parent   DONE <group>                (at once if it already has them)
    parent → child    COUNT <group>
    child  → parent   COUNT <group> <2xx> <all>
    parent → child    DUMP <group>
    child  → parent   {"group": ..., "requests": [...], "max_rss_kib": ...}
    parent → child    FORGET <group>              drop the group's records (no answer)

It exits when its stdin closes (the parent is done or died) or after ``--lifetime-s``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Final

from aiohttp import web

MAX_LIFETIME_S: Final = 4 * 3600.0
"""Upper bound of ``--lifetime-s``: no receiver outlives a benchmark by much."""


class Receiver:
    """Records requests per group and answers them by mode."""

    def __init__(self, *, hang_s: float) -> None:
        self.hang_s = hang_s
        self.requests: defaultdict[str, list[tuple[str, float, float, int]]] = defaultdict(list)
        self.ok: defaultdict[str, int] = defaultdict(int)
        self.seen: defaultdict[str, set[str]] = defaultdict(set)
        self.expected: dict[str, int] = {}

    async def handle(self, request: web.BaseRequest) -> web.Response:
        await request.read()  # consume the body, as a real receiver would
        arrived_mono, arrived_wall = time.monotonic(), time.time()
        _, mode, group, *_ = (request.path + "///").split("/", 3)
        webhook_id = request.headers.get("webhook-id", "")
        records = self.requests[group]
        if mode == "hang":
            records.append((webhook_id, arrived_mono, arrived_wall, 0))
            await asyncio.sleep(self.hang_s)
            return web.Response(status=200)
        status = 200
        if mode == "flaky":
            seen = self.seen[group]
            if webhook_id not in seen:
                seen.add(webhook_id)
                status = 503
        elif mode != "ok":
            status = 404
        records.append((webhook_id, arrived_mono, arrived_wall, status))
        if status == 200:
            self.ok[group] += 1
            if self.expected.get(group) == self.ok[group]:
                del self.expected[group]
                _say(f"DONE {group}")
        return web.Response(status=status)

    def command(self, verb: str, argument: str) -> None:
        if verb == "EXPECT":
            group, count = argument.split()
            if self.ok[group] >= int(count):
                _say(f"DONE {group}")
            else:
                self.expected[group] = int(count)
        elif verb == "COUNT":
            _say(f"COUNT {argument} {self.ok[argument]} {len(self.requests[argument])}")
        elif verb == "DUMP":
            dump = {
                "group": argument,
                "requests": self.requests[argument],
                "max_rss_kib": _peak_rss_kib(),
            }
            _say(json.dumps(dump))
        elif verb == "FORGET":
            for table in (self.requests, self.ok, self.seen, self.expected):
                table.pop(argument, None)
        elif verb:
            print(f"receiver: unknown command {verb!r}", file=sys.stderr)


def _peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _serve(lifetime_s: float, hang_s: float) -> None:
    receiver = Receiver(hang_s=hang_s)
    runner = web.ServerRunner(web.Server(receiver.handle), shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
        await site.start()
        _say(f"PORT {site.port}")
        loop = asyncio.get_running_loop()
        commands = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
        async with asyncio.timeout(lifetime_s):
            while raw := await commands.readline():  # b"" is end of input: the parent is done
                verb, _, argument = raw.decode().strip().partition(" ")
                receiver.command(verb, argument)
    except TimeoutError:
        print(f"receiver: stopping after its {lifetime_s:g} s lifetime", file=sys.stderr)
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lifetime-s", type=float, default=3600.0)
    parser.add_argument("--hang-s", type=float, default=30.0)
    args = parser.parse_args()
    if not 0 < args.lifetime_s <= MAX_LIFETIME_S:
        parser.error(f"--lifetime-s must be in (0, {MAX_LIFETIME_S:g}]")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(float(args.lifetime_s), float(args.hang_s)))


if __name__ == "__main__":
    main()
