"""``LifecycleLoop``: runs ``LifecycleService`` rounds (probes, slow-start releases, parked
bounds) every ``LIFECYCLE_INTERVAL`` in every worker process, beside the worker and the sweeper.

Several processes may run it at once: probes are claimed in the database, and each release runs
under its endpoint's row lock, so the bucket's rate holds across processes.
"""

from __future__ import annotations

import asyncio
from typing import Final

from hookline.observability.logging import get_logger
from hookline.runtime import Runtime
from hookline.service.health import LoopHealth
from hookline.service.lifecycle import LifecycleReport, LifecycleService
from hookline.worker.loops import run_every

log = get_logger("hookline.lifecycle")

LOOP_NAME: Final = "lifecycle"
"""How this loop is named in ``LoopHealth`` (and so in ``/readyz``)."""


class LifecycleLoop:
    """A ``LifecycleService`` round every ``interval_s`` until stopped; a failed round is logged
    with its traceback and the next waits longer (``loops.run_every``)."""

    def __init__(self, *, service: LifecycleService, runtime: Runtime, interval_s: float) -> None:
        self._service = service
        self._clock = runtime.clock
        self._loops: LoopHealth = runtime.loops
        self._interval_s = interval_s

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> LifecycleLoop:
        return cls(
            service=runtime.lifecycle,
            runtime=runtime,
            interval_s=runtime.settings.lifecycle_interval_s,
        )

    async def run_once(self) -> LifecycleReport:
        return await self._service.run_once()

    async def run(self, stop: asyncio.Event) -> None:
        await run_every(
            self.run_once,
            interval_s=self._interval_s,
            stop=stop,
            clock=self._clock,
            log=log,
            event="lifecycle.round_failed",
            loops=self._loops,
            loop=LOOP_NAME,
        )
