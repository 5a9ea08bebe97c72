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
        self.plot.setLabel("bottom", self.x_box.currentText())
        self.plot.setLabel("left", self.y_box.currentText())
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
            label = self.labels[ids.index(group[0].id)] + (
                f" (mean of {len(pairs)})" if len(group) > 1 else "")
            points.append((float(np.mean([p[0] for p in pairs])),
                           float(np.mean([p[1] for p in pairs])), group[0].id, label))
        self.points = points
        colors = run_palette(len(points))
        self.scatter.setData([{"pos": (p[0], p[1]), "data": p[2], "brush": pg.mkBrush(c),
                               "pen": pg.mkPen(self.theme.foreground), "symbol": "o"}
                              for p, c in zip(points, colors)])
        self.scatter.setToolTip("")
        left = len(groups) - len(points)
        self.note.setText(
            f"{len(points)} point{'s' if len(points) != 1 else ''}; click one to open its run"
             + (f"; {left} without both values (a run without a baseline has no accuracy "
                f"difference)" if left else ""))
        self.plot.enableAutoRange()

    def _clicked(self, _item: Any, spots: Any, *_: Any) -> None:
        for spot in spots[:1]:
            self.run_clicked.emit(int(spot.data()))

    def click_point(self, k: int) -> None:
        """Click point ``k`` (as a person would; for tests and scripts)."""
        self.run_clicked.emit(self.points[k][2])
