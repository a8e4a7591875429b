"""Inline SVG charts for the report: horizontal bar charts and histograms.

Plain SVG strings, no JavaScript, so the report renders in any browser
offline. Shapes sit on whole pixels with `shape-rendering="crispEdges"`, so a
bar is a solid rectangle of exactly its colour (which the screenshot test
relies on), and bars are scaled to the largest value in their chart.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import NamedTuple

from pipeline.report_data import HistogramBin
from pipeline.report_palette import RGB, hex_colour

CHART_WIDTH = 520
BAR_MAX_LENGTH = 300  # Pixels of the longest horizontal bar.
_LABEL_WIDTH = 130  # Left column of class names; bars start here.
_ROW_HEIGHT = 24
_BAR_THICKNESS = 16
_TOP = 8
_HIST_HEIGHT = 220
_HIST_LEFT = 44
_HIST_TOP = 20
_HIST_PLOT_HEIGHT = 160
_HIST_GAP = 2  # Pixels between histogram bars, so each bar stays a separate rectangle.
_MAX_X_LABELS = 16
_AXIS = "#888888"
_TEXT = "#222222"
_FONT = 'font-family="Helvetica, Arial, sans-serif" font-size="12"'


class Bar(NamedTuple):
    """One bar of a horizontal bar chart."""

    label: str  # Left of the bar, e.g. a class name.
    value: float  # Sets the bar's length; >= 0.
    value_text: str  # Right of the bar, e.g. "41.8 %".
    colour: RGB


def bar_length(value: float, max_value: float, max_length: int = BAR_MAX_LENGTH) -> int:
    """Pixel length of a bar: proportional to value, at least 1 px for any positive value."""
    if max_value <= 0 or value <= 0:
        return 0
    return max(1, round(value / max_value * max_length))


def horizontal_bar_chart(title: str, bars: Sequence[Bar], empty_text: str) -> str:
    """An SVG chart with one horizontal bar per entry, in the order given.

    Args:
      title: The chart's accessible name (the visible title is the page's job).
      bars: The bars; an empty sequence, or all values zero, renders `empty_text`.
      empty_text: What to say when there is nothing to draw.
    """
    max_value = max((b.value for b in bars), default=0.0)
    if max_value <= 0:
        return _empty_chart(title, empty_text)
    height = _TOP * 2 + _ROW_HEIGHT * len(bars)
    parts = []
    for row, bar in enumerate(bars):
        top = _TOP + row * _ROW_HEIGHT
        length = bar_length(bar.value, max_value)
        middle = top + _ROW_HEIGHT // 2
        parts.append(
            f'<text x="{_LABEL_WIDTH - 8}" y="{middle}" text-anchor="end" '
            f'dominant-baseline="middle" fill="{_TEXT}">{html.escape(bar.label)}</text>'
        )
        bar_top = top + (_ROW_HEIGHT - _BAR_THICKNESS) // 2
        if length:
            parts.append(
                f'<rect x="{_LABEL_WIDTH}" y="{bar_top}" width="{length}" '
                f'height="{_BAR_THICKNESS}" fill="{hex_colour(bar.colour)}"/>'
            )
        parts.append(
            f'<text x="{_LABEL_WIDTH + length + 6}" y="{middle}" dominant-baseline="middle" '
            f'fill="{_TEXT}">{html.escape(bar.value_text)}</text>'
        )
    return _svg(title, height, parts)


def histogram_chart(
    title: str, bins: Sequence[HistogramBin], colour: RGB, x_label: str, empty_text: str
) -> str:
    """An SVG histogram: one vertical bar per bin, labelled with its count.

    Args:
      title: The chart's accessible name.
      bins: The bins, left to right; no bins, or all counts zero, renders `empty_text`.
      colour: The bars' fill.
      x_label: What the bins are, written under the axis.
      empty_text: What to say when there is nothing to draw.
    """
    max_count = max((b.count for b in bins), default=0)
    if max_count <= 0:
        return _empty_chart(title, empty_text)
    slot = max(1, (CHART_WIDTH - _HIST_LEFT - 16) // len(bins))
    baseline = _HIST_TOP + _HIST_PLOT_HEIGHT
    label_every = max(1, -(-len(bins) // _MAX_X_LABELS))
    parts = [_axes(baseline, slot * len(bins), max_count, x_label)]
    for index, hist_bin in enumerate(bins):
        left = _HIST_LEFT + index * slot
        centre = left + slot // 2
        height = bar_length(hist_bin.count, max_count, _HIST_PLOT_HEIGHT)
        if height:
            parts.append(
                f'<rect x="{left + _HIST_GAP // 2}" y="{baseline - height}" '
                f'width="{max(1, slot - _HIST_GAP)}" height="{height}" '
                f'fill="{hex_colour(colour)}"/>'
            )
            parts.append(
                f'<text x="{centre}" y="{baseline - height - 4}" text-anchor="middle" '
                f'font-size="10" fill="{_TEXT}">{hist_bin.count}</text>'
            )
        if index % label_every == 0:
            parts.append(
                f'<text x="{centre}" y="{baseline + 14}" text-anchor="middle" '
                f'font-size="10" fill="{_TEXT}">{html.escape(hist_bin.label)}</text>'
            )
    return _svg(title, _HIST_HEIGHT, parts)


def _axes(baseline: int, plot_width: int, max_count: int, x_label: str) -> str:
    right = _HIST_LEFT + plot_width
    return (
        f'<line x1="{_HIST_LEFT}" y1="{baseline}" x2="{right}" y2="{baseline}" '
        f'stroke="{_AXIS}"/>'
        f'<line x1="{_HIST_LEFT - 1}" y1="{_HIST_TOP}" x2="{_HIST_LEFT - 1}" y2="{baseline}" '
        f'stroke="{_AXIS}"/>'
        f'<text x="{_HIST_LEFT - 6}" y="{_HIST_TOP}" text-anchor="end" dominant-baseline="middle" '
        f'font-size="10" fill="{_TEXT}">{max_count}</text>'
        f'<text x="{_HIST_LEFT - 6}" y="{baseline}" text-anchor="end" dominant-baseline="middle" '
        f'font-size="10" fill="{_TEXT}">0</text>'
        f'<text x="{(_HIST_LEFT + right) // 2}" y="{baseline + 32}" text-anchor="middle" '
        f'fill="{_TEXT}">{html.escape(x_label)}</text>'
    )


def _empty_chart(title: str, empty_text: str) -> str:
    text = (
        f'<text x="{CHART_WIDTH // 2}" y="30" text-anchor="middle" fill="#777777">'
        f"{html.escape(empty_text)}</text>"
    )
    return _svg(title, 60, [text])


def _svg(title: str, height: int, parts: Sequence[str]) -> str:
    # Fixed pixel size (no viewBox scaling): one SVG unit is one CSS pixel,
    # so bars keep whole-pixel edges on screen.
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" height="{height}" '
        f'role="img" aria-label="{html.escape(title)}" shape-rendering="crispEdges" {_FONT}>'
        f"<title>{html.escape(title)}</title>{''.join(parts)}</svg>"
    )
