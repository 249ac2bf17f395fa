"""``RetryConfig``: how one endpoint's failed deliveries are retried (API.md, "RetryConfig").

The bounds are public API: a value outside them is a ``422`` whose ``loc`` names the field, also for
the rules that compare two fields (``max_delay`` and ``max_retry_duration`` against ``base_delay``).
``None`` stored for an endpoint means ``DEFAULT_RETRY_CONFIG``.

Fields left out take their defaults, except that ``max_delay`` and ``max_retry_duration`` left out
are raised to ``base_delay`` when their default would be below it: ``{"base_delay": 8000}`` means
"every retry 8000 s apart", never a config that cannot be read back. Every config this model
accepts therefore satisfies every rule, whichever fields were given.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

MAX_RETRY_DURATION_LIMIT_S: Final = 7 * 24 * 3600.0
"""The longest retry window a config may ask for (7 days), in seconds."""


class JitterMode(StrEnum):
    """How a computed delay ``d`` is spread to keep many retries from landing at once."""

    NONE = "none"
    """Exactly ``d``."""
    FULL = "full"
    """Uniform in ``[0, d]``."""
    EQUAL = "equal"
    """Uniform in ``[d/2, d]``."""
    PROPORTIONAL = "proportional"
    """Uniform in ``[d, d * (1 + jitter_ratio)]``, never above ``max_delay``."""


StatusCode = Annotated[int, Field(ge=400, le=599)]


class RetryConfig(BaseModel):
    """An endpoint's retry policy; immutable, validated on the way in."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_retries: int = Field(
        10,
        ge=0,
        le=10,
        description="Retries after the first attempt (0-10). 0 means one attempt only.",
    )
    base_delay: float = Field(
        120.0,
        ge=1,
        le=MAX_RETRY_DURATION_LIMIT_S,
        description="Seconds before the first retry, before jitter (1-604800). When max_delay "
        "or max_retry_duration is left out and its default is below base_delay, it is raised "
        "to base_delay.",
    )
    max_delay: float = Field(
        7200.0,
        ge=1,
        description="Cap in seconds on any single delay, jitter and Retry-After included "
        "(at least base_delay).",
    )
    multiplier: float = Field(
        2.0,
        ge=1,
        le=10,
        description="Growth factor: retry n waits base_delay * multiplier^(n-1) (1-10).",
    )
    jitter: JitterMode = Field(
        JitterMode.PROPORTIONAL,
        description="How a delay d is randomised: none = d; full = [0, d]; equal = [d/2, d]; "
        "proportional = [d, d * (1 + jitter_ratio)], capped at max_delay.",
    )
    jitter_ratio: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Spread of the proportional jitter (0-1); ignored by the other modes.",
    )
    max_retry_duration: float = Field(
        36000.0,
        ge=1,
        le=MAX_RETRY_DURATION_LIMIT_S,
        description="Window in seconds, counted from the first attempt, in which every retry "
        "happens (at least base_delay, at most 604800 = 7 days). A retry that would land "
        "later is moved to the window's end; none comes after it.",
    )
    respect_retry_after: bool = Field(
        True,
        strict=True,  # JSON true/false only: 0, 1 or "yes" are a 422, not a silent guess
        description="Honour a Retry-After header (seconds or HTTP-date) on a retryable answer "
        "when it asks for longer than the computed delay; still capped by max_delay and the "
        "window.",
    )
    disable_on_status: tuple[StatusCode, ...] = Field(
        (404, 410),
        description="Statuses (400-599) that disable the endpoint at once and stop retrying: "
        "404 as not_found, any other as gone. Deduplicated and sorted.",
    )

    @model_validator(mode="after")
    def _resolve_omitted_bounds(self) -> RetryConfig:
        """Raise an omitted ``max_delay`` / ``max_retry_duration`` to ``base_delay`` when its
        default is below it; given values were checked by ``_not_below_base_delay``."""
        for name in ("max_delay", "max_retry_duration"):
            if name not in self.model_fields_set and getattr(self, name) < self.base_delay:
                object.__setattr__(self, name, self.base_delay)  # frozen: only while validating
        return self

    @field_validator("max_delay", "max_retry_duration")
    @classmethod
    def _not_below_base_delay(cls, value: float, info: ValidationInfo) -> float:
        base_delay = info.data.get("base_delay")
        if base_delay is not None and value < base_delay:
            raise ValueError(f"must be at least base_delay ({base_delay:g})")
        return value

    @field_validator("disable_on_status")
    @classmethod
    def _sorted_unique(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted(set(value)))


DEFAULT_RETRY_CONFIG: Final = RetryConfig()
"""The policy of every endpoint that has no ``retry_config`` of its own."""
