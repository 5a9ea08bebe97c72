"""The score plot's compact legend: which colour is which unit.

Curves are coloured by depth, so with a handful of units every unit gets an entry; with more,
a few units spread from the input to the output name the colours between them (the hover
readout names any curve). The legend lists only units that have scores, so an empty plot has
none; it sits in a corner on a background of its own and can be dragged aside.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from learndrop.core.monitor import RunHistory

from ..theme import Theme, depth_colors

__all__ = ["MAX_ENTRIES", "ScoreLegend"]

#: the most units named; with more, this many spread from input to output
MAX_ENTRIES = 8


class ScoreLegend:
    """A :class:`pyqtgraph.LegendItem` in the plot's top right corner."""

    def __init__(self, plot: pg.PlotItem, text_size: str) -> None:
        self.item = pg.LegendItem(offset=(-6, 6), labelTextSize=text_size, colCount=2,
                                  verSpacing=-4)
        self.item.setParentItem(plot.vb)
        self.item.setZValue(25)
        self._samples: list[pg.PlotDataItem] = []
        self._key: tuple[object, ...] = ()

    def names(self) -> list[str]:
        """The units named, in the legend's order."""
        return [label.text for _sample, label in self.item.items]

    def update(self, history: RunHistory, theme: Theme) -> None:
        """Name the units with scores (again only when they or the colours changed)."""
        units = [u for u in history.units if not u.is_head]
        has = bool(history.n_checks())
        key = (tuple(u.name for u in units), has, theme.dark, theme.foreground.name())
        if key == self._key:
            return
        self._key = key
        self.item.clear()
        self._samples = []
        if not has or not units:
            self.item.setVisible(False)
            return
        colors = depth_colors(len(history.units), theme)
        if len(units) > MAX_ENTRIES:
            picks = np.linspace(0, len(units) - 1, MAX_ENTRIES).round().astype(int)
            units = [units[i] for i in sorted(set(picks.tolist()))]
        self.item.setColumnCount(1 if len(units) <= 3 else 2)
        self.item.setLabelTextColor(theme.foreground)  # before the labels are made
        for u in units:
            sample = pg.PlotDataItem(pen=pg.mkPen(colors[u.index], width=3))
            self._samples.append(sample)
            self.item.addItem(sample, u.name)
        self.item.setBrush(pg.mkBrush(theme.faded(theme.background, 235)))
        self.item.setPen(pg.mkPen(theme.faded(theme.foreground, 60)))
        self.item.setVisible(True)
