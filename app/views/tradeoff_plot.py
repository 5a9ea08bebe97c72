"""Any setting or result of many runs against any other, one point per run (or per group of
runs that differ only by seed: the group's mean). By default the trade-off a user chooses
from: training time saved against the accuracy difference to the baseline. Clicking a point
asks for its run (``run_clicked(run_id)``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from learndrop.core import format as fmt
from learndrop.core.report import many as many_runs

from ..theme import apply_plot_theme, current_theme
from .runs_overlay import run_palette

if TYPE_CHECKING:  # the records come from the run library; the plot only reads them
    from learndrop.core.store import RunRecord

__all__ = ["TradeoffPlot", "axis_choices"]


def axis_choices(records: Sequence[RunRecord]) -> list[tuple[str, str]]:
    """(key, label): the results, then the settings that differ, then every other setting."""
    differ = many_runs.differing_settings(records)
    others: list[str] = []
    for r in records:
        others += [p for p in many_runs.flat_config(r.config) if p not in differ
                   and p not in others]
    return ([(k, label) for k, label in many_runs.RESULTS] + [(p, p) for p in differ]
            + [(p, p) for p in others])


#: results that are shares, drawn in percent (or percentage points for a difference)
_PERCENT = {"final_accuracy": "%", "best_accuracy": "%", "train_flops_saved": "%",
            "time_saved": "%", "accuracy_difference": "points"}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    return float(value) if fmt.is_number(value) else None


class TradeoffPlot(QWidget):
    """The scatter of ``records``; ``labels`` name the runs."""

    run_clicked = Signal(int)

    def __init__(self, records: Sequence[RunRecord], labels: Sequence[str],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.records, self.labels = list(records), list(labels)
        self.results = many_runs.run_results(self.records)
        self.theme = current_theme()
        self.x_box, self.y_box = QComboBox(), QComboBox()
        for key, label in axis_choices(self.records):
            self.x_box.addItem(label, key)
            self.y_box.addItem(label, key)
        self.x_box.setCurrentIndex(self.x_box.findData(many_runs.DEFAULT_X))
        self.y_box.setCurrentIndex(self.y_box.findData(many_runs.DEFAULT_Y))
        self.grouped = QCheckBox("Group seeds")
        self.grouped.setToolTip("One point per group of runs that differ only by seed (their "
                                "mean)")
        top = QHBoxLayout()
        for w in (QLabel("x:"), self.x_box, QLabel("y:"), self.y_box, self.grouped):
            top.addWidget(w)
        top.addStretch(1)
        self.note = QLabel()
        self.plot_widget = pg.PlotWidget()
        apply_plot_theme(self.plot_widget, self.theme)
        self.plot = self.plot_widget.getPlotItem()
        self.plot.setMenuEnabled(False)
        for side in ("left", "bottom"):
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.differing = many_runs.differing_settings(self.records)
        self.texts: list[pg.TextItem] = []
        self.scatter = pg.ScatterPlotItem(size=11, hoverable=True)
        self.scatter.sigClicked.connect(self._clicked)
        self.plot.addItem(self.scatter)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.plot_widget, 1)
        lay.addWidget(self.note)
        for box in (self.x_box, self.y_box):
            box.currentIndexChanged.connect(lambda *_: self.redraw())
        self.grouped.toggled.connect(lambda *_: self.redraw())
        #: the points drawn: (x, y, run id, label)
        self.points: list[tuple[float, float, int, str]] = []
        self.redraw()

    def _value(self, record: RunRecord, key: str) -> Any:
        return many_runs.values_of(record, self.results[record.id]).get(key)

    def redraw(self) -> None:
        xk, yk = str(self.x_box.currentData()), str(self.y_box.currentData())
        sx, sy = (100.0 if k in _PERCENT else 1.0 for k in (xk, yk))
        self.plot.setLabel("bottom", self.x_box.currentText()
                           + (f" ({_PERCENT[xk]})" if xk in _PERCENT else ""))
        self.plot.setLabel("left", self.y_box.currentText()
                           + (f" ({_PERCENT[yk]})" if yk in _PERCENT else ""))
        ids = [r.id for r in self.records]
        points: list[tuple[float, float, int, str]] = []
        groups = (many_runs.seed_groups(self.records) if self.grouped.isChecked()
                  else [[r] for r in self.records])
        for group in groups:
            xs = [_number(self._value(r, xk)) for r in group]
            ys = [_number(self._value(r, yk)) for r in group]
            pairs = [(a, b) for a, b in zip(xs, ys) if a is not None and b is not None]
            if not pairs:
                continue
            label = many_runs.run_label(group[0], self.differing) + (
                f" (mean of {len(pairs)})" if len(group) > 1 else
                "" if self.grouped.isChecked() else f" ({self.labels[ids.index(group[0].id)]})")
            points.append((sx * float(np.mean([p[0] for p in pairs])),
                           sy * float(np.mean([p[1] for p in pairs])), group[0].id, label))
        self.points = points
        colors = run_palette(len(points))
        self.scatter.setData([{"pos": (p[0], p[1]), "data": p[2], "brush": pg.mkBrush(c),
                               "pen": pg.mkPen(self.theme.foreground), "symbol": "o"}
                              for p, c in zip(points, colors)])
        for text in self.texts:
            self.plot.removeItem(text)
        self.texts = []
        at_x, at_y = [p[0] for p in points], [p[1] for p in points]
        span_x = ((max(at_x) - min(at_x)) or 1.0) if points else 1.0
        span_y = ((max(at_y) - min(at_y)) or 1.0) if points else 1.0
        seen: dict[tuple[int, int], int] = {}
        for p, c in zip(points, colors):
            spot = (round(p[0] / span_x * 12), round(p[1] / span_y * 12))
            k = seen.get(spot, 0)  # labels of points close together: stacked
            seen[spot] = k + 1
            text = pg.TextItem(p[3], color=c, anchor=(-0.05, 1 - 1.1 * k))
            text.setPos(p[0], p[1])
            self.plot.addItem(text)
            self.texts.append(text)
        left = len(groups) - len(points)
        self.note.setText(
            f"{len(points)} point{'s' if len(points) != 1 else ''}; click one to open its run"
             + (f"; {left} without both values (a run without a baseline has no accuracy "
                f"difference)" if left else ""))
        if points:  # room on the right for the labels
            self.plot.setXRange(min(at_x) - 0.05 * span_x, max(at_x) + 0.35 * span_x,
                                padding=0)
            self.plot.setYRange(min(at_y) - 0.15 * span_y, max(at_y) + 0.15 * span_y,
                                padding=0)

    def _clicked(self, _item: Any, spots: Any, *_: Any) -> None:
        for spot in spots[:1]:
            self.run_clicked.emit(int(spot.data()))

    def click_point(self, k: int) -> None:
        """Click point ``k`` (as a person would; for tests and scripts)."""
        self.run_clicked.emit(self.points[k][2])
