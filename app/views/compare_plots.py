"""Two stored runs' curves overlaid per epoch, and their drop timelines, in one plot widget.

Reads the runs' :class:`~learndrop.core.report.RunData` (the report's data model, so the plots
agree with the exported reports) and nothing else.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from learndrop.core.events import DropEvent, RestoreEvent
from learndrop.core.format import short_names
from learndrop.core.report import RunData
from learndrop.core.report import tables as tables

from ..theme import Theme, apply_plot_theme

__all__ = ["ComparePlots", "run_colors"]

_COLORS_LIGHT = ("#1f78c8", "#d9532b")
_COLORS_DARK = ("#4fb3ff", "#ff7a4d")


def run_colors(dark: bool) -> tuple[QColor, QColor]:
    """The two runs' colours (first run, reference run)."""
    a, b = _COLORS_DARK if dark else _COLORS_LIGHT
    return QColor(a), QColor(b)


def _epoch_x(d: RunData, step: int) -> float:
    return d.epoch_of_step(step)


def _finite(values: list[Any]) -> np.ndarray:
    return np.array([v if isinstance(v, (int, float)) and math.isfinite(v) else np.nan
                     for v in values], dtype=np.float64)


class ComparePlots(pg.GraphicsLayoutWidget):
    """Loss and accuracy of both runs (solid: validation, dashed: training) over a drop
    timeline per run; hovering a drop marker names the unit. ``curves[label]`` holds a run's
    four curve items (validation loss first), ``drop_markers`` one scatter item per run, and
    ``restore_markers`` one per run for the drops its policy undid (upward triangles in the
    theme's restore colour)."""

    def __init__(self, runs: list[RunData], labels: list[str], colors: tuple[QColor, QColor],
                 theme: Theme, text_size: float) -> None:
        super().__init__()
        self.runs, self.labels, self.colors, self.theme = runs, labels, colors, theme
        #: the runs' names as the legend and the drop timeline show them: always different
        self.shown = short_names(labels, 34)
        self.curves: dict[str, list[pg.PlotDataItem]] = {}
        self.drop_markers: list[pg.ScatterPlotItem] = []
        self.restore_markers: list[pg.ScatterPlotItem] = []
        self.legend = pg.LegendItem(labelTextColor=theme.foreground,
                                    labelTextSize=f"{max(7.0, text_size):.1f}pt")
        self.legend.setColumnCount(2)
        self.addItem(self.legend, row=0, col=0, colspan=2)
        self.loss_plot = self.addPlot(row=1, col=0, title="Loss")
        self.acc_plot = self.addPlot(row=1, col=1, title="Accuracy")
        self.drop_plot = self.addPlot(row=2, col=0, colspan=2,
                                      title=("Drops \u25bc and restores \u25b2"
                                             if any(d.restores for d in runs) else "Drops")
                                      + " (hover a marker for the unit)")
        self.ci.layout.setRowStretchFactor(1, 3)
        self.ci.layout.setRowStretchFactor(2, 1)
        self._draw_curves()
        self._draw_drops()
        self.legend.updateSize()
        self._side_by_side = self.legend.boundingRect().width()  # the names in two columns

    def resizeEvent(self, ev: Any) -> None:
        """The legend's names side by side when they fit the view, else one above the other:
        a legend wider than the view would make the plots under it wider too, and cut off
        the accuracy plot and the drop timeline's right end."""
        wide = getattr(self, "_side_by_side", None)  # None while the view is being built
        columns = 2 if wide is None or wide <= self.viewport().width() - 8 else 1
        if wide is not None and self.legend.columnCount != columns:
            self.legend.setColumnCount(columns)
        super().resizeEvent(ev)  # ev: None when pyqtgraph calls it itself

    def _draw_curves(self) -> None:
        apply_plot_theme(self, self.theme)
        for plot in (self.loss_plot, self.acc_plot, self.drop_plot):
            plot.setMenuEnabled(False)
            plot.showGrid(x=True, y=True, alpha=0.15)
            plot.getAxis("left").enableAutoSIPrefix(False)
        self.acc_plot.setXLink(self.loss_plot)
        self.drop_plot.setLabel("bottom", "epoch")
        for d, label, color in zip(self.runs, self.labels, self.colors):
            x = np.array([_epoch_x(d, e.step) for e in d.epochs], dtype=np.float64)
            solid = pg.mkPen(color, width=2)
            dashed = pg.mkPen(color, width=1.5, style=Qt.PenStyle.DashLine)
            brush = pg.mkBrush(color)
            items = [
                self.loss_plot.plot(x, _finite([e.val_loss for e in d.epochs]), pen=solid,
                                    symbol="o", symbolSize=6, symbolBrush=brush),
                self.loss_plot.plot(x, _finite([e.train_loss for e in d.epochs]), pen=dashed),
                self.acc_plot.plot(x, _finite([e.val_accuracy for e in d.epochs]), pen=solid,
                                   symbol="o", symbolSize=6, symbolBrush=brush),
                self.acc_plot.plot(x, _finite([e.train_accuracy for e in d.epochs]),
                                   pen=dashed),
            ]
            self.curves[label] = items
            self.legend.addItem(items[0], self.shown[self.labels.index(label)])
        last = max([float(d.start.epochs) for d in self.runs] + [1.0])
        self.loss_plot.setXRange(0, last, padding=0.02)
        self.drop_plot.setXRange(0, last, padding=0.02)

    def _draw_drops(self) -> None:
        plot = self.drop_plot
        plot.setMouseEnabled(x=True, y=False)
        plot.getAxis("left").setTicks([[(1.0, " "), (0.0, " ")]])
        plot.getAxis("left").setWidth(self.loss_plot.getAxis("left").width())
        plot.setYRange(-0.7, 1.75, padding=0)
        for i, (d, color) in enumerate(zip(self.runs, self.colors)):
            y = 1.0 - i
            end = _epoch_x(d, d.epochs[-1].step) if d.epochs else 0.0
            plot.plot([0.0, max(end, 1e-9)], [y, y], pen=pg.mkPen(self.theme.muted, width=1))
            # a run without drops says so beside its name, on its own row
            note = "" if d.drops else (" · no drops" if d.record.drop_enabled
                                       else " · baseline: no dropping")
            name = pg.TextItem(self.shown[i] + note, color=color, anchor=(0, 1))
            name.setPos(0.0, y + 0.12)
            plot.addItem(name)
            spots = [{"pos": (float(x.epoch), y), "data": self._drop_tip(d, x)}
                     for x in d.drops]
            markers = pg.ScatterPlotItem(
                spots=spots, symbol="t", size=12, pen=pg.mkPen(color, width=1),
                brush=pg.mkBrush(color), hoverable=True,
                hoverBrush=pg.mkBrush(self.theme.foreground),
                tip=lambda x, y, data: str(data))
            plot.addItem(markers)
            self.drop_markers.append(markers)
            undone = pg.ScatterPlotItem(
                spots=[{"pos": (float(r.epoch), y), "data": self._restore_tip(d, r)}
                       for r in d.restores],
                symbol="t1", size=12, pen=pg.mkPen(color, width=1.5),
                brush=pg.mkBrush(self.theme.restore), hoverable=True,
                hoverBrush=pg.mkBrush(self.theme.foreground),
                tip=lambda x, y, data: str(data))
            plot.addItem(undone)
            self.restore_markers.append(undone)

    @staticmethod
    def _drop_tip(d: RunData, drop: DropEvent) -> str:
        score = "by hand" if drop.reason == "manual" else f"score {tables.score(drop.score)}"
        return (f"{drop.unit} dropped in epoch {d.epoch_number(drop.step)} "
                f"(at {drop.epoch:.2f} epochs, step {drop.step}, {score})")

    @staticmethod
    def _restore_tip(d: RunData, restore: RestoreEvent) -> str:
        return (f"{restore.text}; in epoch {d.epoch_number(max(restore.step, 1))} "
                f"(at {restore.epoch:.2f} epochs, step {restore.step})")
