"""Two stored runs side by side: curves overlaid per epoch, savings, drop timelines.

The figures come from the engine's report code (:func:`~learndrop.core.report.load_run` and
the report's comparison table), so the window, the command line's ``compare`` and the
exported reports agree. The second run is the reference: accuracy and speed are given
against it (compare a Learn&Drop run with its baseline in that order).
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from learndrop.core.report import RunData, load_run
from learndrop.core.report import tables as tables
from learndrop.core.store import RunStore

from .theme import apply_plot_theme, current_theme

__all__ = ["CompareView", "run_colors"]

_COLORS_LIGHT = ("#1f78c8", "#d9532b")
_COLORS_DARK = ("#4fb3ff", "#ff7a4d")


def run_colors(dark: bool) -> tuple[QColor, QColor]:
    """The two runs' colours (first run, reference run)."""
    a, b = _COLORS_DARK if dark else _COLORS_LIGHT
    return QColor(a), QColor(b)


def _epoch_x(d: RunData, step: int) -> float:
    return d.epoch_of_step(step)


def _short(text: str, n: int = 34) -> str:
    """``text`` shortened in the middle to at most ``n`` characters."""
    return text if len(text) <= n else text[: n // 2 - 1] + "…" + text[-(n - n // 2):]


def _finite(values: list[Any]) -> np.ndarray:
    return np.array([v if isinstance(v, (int, float)) and math.isfinite(v) else np.nan
                     for v in values], dtype=np.float64)


class CompareView(QDialog):
    """Compare run ``first`` with run ``reference`` (both looked up in ``store``).

    ``export_requested(first_id, reference_id)`` when the user asks for a report of the
    comparison. Raises the store's error (one line) when a run cannot be read.
    """

    export_requested = Signal(int, int)

    def __init__(self, store: RunStore, first: str | int, reference: str | int,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs: list[RunData] = [load_run(store, first), load_run(store, reference)]
        self.labels = [d.record.label for d in self.runs]
        if self.labels[0] == self.labels[1]:
            self.labels = [d.record.name for d in self.runs]
        self.setWindowTitle(f"{self.labels[0]} compared with {self.labels[1]}")
        self.theme = current_theme()
        self.colors = run_colors(self.theme.dark)
        self.curves: dict[str, list[pg.PlotDataItem]] = {}

        self.header = QLabel()
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setWordWrap(True)
        self.plots = pg.GraphicsLayoutWidget()
        self.legend = pg.LegendItem(labelTextColor=self.theme.foreground,
                                    labelTextSize=f"{max(7.0, self.font().pointSizeF()):.1f}pt")
        self.legend.setColumnCount(2)
        self.plots.addItem(self.legend, row=0, col=0, colspan=2)
        self.loss_plot = self.plots.addPlot(row=1, col=0, title="Loss")
        self.acc_plot = self.plots.addPlot(row=1, col=1, title="Accuracy")
        self.drop_plot = self.plots.addPlot(row=2, col=0, colspan=2,
                                            title="Drops (hover a marker for the unit)")
        self.plots.ci.layout.setRowStretchFactor(1, 3)
        self.plots.ci.layout.setRowStretchFactor(2, 1)
        self.table = QTableWidget()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        export = buttons.addButton("Export report…", QDialogButtonBox.ButtonRole.ActionRole)
        export.clicked.connect(lambda: self.export_requested.emit(
            self.runs[0].record.id, self.runs[1].record.id))
        buttons.rejected.connect(self.reject)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.plots)
        split.addWidget(self.table)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        lay = QVBoxLayout(self)
        lay.addWidget(self.header)
        lay.addWidget(split, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel(f"Solid lines: validation · dashed: training. Accuracy and "
                             f"speed are given against {_short(self.labels[1])}."), 1)
        row.addWidget(buttons)
        lay.addLayout(row)

        self._draw_header()
        self._draw_curves()
        self._draw_drops()
        self._fill_table()
        fh = self.fontMetrics().height()
        self.resize(fh * 80, fh * 40)
        split.setSizes([fh * 48, fh * 32])

    # ---- parts -------------------------------------------------------------------------------
    def _draw_header(self) -> None:
        parts = []
        for d, label, color in zip(self.runs, self.labels, self.colors):
            what = tables.mode_text(d)
            parts.append(f"<span style='color:{color.name()}'>&#9632;</span> "
                         f"<b>{escape(label)}</b> <span style='color:gray'>"
                         f"({escape(d.record.model)}, {escape(d.record.dataset)}, "
                         f"{escape(what)}, {escape(d.record.status)})</span>")
        self.header.setText(" &nbsp;&nbsp; ".join(parts))

    def _draw_curves(self) -> None:
        apply_plot_theme(self.plots, self.theme)
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
            self.legend.addItem(items[0], _short(label))
        last = max([float(d.start.epochs) for d in self.runs] + [1.0])
        self.loss_plot.setXRange(0, last, padding=0.02)
        self.drop_plot.setXRange(0, last, padding=0.02)

    def _draw_drops(self) -> None:
        plot = self.drop_plot
        plot.setMouseEnabled(x=True, y=False)
        plot.getAxis("left").setTicks([[(1.0, " "), (0.0, " ")]])
        plot.getAxis("left").setWidth(self.loss_plot.getAxis("left").width())
        plot.setYRange(-0.7, 1.75, padding=0)
        self.drop_markers: list[pg.ScatterPlotItem] = []
        for i, (d, color) in enumerate(zip(self.runs, self.colors)):
            y = 1.0 - i
            end = _epoch_x(d, d.epochs[-1].step) if d.epochs else 0.0
            plot.plot([0.0, max(end, 1e-9)], [y, y], pen=pg.mkPen(self.theme.muted, width=1))
            name = pg.TextItem(_short(self.labels[i], 48), color=color, anchor=(0, 1))
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
            if not d.drops:
                text = pg.TextItem("no drops" if d.record.drop_enabled else
                                   "baseline: no dropping", color=self.theme.muted,
                                   anchor=(0.5, 0))
                text.setPos(end / 2 if end else 0.1, y)
                plot.addItem(text)

    @staticmethod
    def _drop_tip(d: RunData, drop: Any) -> str:
        score = "by hand" if drop.reason == "manual" else f"score {tables.score(drop.score)}"
        return (f"{drop.unit} dropped in epoch {d.epoch_number(drop.step)} "
                f"(at {drop.epoch:.2f} epochs, step {drop.step}, {score})")

    def _fill_table(self) -> None:
        ref = self.runs[1]
        _head, rows = tables.comparison_rows(self.runs, reference=ref)
        wanted = ("Status", "Epochs", "Wall time", "Validation accuracy", "Accuracy vs",
                  "Speed-up vs", "Training FLOPs saved", "Forward FLOPs saved",
                  "Time saved, measured", "Units dropped")
        keep: list[list[str]] = []
        for key in wanted:
            for r in rows:
                if r[0] == key or (key.endswith("vs") and r[0].startswith(key)):
                    label = r[0].replace(ref.name, "reference") if key.endswith("vs") else r[0]
                    keep.append([label, *r[1:]])
        eff = [d.savings().efficiency for d in self.runs]
        keep.insert(len(keep) - 1, ["Efficiency (measured / predicted)",
                                    *[f"{e:.2f}" if isinstance(e, (int, float)) and
                                      math.isfinite(e) else "–" for e in eff]])
        for r in keep:
            if r[0].endswith("vs reference"):
                r[2] = "reference"
            if r[0] == "Units dropped":
                r[1:] = [f"{len(d.drops)} of {sum(not u.is_head for u in d.units)}"
                         for d in self.runs]
        self.table.setColumnCount(3)
        self.table.setRowCount(len(keep))
        self.table.setHorizontalHeaderLabels(["", *self.labels])
        for c, color in enumerate(self.colors, start=1):
            item = self.table.horizontalHeaderItem(c)
            if item is None:
                continue
            item.setForeground(color)
            item.setToolTip(self.runs[c - 1].record.name)
        for r, values in enumerate(keep):
            for c, text in enumerate(values):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        header = self.table.horizontalHeader()
        header.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for c in (1, 2):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.Stretch)

    # ---- queries (tests, scripts) ------------------------------------------------------------
    def value(self, row_label: str, run: int) -> str:
        """The table's text for ``row_label`` (start of the label) and run 0 or 1."""
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 0)
            if item is not None and item.text().startswith(row_label):
                cell = self.table.item(r, run + 1)
                return cell.text() if cell is not None else ""
        raise KeyError(row_label)
