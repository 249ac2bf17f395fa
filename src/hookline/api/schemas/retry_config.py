"""Retry-config shapes: the config a request gives, the effective config with its source, and
the planned timeline."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from hookline.api.schemas.common import OutputModel, json_scalars_of
from hookline.domain.retry_config import RetryConfig
from hookline.service.endpoints import EffectiveRetryConfig

RetryConfigIn = Annotated[RetryConfig, BeforeValidator(json_scalars_of(RetryConfig))]
"""``RetryConfig`` as a request gives it: each number, integer and boolean must be one in JSON
too (pydantic alone would read ``true`` as 1 and ``"5"`` as 5, which the schema forbids)."""


class RetryConfigOut(RetryConfig):
    """The effective retry config, and whether it is the webhook's own or the defaults."""

    source: Literal["default", "custom", "invalid"] = Field(
        description="custom: set for this webhook; default: the server's defaults; invalid: "
        "the stored config cannot be read (old data, a hand edit): the fields show the "
        "defaults, deliveries to this webhook become dead letters naming the problem until a "
        "PUT or DELETE replaces it."
    )
    problem: str | None = Field(
        None, description="Why the stored config cannot be read; null unless source is invalid."
    )

    @classmethod
    def from_effective(cls, effective: EffectiveRetryConfig) -> RetryConfigOut:
        return cls(
            **effective.config.model_dump(), source=effective.source, problem=effective.problem
        )


class ScheduledRetryOut(OutputModel):
    """One planned retry. Times are seconds after the first attempt started."""

    retry_number: int
    earliest_delay_s: float = Field(
        description="The shortest wait after the previous attempt, over every jitter draw."
    )
    latest_delay_s: float | None = Field(
        description="The longest wait after the previous attempt; null once the latest path "
        "has ended (the window may end before this retry)."
    )
    earliest_at_s: float = Field(description="The earliest time this retry can start.")
    latest_at_s: float | None = Field(
        description="The latest time this retry can start; null once the latest path has ended."
    )
    cut_by_window: bool = Field(description="The window (max_retry_duration) shortened it.")


class RetryScheduleOut(OutputModel):
    """The planned retry timeline of a config: earliest and latest delay per retry."""

    config: RetryConfig
    window_s: float
    total_retries: int = Field(description="Retries that happen at most.")
    window_cut_retry: int | None = Field(description="First retry the window shortens.")
    dropped_retries: int = Field(description="Retries of max_retries the window leaves out.")
    retries: list[ScheduledRetryOut]
