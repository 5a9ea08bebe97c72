"""The what-if explorer's pictures of one recorded run under another drop policy.

:class:`DropTimeline`: one row per unit (input at the top), a bar from the epoch it would
drop to the end of the run under the policy tried, and a thinner grey bar where it did
drop; a unit whose recorded history ends while the policy still trains it is marked "?".
:class:`WhatIfScores`: the run's recorded learning scores (drawn once), the tried threshold
(drag it to try another), a marker where each unit would drop and a hollow one where it did,
and a line where the prediction stops being exact.

Both only redraw their few changing items when :meth:`show_result` gets a new
:class:`~learndrop.core.monitor.WhatIf`, so trying a setting costs milliseconds.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from learndrop.core.monitor import RunHistory, WhatIf

from ..theme import Theme, apply_plot_theme, current_theme, depth_colors

__all__ = ["DropTimeline", "WhatIfScores"]

#: unit names on the timeline's axis up to this many units (more: numbers only)
NAMED_UNITS = 40


class DropTimeline(QWidget):
    """When each unit would drop (coloured) and when it did (grey), over the run's epochs."""

    def __init__(self, history: RunHistory, end_epoch: float,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.theme: Theme = current_theme()
        self.names = [u.name for u in history.units]
        self.end = max(end_epoch, 1e-9)
        self.plot_widget = pg.PlotWidget()
        apply_plot_theme(self.plot_widget, self.theme)
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "epoch")
        self.plot.invertY(True)
        n = len(self.names)
        axis = self.plot.getAxis("left")
        if n <= NAMED_UNITS:
            axis.setTicks([[(i, name) for i, name in enumerate(self.names)]])
        self.plot.setXRange(0, self.end, padding=0.01)
        self.plot.setYRange(-0.5, n - 0.5, padding=0)
        width = max(3.0, min(14.0, 320.0 / max(n, 1)))
        self.recorded = pg.PlotCurveItem(connect="pairs", pen=pg.mkPen(
            self.theme.faded(self.theme.muted, 170), width=width))
        self.tried = pg.PlotCurveItem(connect="pairs", pen=pg.mkPen(
            self.theme.states["learning"], width=max(2.0, width * 0.45)))
        self.unknown = pg.ScatterPlotItem(symbol="t", size=9, brush=pg.mkBrush(
            self.theme.warning), pen=pg.mkPen(self.theme.warning))
        self.exact = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(
            self.theme.error, width=1, style=Qt.PenStyle.DashLine))
        for item in (self.recorded, self.tried, self.unknown, self.exact):
            self.plot.addItem(item)
        self.plot_widget.setToolTip("Each row a unit, input at the top. Grey: dropped in the "
                                    "recorded run; coloured: would drop with the settings "
                                    "tried; \u25b2: unknown after the recorded drop; dashed "
                                    "line: the prediction is exact up to here")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot_widget)

    @staticmethod
    def _pairs(epochs: list[float | None], end: float) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for i, e in enumerate(epochs):
            if e is not None:
                xs += [e, end]
                ys += [i + 0.12, i + 0.12]
        return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)

    def show_result(self, result: WhatIf) -> None:
        x, y = self._pairs([u.recorded_drop_epoch for u in result.units], self.end)
        self.recorded.setData(x, y - 0.12 if y.size else y)
        x, y = self._pairs([u.drop_epoch for u in result.units], self.end)
        self.tried.setData(x, y + 0.1 if y.size else y)
        unknown = [(u.recorded_drop_epoch or 0.0, i) for i, u in enumerate(result.units)
                   if u.unknown]
        self.unknown.setData([p[0] for p in unknown], [p[1] for p in unknown])
        first = result.first_difference_epoch
        self.exact.setVisible(first is not None)
        if first is not None:
            self.exact.setPos(first)

    def tried_segments(self) -> list[tuple[float, float]]:
        """(from epoch, row) of each coloured bar (for tests)."""
        x, y = self.tried.getData()
        if x is None:
            return []
        return [(float(x[k]), round(float(y[k]) - 0.22)) for k in range(0, len(x), 2)]


