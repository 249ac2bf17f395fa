"""Geometry of the retry timeline chart: a ``RetrySchedule`` laid out as an SVG the template draws.

One row per retry, a bar from the earliest to the latest time it can start (seconds after the
first attempt, as ``domain.schedule.plan_schedule`` plans them: the same plan ``hookline
schedule`` prints and ``GET /webhooks/{id}/retry-config/schedule`` answers). A retry whose latest
path has run out of window (it may not happen at all) reaches to the window's end and is drawn
as "maybe". The time axis ends where the last retry can start, so a short schedule in a long
window is not a few pixels at the left; the window's end is marked when it falls on the axis.

Coordinates are in the SVG's ``viewBox`` units, rounded to a tenth; CSS scales the drawing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from hookline.api.console.charts import AxisLabel
from hookline.api.console.rendering import format_duration
from hookline.domain.schedule import RetrySchedule, ScheduledRetry

TIMELINE_WIDTH: Final = 720.0
PLOT_LEFT: Final = 64.0
"""Room for the row labels ("retry 10")."""
PLOT_RIGHT: Final = 700.0
PLOT_TOP: Final = 8.0
ROW_HEIGHT: Final = 26.0
"""Room for a row label that is large on a phone."""
BAR_HEIGHT: Final = 14.0
MIN_BAR_WIDTH: Final = 4.0
"""A retry with no spread (no jitter) is still a visible mark."""
AXIS_GAP: Final = 6.0
"""From the last row to the time axis."""
LABEL_GAP: Final = 20.0
"""From the time axis to its labels' baseline."""
BOTTOM_MARGIN: Final = 8.0


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One retry's bar."""

    retry: ScheduledRetry
    x: float
    width: float
    y: float
    label_y: float
    maybe: bool
    """The latest path ended before this retry: it happens only if earlier attempts came early."""


@dataclass(frozen=True, slots=True)
class RetryTimeline:
    """A schedule and its chart in a ``width`` x ``height`` viewBox (no rows: no chart)."""

    schedule: RetrySchedule
    width: float
    height: float
    plot_left: float
    plot_right: float
    plot_top: float
    axis_y: float
    bar_height: float
    span_s: float
    rows: list[TimelineRow]
    window_x: float | None
    """Where the retry window ends, when that is on the axis."""
    x_labels: list[AxisLabel]

    @property
    def fewest_attempts(self) -> int:
        """Attempts in all when every wait is at its longest (first attempt included)."""
        return 1 + sum(row.latest_at_s is not None for row in self.schedule.retries)

    @property
    def most_attempts(self) -> int:
        return 1 + self.schedule.total_retries

    @property
    def last_retry(self) -> ScheduledRetry | None:
        retries = self.schedule.retries
        return retries[-1] if retries else None


def _r(value: float) -> float:
    return round(value, 1)


def _end_s(retry: ScheduledRetry, window_s: float) -> float:
    return window_s if retry.latest_at_s is None else retry.latest_at_s


def retry_timeline(schedule: RetrySchedule) -> RetryTimeline:
    """The chart of ``schedule``."""
    retries = schedule.retries
    span_s = max((_end_s(retry, schedule.window_s) for retry in retries), default=0.0)
    span_s = max(span_s, 1.0)
    plot_width = PLOT_RIGHT - PLOT_LEFT

    def x_of(seconds: float) -> float:
        return PLOT_LEFT + plot_width * min(seconds, span_s) / span_s

    rows: list[TimelineRow] = []
    for index, retry in enumerate(retries):
        start = x_of(retry.earliest_at_s)
        end = x_of(_end_s(retry, schedule.window_s))
        width = max(end - start, MIN_BAR_WIDTH)
        start = min(start, PLOT_RIGHT - width)
        y = PLOT_TOP + index * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2
        rows.append(
            TimelineRow(
                retry=retry,
                x=_r(start),
                width=_r(width),
                y=_r(y),
                label_y=_r(y + BAR_HEIGHT - 2),
                maybe=retry.latest_at_s is None,
            )
        )
    axis_y = PLOT_TOP + len(retries) * ROW_HEIGHT + AXIS_GAP
    label_y = axis_y + LABEL_GAP
    labels = [
        AxisLabel(x=PLOT_LEFT, y=label_y, text="first attempt"),
        AxisLabel(
            x=_r(PLOT_LEFT + plot_width / 2),
            y=label_y,
            text=format_duration(span_s / 2),
            anchor="middle",
        ),
        AxisLabel(x=PLOT_RIGHT, y=label_y, text=format_duration(span_s), anchor="end"),
    ]
    window_x = _r(x_of(schedule.window_s)) if retries and schedule.window_s <= span_s else None
    return RetryTimeline(
        schedule=schedule,
        width=TIMELINE_WIDTH,
        height=_r(label_y + BOTTOM_MARGIN),
        plot_left=PLOT_LEFT,
        plot_right=PLOT_RIGHT,
        plot_top=PLOT_TOP,
        axis_y=_r(axis_y),
        bar_height=BAR_HEIGHT,
        span_s=span_s,
        rows=rows,
        window_x=window_x,
        x_labels=labels,
    )
