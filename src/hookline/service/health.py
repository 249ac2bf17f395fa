"""Readiness: can this process reach the database and the queue right now?

Each check is bounded in time, so a hung server makes ``/readyz`` answer "unavailable" instead of
hanging the load balancer's probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from hookline.errors import Unavailable
from hookline.queue.base import DelayedQueue
from hookline.storage.db import ping as ping_database

CHECK_TIMEOUT_S: Final = 3.0
"""Longest wait for one check; a probe usually times out after 5 s."""


@dataclass(frozen=True, slots=True)
class Readiness:
    """The outcome of both checks; ``problems`` names what failed."""

    database_ok: bool
    queue_ok: bool
    problems: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return self.database_ok and self.queue_ok


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
    *, engine: AsyncEngine, queue: DelayedQueue, timeout_s: float = CHECK_TIMEOUT_S
) -> Readiness:
    """Ping the database (``SELECT 1``) and the queue, each within ``timeout_s``."""
    database_problem, queue_problem = await asyncio.gather(
        _passes(ping_database(engine), timeout_s=timeout_s),
        _passes(queue.ping(), timeout_s=timeout_s),
    )
    problems = tuple(
        f"{name}: {problem}"
        for name, problem in (("database", database_problem), ("queue", queue_problem))
        if problem is not None
    )
    return Readiness(
        database_ok=database_problem is None, queue_ok=queue_problem is None, problems=problems
    )