class WhatIfScores(QWidget):
    """The recorded scores with the tried threshold and the drops, tried and recorded.

    ``threshold_dragged(value)`` while the threshold line is dragged."""

    threshold_dragged = Signal(float)

    def __init__(self, history: RunHistory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.theme: Theme = current_theme()
        self.history = history
        self.plot_widget = pg.PlotWidget()
        apply_plot_theme(self.plot_widget, self.theme)
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "epoch")
        self.plot.setLabel("left", "learning score")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setYRange(0, 1.05, padding=0)
        self.plot.setClipToView(True)
        scores = history.score_matrix()
        epochs = history.check_epochs()
        n = scores.shape[1] if scores.ndim == 2 else 0
        self.colors = depth_colors(n, self.theme)
        self.brushes = [pg.mkBrush(c) for c in self.colors]
        # one item for all the curves: NaN between units (they are drawn once)
        if n and scores.shape[0]:
            xs = np.concatenate([np.append(epochs, np.nan)] * n)
            ys = np.concatenate([np.append(scores[:, i], np.nan) for i in range(n)])
            self.curves = pg.PlotCurveItem(xs, ys, connect="finite", pen=pg.mkPen(
                self.theme.faded(self.theme.muted, 120), width=1))
        else:
            self.curves = pg.PlotCurveItem()
        self.plot.addItem(self.curves)
        self.threshold = pg.InfiniteLine(angle=0, movable=True, pen=pg.mkPen(
            self.theme.threshold, width=1.5, style=Qt.PenStyle.DashLine))
        self.threshold.setBounds((0.0, 1.0))
        self.threshold.setToolTip("The threshold tried: drag it to try another")
        self.threshold.sigPositionChanged.connect(
            lambda line: self.threshold_dragged.emit(float(line.value())))
        self.recorded = pg.ScatterPlotItem(symbol="o", size=10, brush=pg.mkBrush(None),
                                           pen=pg.mkPen(self.theme.foreground, width=1.2))
        self.tried = pg.ScatterPlotItem(symbol="o", size=8)
        self._pen = pg.mkPen(self.theme.foreground, width=0.8)
        self.exact = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(
            self.theme.error, width=1, style=Qt.PenStyle.DashLine))
        for item in (self.threshold, self.recorded, self.tried, self.exact):
            self.plot.addItem(item, ignoreBounds=True)
        self.plot_widget.setToolTip("Grey: the recorded scores. Filled dots: where each unit "
                                    "would drop with the settings tried; hollow: where it did")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot_widget)

    def _score_at(self, unit: int, check: int | None) -> float:
        scores = self.history.score_matrix()
        if check is None or not 0 <= check < scores.shape[0]:
            return 0.0
        column = scores[: check + 1, unit]
        known = column[np.isfinite(column)]
        return float(known[-1]) if known.size else 0.0

    def show_result(self, result: WhatIf) -> None:
        tried = [(u.drop_epoch, self._score_at(i, u.drop_check), i)
                 for i, u in enumerate(result.units) if u.drop_epoch is not None]
        self.tried.setData([t[0] for t in tried], [t[1] for t in tried],
                           brush=[self.brushes[t[2]] for t in tried], pen=self._pen)
        done = [(u.recorded_drop_epoch, self._score_at(i, u.recorded_drop_check))
                for i, u in enumerate(result.units) if u.recorded_drop_epoch is not None]
        self.recorded.setData([d[0] for d in done], [d[1] for d in done])
        thr = float(result.policy.threshold)
        if not math.isclose(float(self.threshold.value()), thr):
            self.threshold.blockSignals(True)
            self.threshold.setPos(thr)
            self.threshold.blockSignals(False)
        first = result.first_difference_epoch
        self.exact.setVisible(first is not None)
        if first is not None:
            self.exact.setPos(first)
