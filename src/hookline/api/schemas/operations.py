"""Shapes of the operations endpoints: liveness and readiness."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

CheckStatus = Literal["ok", "unavailable"]


class HealthOut(BaseModel):
    """The process is up (it says nothing about the database or the queue)."""

    status: Literal["ok"] = "ok"


LoopStatus = Literal["starting", "running", "failing", "stopped"]


class ReadinessOut(BaseModel):
    """Whether the database and the queue answer and this process's loops run; ``status`` is
    ok only when all do."""

    status: CheckStatus
    database: CheckStatus
    queue: CheckStatus
    loops: dict[str, LoopStatus] = Field(
        default_factory=dict,
        description="The worker and sweeper loops of this process (none for `hookline api`): "
        "failing = its last pass failed and it is backing off; stopped = it is not running.",
    )
    detail: str | None = Field(None, description="What failed, when something did.")
