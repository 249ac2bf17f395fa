"""What the worker and the sweeper loops share: waiting for the first of two things, and running
passes until stopped, where a failed pass is reported and paused after."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

from structlog.stdlib import BoundLogger

from hookline.clock import Clock
from hookline.service.health import LoopHealth

ERROR_BACKOFF_MAX_S: Final = 30.0
"""Longest pause after a failed pass (a database or queue outage), before the next one."""


async def first_of(*aws: object) -> None:
    """Wait until the first of these awaitables finishes; cancel the others."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]  # type: ignore[call-overload]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def report_failed_pass(
    *,
    log: BoundLogger,
    event: str,
    loops: LoopHealth,
    loop: str,
    error: Exception,
    failures: int,
    base_pause_s: float,
) -> float:
    """Mark ``loop`` failing, log ``error`` with its traceback; the pause before the next pass
    (``base_pause_s`` doubled per consecutive failure, at most ``ERROR_BACKOFF_MAX_S``)."""
    pause_s: float = max(base_pause_s, min(base_pause_s * 2.0**failures, ERROR_BACKOFF_MAX_S))
    loops.failing(loop, error)
    log.error(
        event,
        error=f"{type(error).__name__}: {error}",
        failures=failures,
        retry_in_s=pause_s,
        exc_info=True,
    )
    return pause_s


async def run_passes(
    step: Callable[[], Awaitable[object]],
    *,
    stop: asyncio.Event,
    clock: Clock,
    log: BoundLogger,
    event: str,
    loops: LoopHealth,
    loop: str,
    pause_s: float,
    pause_after_success: bool,
) -> None:
    """Run ``step`` until ``stop`` is set. Any exception from it is reported
    (``report_failed_pass``) and followed by a pause that grows with consecutive failures; a
    pass that succeeds marks ``loop`` running again and, with ``pause_after_success``, is
    followed by ``pause_s`` (a step that waits by itself, like the worker's poll, needs none)."""
    failures = 0
    while not stop.is_set():
        pause = pause_s if pause_after_success else 0.0
        try:
            await step()
            failures = 0
            loops.running(loop)
        except Exception as exc:
            failures += 1
            pause = report_failed_pass(
                log=log,
                event=event,
                loops=loops,
                loop=loop,
                error=exc,
                failures=failures,
                base_pause_s=pause_s,
            )
        if pause > 0:
            await first_of(stop.wait(), clock.sleep(pause))


async def run_every(
    step: Callable[[], Awaitable[object]],
    *,
    interval_s: float,
    stop: asyncio.Event,
    clock: Clock,
    log: BoundLogger,
    event: str,
    loops: LoopHealth,
    loop: str,
) -> None:
    """A periodic loop (the sweeper, the lifecycle loop): ``step`` every ``interval_s`` until
    ``stop`` is set, ``loop`` reported starting, then running or failing (``run_passes``: a
    failed pass is logged with its traceback and the next waits longer), and stopped at the
    end however it ends."""
    loops.starting(loop)
    try:
        await run_passes(
            step,
            stop=stop,
            clock=clock,
            log=log,
            event=event,
            loops=loops,
            loop=loop,
            pause_s=interval_s,
            pause_after_success=True,
        )
    finally:
        loops.stopped(loop)
