"""What the plots show when they have little or nothing to show: no axis numbers on an empty
plot (no made-up "epochs" 0.2 to 0.8), and legends that list only the series with data, in a
line above the plot where they never cover it."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import pyqtgraph as pg
from PySide6.QtGui import QColor, QFont, QFontMetricsF

__all__ = ["show_axis_values", "line_legend"]


def show_axis_values(plot: pg.PlotItem, on: bool, axes: Sequence[str] = ("bottom", "left")
                     ) -> None:
    """Numbers (and tick marks) on ``axes`` only when the plot has data to read them
    against."""
    for name in axes:
        axis = plot.getAxis(name)
        if axis.style.get("showValues", True) != on:
            axis.setStyle(showValues=on)
            axis.setTicks(None if on else [[], []])


def line_legend(plot: pg.PlotItem, entries: Sequence[tuple[QColor, str, str, str]],
                color: QColor, size_pt: float, width: float) -> None:
    """A legend in the plot's title row: ``(colour, mark, name, short name)`` per series
    with data (``mark``: the series' symbol, "" for a plain line); none when there are none.
    It takes the names if they fit in ``width`` pixels on one line, else the short names,
    else the short names on two lines: never a cut one."""
    if not entries:
        plot.setTitle(None)
        return
    font = QFont()
    font.setPointSizeF(size_pt)
    metrics = QFontMetricsF(font)
    gap = "\u2003"

    def item(c: QColor, mark: str, name: str) -> tuple[str, str]:
        text = f"\u2501{mark} {name}"
        html = (f'<span style="color:{c.name()}">\u2501{escape(mark)}</span>'
                f"&nbsp;{escape(name)}")
        return text, html

    for use_short in (False, True):
        parts = [item(c, m, short if use_short else name) for c, m, name, short in entries]
        if metrics.horizontalAdvance(gap.join(t for t, _h in parts)) <= width * 0.95:
            html = gap.join(h for _t, h in parts)
            break
    else:
        half = (len(parts) + 1) // 2
        html = (gap.join(h for _t, h in parts[:half]) + "<br>"
                + gap.join(h for _t, h in parts[half:]))
    plot.setTitle(html, color=color.name(), size=f"{size_pt:.1f}pt")
