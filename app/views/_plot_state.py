"""What the plots show when they have little or nothing to show: no axis numbers on an empty
plot (no made-up "epochs" 0.2 to 0.8), and legends that list only the series with data, in a
line above the plot where they never cover it."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import pyqtgraph as pg
from PySide6.QtGui import QColor

__all__ = ["show_axis_values", "line_legend"]


def show_axis_values(plot: pg.PlotItem, on: bool, axes: Sequence[str] = ("bottom", "left")
                     ) -> None:
    """Numbers on ``axes`` only when the plot has data to read them against."""
    for name in axes:
        axis = plot.getAxis(name)
        if axis.style.get("showValues", True) != on:
            axis.setStyle(showValues=on)


def line_legend(plot: pg.PlotItem, entries: Sequence[tuple[QColor, str, str]],
                color: QColor, size: str) -> None:
    """A one-line legend in the plot's title row: ``(colour, mark, name)`` per series with
    data (``mark``: the series' symbol, "" for a plain line); none when there are none."""
    if not entries:
        plot.setTitle(None)
        return
    parts = [f'<span style="color:{c.name()}">\u2501{escape(mark)}</span>&nbsp;{escape(name)}'
             for c, mark, name in entries]
    plot.setTitle("&nbsp;&nbsp;&nbsp;".join(parts), color=color.name(), size=size)
