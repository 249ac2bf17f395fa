"""Readiness: can this process reach the database and the queue, and are its loops running?

Each check is bounded in time, so a hung server makes ``/readyz`` answer "unavailable" instead of
hanging the load balancer's probe. ``LoopHealth`` is where the worker and the sweeper say whether
they are running or backing off after a failure; a process whose loop is not running is not
ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from hookline.errors import Unavailable
from hookline.queue.base import DelayedQueue
from hookline.storage.db import ping as ping_database

CHECK_TIMEOUT_S: Final = 3.0
"""Longest wait for one check; a probe usually times out after 5 s."""


class LoopState(StrEnum):
    """Where one long-running loop stands."""

    STARTING = "starting"
    RUNNING = "running"
    FAILING = "failing"
    """Its last pass failed; it is backing off before the next one."""
    STOPPED = "stopped"


@dataclass(slots=True)
class LoopHealth:
    """The long-running loops of this process (worker, sweeper) and their state.

    Loops report here; ``/readyz`` reads it. Only registered loops count, so ``hookline api``
    (no loops) is ready when the database and the queue answer.
    """

    _states: dict[str, LoopState] = field(default_factory=dict)
    _errors: dict[str, str] = field(default_factory=dict)

    def starting(self, name: str) -> None:
        self._states[name] = LoopState.STARTING
        self._errors.pop(name, None)

    def running(self, name: str) -> None:
        if self._states.get(name) is not LoopState.RUNNING:
            self._states[name] = LoopState.RUNNING
            self._errors.pop(name, None)

    def failing(self, name: str, error: BaseException) -> None:
        self._states[name] = LoopState.FAILING
        self._errors[name] = f"{type(error).__name__}: {error}"[:300]

    def stopped(self, name: str) -> None:
        self._states[name] = LoopState.STOPPED

    @property
    def states(self) -> Mapping[str, LoopState]:
        return dict(self._states)

    def problems(self) -> tuple[str, ...]:
        """One line per loop that is not running (starting counts as running)."""
        return tuple(
            f"{name}: {state.value}" + (f" ({self._errors[name]})" if name in self._errors else "")
            for name, state in self._states.items()
            if state in {LoopState.FAILING, LoopState.STOPPED}
        )


@dataclass(frozen=True, slots=True)
class Readiness:
    """The outcome of the checks; ``problems`` names what failed."""

    database_ok: bool
    queue_ok: bool
    problems: tuple[str, ...]
    loops: Mapping[str, LoopState] = field(default_factory=dict)
    loops_ok: bool = True

    @property
    def ready(self) -> bool:
        return self.database_ok and self.queue_ok and self.loops_ok


async def _passes(check: Awaitable[None], *, timeout_s: float) -> str | None:
    try:
        async with asyncio.timeout(timeout_s):
            await check
    except Unavailable as exc:
        return str(exc)
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    return None


async def check_readiness(
    *,
    engine: AsyncEngine,
    queue: DelayedQueue,
    loops: LoopHealth | None = None,
    timeout_s: float = CHECK_TIMEOUT_S,
) -> Readiness:
    """Ping the database (``SELECT 1``) and the queue, each within ``timeout_s``; read the
    state of the process's loops."""
    database_problem, queue_problem = await asyncio.gather(
        _passes(ping_database(engine), timeout_s=timeout_s),
        _passes(queue.ping(), timeout_s=timeout_s),
    )
    problems = tuple(
        f"{name}: {problem}"
        for name, problem in (("database", database_problem), ("queue", queue_problem))
        if problem is not None
    )
    loop_problems = loops.problems() if loops is not None else ()
    return Readiness(
        database_ok=database_problem is None,
        queue_ok=queue_problem is None,
        problems=problems + loop_problems,
        loops=loops.states if loops is not None else {},
        loops_ok=not loop_problems,
    )
