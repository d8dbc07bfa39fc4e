"""The geometry of the dashboard's bar chart, drawn as inline SVG by the template.

Owns: turning counts into bars (x, y, width, height in the chart's own units) and
a few gridline values. Pure: no I/O, no markup.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 600
HEIGHT = 200
TOP = 10  # room above the tallest bar
BOTTOM = 2  # room below the axis


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    count: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    peak: int  # the highest count (the full height)
    baseline: float  # y of the axis


def bars(points: list[tuple[str, int]]) -> Chart:
    """Bars for (label, count) points, left to right in the order given."""
    peak = max([count for _, count in points] + [0])
    scale = max(peak, 1)
    baseline = HEIGHT - BOTTOM
    usable = baseline - TOP
    step = WIDTH / max(len(points), 1)
    gap = min(4.0, step / 4)
    made = []
    for i, (label, count) in enumerate(points):
        tall = usable * count / scale
        made.append(Bar(round(i * step + gap / 2, 2), round(baseline - tall, 2),
                        round(step - gap, 2), round(tall, 2), label, count))  # fmt: skip
    return Chart(WIDTH, HEIGHT, made, peak, baseline)
