"""Bar charts for the admin as plain SVG geometry: axes with labels and units,
dates under the bars, each bar's value on hover (its ``<title>``), no JavaScript
and nothing loaded from elsewhere. ``sms_service/admin/_chart.html`` draws it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from .._types import StrOrPromise

#: Drawing area and margins, in SVG units (the SVG scales to its container).
WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 12, 44


@dataclass(frozen=True)
class Segment:
    """One stacked part of a bar: its value, colour and hover label."""

    value: float | Decimal | int
    colour: str
    label: StrOrPromise


@dataclass
class Chart:
    title: StrOrPromise
    description: StrOrPromise
    x_title: StrOrPromise
    y_title: StrOrPromise
    width: int = WIDTH
    height: int = HEIGHT
    bars: list[dict[str, Any]] = field(default_factory=list)
    y_ticks: list[dict[str, Any]] = field(default_factory=list)
    x_labels: list[dict[str, Any]] = field(default_factory=list)

    @property
    def plot_left(self) -> int:
        return LEFT

    @property
    def plot_bottom(self) -> int:
        return self.height - BOTTOM

    @property
    def plot_right(self) -> int:
        return self.width - RIGHT

    @property
    def y_middle(self) -> float:
        return (TOP + self.plot_bottom) / 2


def _nice_top(peak: float) -> float:
    """A round number at or above ``peak`` for the top of the y axis."""
    if peak <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(peak))) / 10 if peak >= 1 else 1.0
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= peak:
            return step * magnitude
    return peak


def bar_chart(
    columns: Sequence[tuple[date, Sequence[Segment]]],
    *,
    title: StrOrPromise,
    description: StrOrPromise,
    x_title: StrOrPromise,
    y_title: StrOrPromise,
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
) -> Chart:
    """Stacked bars, one per day, with a y axis of 0, ½ and the top value."""
    chart = Chart(title=title, description=description, x_title=x_title, y_title=y_title)
    peak = max((float(sum(float(s.value) for s in segs)) for _d, segs in columns), default=0)
    top = _nice_top(peak)
    plot_height = chart.plot_bottom - TOP
    slot = (chart.plot_right - LEFT) / max(len(columns), 1)
    for fraction in (0, 0.5, 1):
        chart.y_ticks.append({
            "y": round(chart.plot_bottom - fraction * plot_height, 1),
            "label": fmt(top * fraction),
        })
    every = max(1, round(len(columns) / 8))  # at most about 8 dates under the axis
    for index, (day, segments) in enumerate(columns):
        x = LEFT + index * slot
        y = float(chart.plot_bottom)
        total = sum(float(s.value) for s in segments)
        for segment in segments:
            value = float(segment.value)
            if value <= 0:
                continue
            height = value / top * plot_height
            y -= height
            chart.bars.append({
                "x": round(x + slot * 0.15, 1), "y": round(y, 1),
                "w": round(max(slot * 0.7, 1), 1), "h": round(height, 1),
                "colour": segment.colour,
                "title": f"{day:%Y-%m-%d} · {segment.label}: {fmt(value)}"
                         + (f" (of {fmt(total)})" if len(segments) > 1 else ""),
            })
        last = index == len(columns) - 1
        if index % every == 0 or (last and index % every >= every / 2):
            chart.x_labels.append({"x": round(x + slot / 2, 1), "label": f"{day:%m-%d}"})
    return chart
