"""Many runs on one plot: a curve each (loss, accuracy, or one unit's learning score) against
the epoch, the step or the wall time; runs that differ only by seed can be drawn as their
mean with a band of one standard deviation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from learndrop.core.report import RunData
from learndrop.core.report import many as many_runs

from ..theme import apply_plot_theme, current_theme

__all__ = ["RunsOverlay", "run_palette"]


def run_palette(n: int) -> list[QColor]:
    """A colour for each of ``n`` runs (or groups)."""
    return [pg.intColor(i, hues=max(n, 1), values=1, maxValue=220, minValue=150)
            for i in range(n)]


class RunsOverlay(QWidget):
    """The curves of ``runs`` (with ``labels``) overlaid."""

    def __init__(self, runs: Sequence[RunData], labels: Sequence[str],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs = list(runs)
        records = [d.record for d in self.runs]
        self.differing = many_runs.differing_settings(records)
        # a curve is named by what sets its run apart (run names when nothing does)
        self.labels = [many_runs.run_label(r, self.differing, seed=True) for r in records]
        if len(set(self.labels)) < len(self.labels):
            self.labels = list(labels)
        self.theme = current_theme()
        self.metric_box = QComboBox()
        for key, label in many_runs.CURVES:
            self.metric_box.addItem(label, key)
        self.unit = QComboBox()
        names: list[str] = []
        for d in self.runs:
            names += [u.name for u in d.units if not u.is_head and u.name not in names]
        self.unit.addItems(names)
        self.unit.setToolTip("The unit whose learning score is drawn")
        self.x_axis = QComboBox()
        for key, label in many_runs.X_AXES:
            self.x_axis.addItem(label, key)
        self.grouped = QCheckBox("Group seeds")
        self.grouped.setToolTip("Runs that differ only by their seed as one mean curve with a "
                                "band of one standard deviation")
        top = QHBoxLayout()
        for w in (QLabel("Show"), self.metric_box, self.unit, QLabel("against"), self.x_axis,
                  self.grouped):
            top.addWidget(w)
        top.addStretch(1)
        self.plot_widget = pg.PlotWidget()
        apply_plot_theme(self.plot_widget, self.theme)
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setMenuEnabled(False)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.legend = self.plot.addLegend(offset=(-8, -8), labelTextColor=self.theme.foreground,
                                          brush=pg.mkBrush(self.theme.faded(
                                              self.theme.background, 210)))
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.plot_widget, 1)
        for box in (self.metric_box, self.unit, self.x_axis):
            box.currentIndexChanged.connect(lambda *_: self.redraw())
        self.grouped.toggled.connect(lambda *_: self.redraw())
        #: what is drawn: (label, x, y) per curve (for tests)
        self.drawn: list[tuple[str, np.ndarray, np.ndarray]] = []
        self.bands = 0
        self.redraw()

    def redraw(self) -> None:
        self.plot.clear()
        if self.legend is not None:
            self.legend.clear()
        metric = str(self.metric_box.currentData())
        x_axis = str(self.x_axis.currentData())
        self.unit.setVisible(metric == "score")
        unit = self.unit.currentText()
        self.plot.setLabel("bottom", self.x_axis.currentText())
        self.plot.setLabel("left", self.metric_box.currentText() if metric != "score"
                           else f"learning score of {unit}")
        curves = [many_runs.curve(d, metric, x_axis, unit) for d in self.runs]
        self.drawn, self.bands = [], 0
        if self.grouped.isChecked():
            groups = many_runs.seed_groups([d.record for d in self.runs])
            colors = run_palette(len(groups))
            ids = [d.record.id for d in self.runs]
            for group, color in zip(groups, colors):
                members = [curves[ids.index(r.id)] for r in group]
                x, mean, sd = many_runs.mean_band(members)
                label = many_runs.run_label(group[0], self.differing) + (
                    f" (mean of {len(group)} seeds)" if len(group) > 1 else "")
                if len(group) > 1 and x.size:
                    low = pg.PlotDataItem(x, mean - sd, pen=pg.mkPen(None))
                    high = pg.PlotDataItem(x, mean + sd, pen=pg.mkPen(None))
                    band = QColor(color)
                    band.setAlpha(60)
                    self.plot.addItem(pg.FillBetweenItem(low, high, brush=pg.mkBrush(band)))
                    self.bands += 1
                self.plot.plot(x, mean, pen=pg.mkPen(color, width=2), name=label)
                self.drawn.append((label, x, mean))
        else:
            for c, label, color in zip(curves, self.labels, run_palette(len(curves))):
                symbol = "o" if c.x.size < 60 else None
                self.plot.plot(c.x, c.y, pen=pg.mkPen(color, width=2), name=label,
                               symbol=symbol, symbolSize=5, symbolBrush=color,
                               symbolPen=pg.mkPen(color))
                self.drawn.append((label, c.x, c.y))
        self.plot.enableAutoRange()
        self.plot_widget.setToolTip("" if self.drawn else "nothing to draw")
        self.plot.getViewBox().setMouseEnabled(x=True, y=True)
        self.plot_widget.setCursor(Qt.CursorShape.CrossCursor)
