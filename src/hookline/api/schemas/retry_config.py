"""Retry-config shapes: the effective config with its source, and the planned timeline."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hookline.api.schemas.common import OutputModel
from hookline.domain.retry_config import RetryConfig
from hookline.service.endpoints import EffectiveRetryConfig


class RetryConfigOut(RetryConfig):
    """The effective retry config, and whether it is the webhook's own or the defaults."""

    source: Literal["default", "custom"] = Field(
        description="custom: set for this webhook; default: the server's defaults."
    )

    @classmethod
    def from_effective(cls, effective: EffectiveRetryConfig) -> RetryConfigOut:
        return cls(**effective.config.model_dump(), source=effective.source)


class ScheduledRetryOut(OutputModel):
    """One planned retry. Times are seconds after the first attempt started."""

    retry_number: int
    earliest_delay_s: float
    latest_delay_s: float | None = Field(description="Null once the latest path has ended.")
    earliest_at_s: float
    latest_at_s: float | None
    cut_by_window: bool = Field(description="The window (max_retry_duration) shortened it.")


class RetryScheduleOut(OutputModel):
    """The planned retry timeline of a config: earliest and latest delay per retry."""

    config: RetryConfig
    window_s: float
    total_retries: int = Field(description="Retries that happen at most.")
    window_cut_retry: int | None = Field(description="First retry the window shortens.")
    dropped_retries: int = Field(description="Retries of max_retries the window leaves out.")
    retries: list[ScheduledRetryOut]
