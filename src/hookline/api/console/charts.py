"""Geometry of the console's small SVG charts; the templates draw them (no chart library).

Pure arithmetic on the figures a service returned: every coordinate is in the SVG's own
``viewBox`` units, rounded to a tenth, so the markup stays short and the CSS scales it to any
width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from hookline.service.console import HourBucket

CHART_WIDTH: Final = 720.0
CHART_HEIGHT: Final = 200.0
PLOT_LEFT: Final = 44.0
"""Room for the y-axis labels."""
PLOT_TOP: Final = 28.0
"""Room above for the top y-axis label, which is large on a phone."""
PLOT_BOTTOM: Final = 172.0
"""Below it: the hour labels."""
PLOT_RIGHT: Final = 712.0
BAR_FILL: Final = 0.72
"""The share of its slot a bar covers; the rest is the gap between bars."""
LABEL_EVERY: Final = 6
"""A label under every sixth bar ("18 h ago"), and "now" at the right end."""
LABEL_GAP: Final = 18.0
"""From the plot's bottom to the labels' baseline."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One hour: the failed part at the bottom, the succeeded part stacked on it."""

    start: datetime
    end: datetime
    succeeded: int
    failed: int
    x: float
    width: float
    failed_y: float
    failed_height: float
    succeeded_y: float
    succeeded_height: float


@dataclass(frozen=True, slots=True)
class AxisLabel:
    x: float
    y: float
    text: str
    anchor: str = "start"
    """SVG ``text-anchor``: which end of the text sits at ``x``."""


@dataclass(frozen=True, slots=True)
class BarChart:
    """A stacked bar chart in a ``width`` x ``height`` viewBox."""

    width: float
    height: float
    plot_left: float
    plot_top: float
    plot_right: float
    plot_bottom: float
    bars: list[Bar]
    max_value: int
    x_labels: list[AxisLabel]

    @property
    def total(self) -> int:
        return sum(bar.succeeded + bar.failed for bar in self.bars)


def _r(value: float) -> float:
    return round(value, 1)


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 times a power of ten that is at least ``value`` (1 for 0)."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def hourly_chart(buckets: Sequence[HourBucket]) -> BarChart:
    """Stacked bars of succeeded and failed deliveries per hour, oldest on the left; one
    bucket per hour, the last one ending now (so the labels count hours back from now)."""
    top = nice_ceiling(max((b.succeeded + b.failed for b in buckets), default=0))
    plot_height = PLOT_BOTTOM - PLOT_TOP
    slot = (PLOT_RIGHT - PLOT_LEFT) / max(len(buckets), 1)
    width = slot * BAR_FILL
    bars: list[Bar] = []
    labels: list[AxisLabel] = []
    label_y = PLOT_BOTTOM + LABEL_GAP
    for index, bucket in enumerate(buckets):
        x = PLOT_LEFT + index * slot + (slot - width) / 2
        failed_height = plot_height * bucket.failed / top
        succeeded_height = plot_height * bucket.succeeded / top
        bars.append(
            Bar(
                start=bucket.start,
                end=bucket.end,
                succeeded=bucket.succeeded,
                failed=bucket.failed,
                x=_r(x),
                width=_r(width),
                failed_y=_r(PLOT_BOTTOM - failed_height),
                failed_height=_r(failed_height),
                succeeded_y=_r(PLOT_BOTTOM - failed_height - succeeded_height),
                succeeded_height=_r(succeeded_height),
            )
        )
        if index % LABEL_EVERY == 0:
            hours_ago = len(buckets) - index
            labels.append(
                AxisLabel(x=_r(PLOT_LEFT + index * slot), y=label_y, text=f"{hours_ago} h ago")
            )
    labels.append(AxisLabel(x=PLOT_RIGHT, y=label_y, text="now", anchor="end"))
    return BarChart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        plot_left=PLOT_LEFT,
        plot_top=PLOT_TOP,
        plot_right=PLOT_RIGHT,
        plot_bottom=PLOT_BOTTOM,
        bars=bars,
        max_value=top,
        x_labels=labels,
    )
