"""The planned retry timeline of a ``RetryConfig`` (``hookline schedule``, ``GET …/schedule``).

Two paths are walked retry by retry: *earliest*, every delay at the low end of its jitter, and
*latest*, every delay at the high end. Both are fitted to the window by the engine's own
``is_exhausted`` and ``fit_to_window``, exactly as ``next_retry_delay`` does without a
``Retry-After``, so the plan and the real retries cannot disagree. Times are seconds after the
start of the first attempt, attempts themselves taking no time.

Each row gives bounds over every jitter draw: the earliest and latest time the retry can start
(the two paths), and the shortest and longest wait before it. The waits are *not* the two paths'
own delays: where the window cuts, the latest path, having less of the window left, gets the
shorter wait (the default schedule's last retry waits 51m on the latest path, 1h54m on the
earliest). So the shortest wait is the low end fitted to what the latest path leaves of the
window, the longest the high end fitted to what the earliest path leaves; both are waits the
engine really grants.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from hookline.domain.backoff import ExponentialBackoffEngine
from hookline.domain.retry_config import RetryConfig


@dataclass(frozen=True, slots=True)
class ScheduledRetry:
    """One planned retry; ``latest_*`` is ``None`` once the latest path has used up its window.

    ``earliest_delay_s <= latest_delay_s`` and ``earliest_at_s <= latest_at_s`` always hold.
    """

    retry_number: int
    earliest_delay_s: float
    """The shortest wait after the previous attempt (0 once the latest path has ended: a
    previous retry just before the window's end leaves almost nothing to wait)."""
    latest_delay_s: float | None
    """The longest wait after the previous attempt."""
    earliest_at_s: float
    latest_at_s: float | None
    cut_by_window: bool
    """The window shortened this retry's delay on one of the paths."""

    def to_dict(self) -> dict[str, Any]:
        """This row as JSON-ready values."""
        return {
            "retry_number": self.retry_number,
            "earliest_delay_s": self.earliest_delay_s,
            "latest_delay_s": self.latest_delay_s,
            "earliest_at_s": self.earliest_at_s,
            "latest_at_s": self.latest_at_s,
            "cut_by_window": self.cut_by_window,
        }


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Every retry a config can make, and where its window cuts the timeline."""

    config: RetryConfig
    retries: tuple[ScheduledRetry, ...]
    window_s: float
    total_retries: int
    """Retries that happen at most (``len(retries)``)."""
    window_cut_retry: int | None
    """The first retry the window shortens, or ``None`` when the window never cuts."""
    dropped_retries: int
    """Retries of ``max_retries`` that never happen because the window ended before them."""

    def to_dict(self) -> dict[str, Any]:
        """The schedule as JSON-ready values (the config in its API shape)."""
        return {
            "config": self.config.model_dump(mode="json"),
            "window_s": self.window_s,
            "total_retries": self.total_retries,
            "window_cut_retry": self.window_cut_retry,
            "dropped_retries": self.dropped_retries,
            "retries": [row.to_dict() for row in self.retries],
        }


@dataclass(slots=True)
class _Path:
    """One walk through the retries (all delays at one end of their jitter)."""

    at_s: float = 0.0
    ended: bool = False

    def advance(
        self, engine: ExponentialBackoffEngine, *, retry_number: int, delay_s: float
    ) -> tuple[float, bool] | None:
        """Fitted delay of the next retry and whether the window cut it; None once over."""
        if self.ended or engine.is_exhausted(retry_number=retry_number, elapsed_s=self.at_s):
            self.ended = True
            return None
        fitted_s = engine.fit_to_window(delay_s, elapsed_s=self.at_s)
        cut = fitted_s < delay_s
        # A cut retry lands at the window's end; say so exactly rather than an ulp short of it.
        self.at_s = engine.config.max_retry_duration if cut else self.at_s + fitted_s
        return fitted_s, cut


def plan_schedule(config: RetryConfig) -> RetrySchedule:
    """The earliest/latest timeline of ``config``'s retries."""
    # Only the jitter *bounds* are used; the rng is never drawn from.
    engine = ExponentialBackoffEngine(config, random.Random(0))
    earliest, latest = _Path(), _Path()
    rows: list[ScheduledRetry] = []
    for retry_number in range(1, config.max_retries + 1):
        low_s, high_s = engine.jitter_bounds(engine.calculate_delay(retry_number))
        earliest_from_s, latest_from_s = earliest.at_s, latest.at_s
        # Smaller delays reach the window's end later, so the earliest path is the longer one.
        early = earliest.advance(engine, retry_number=retry_number, delay_s=low_s)
        if early is None:
            break
        late = latest.advance(engine, retry_number=retry_number, delay_s=high_s)
        shortest_s, longest_s = 0.0, None
        if late is not None:
            # The later the previous attempt, the less of the window is left to wait in.
            shortest_s = engine.fit_to_window(low_s, elapsed_s=latest_from_s)
            longest_s = engine.fit_to_window(high_s, elapsed_s=earliest_from_s)
        rows.append(
            ScheduledRetry(
                retry_number=retry_number,
                earliest_delay_s=shortest_s,
                latest_delay_s=longest_s,
                earliest_at_s=earliest.at_s,
                latest_at_s=None if late is None else latest.at_s,
                cut_by_window=early[1] or (late is not None and late[1]),
            )
        )
    window_cut_retry = next((row.retry_number for row in rows if row.cut_by_window), None)
    return RetrySchedule(
        config=config,
        retries=tuple(rows),
        window_s=config.max_retry_duration,
        total_retries=len(rows),
        window_cut_retry=window_cut_retry,
        dropped_retries=config.max_retries - len(rows),
    )
