"""Shapes of the operations endpoints: liveness and readiness."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

CheckStatus = Literal["ok", "unavailable"]


class HealthOut(BaseModel):
    """The process is up (it says nothing about the database or the queue)."""

    status: Literal["ok"] = "ok"


class ReadinessOut(BaseModel):
    """Whether the database and the queue answer; ``status`` is ok only when both do."""

    status: CheckStatus
    database: CheckStatus
    queue: CheckStatus
    detail: str | None = Field(None, description="What failed, when something did.")
