"""Two stored runs side by side: curves overlaid per epoch, savings, drop timelines.

The figures come from the engine's report code (the runs' :class:`~learndrop.core.report.RunData`
and the report's comparison table), so the window, the command line's ``compare`` and the
exported reports agree. The second run is the reference: accuracy and speed are given
against it (compare a Learn&Drop run with its baseline in that order).
"""

from __future__ import annotations

import math
from html import escape

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QResizeEvent
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

from learndrop.core.format import duration
from learndrop.core.report import RunData
from learndrop.core.report import tables as tables

from ..theme import current_theme
from ..views import ComparePlots, run_colors

__all__ = ["CompareDialog"]


class CompareDialog(QDialog):
    """Compare run ``first`` with run ``reference``.

    ``export_requested(first_id, reference_id)`` when the user asks for a report of the
    comparison.
    """

    export_requested = Signal(int, int)

    def __init__(self, first: RunData, reference: RunData,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs: list[RunData] = [first, reference]
        self.labels = [d.record.label for d in self.runs]
        if self.labels[0] == self.labels[1]:
            self.labels = [d.record.name for d in self.runs]
        self.setWindowTitle(f"{self.labels[0]} compared with {self.labels[1]}")
        self.theme = current_theme()
        self.colors = run_colors(self.theme.dark)

        self.header = QLabel()
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setWordWrap(True)
        self.plots = ComparePlots(self.runs, self.labels, self.colors, self.theme,
                                  self.font().pointSizeF())
        self.table = QTableWidget()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(True)  # a long cell (the drop rule) wraps, not cut off

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
                             f"speed are given against {self.plots.shown[1]}."), 1)
        row.addWidget(buttons)
        lay.addLayout(row)

        self._draw_header()
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

    def _table_rows(self) -> list[list[str]]:
        """The comparison table's rows: a label, then the text for each run."""
        ref = self.runs[1]
        _head, rows = tables.comparison_rows(self.runs, reference=ref)
        wanted = ("Drop rule", "Status", "Epochs", "Wall time", "Validation accuracy",
                  "Accuracy vs",
                  "Speed-up vs", "Training FLOPs saved", "Forward FLOPs saved",
                  "Time saved, measured", "Units dropped")
        keep: list[list[str]] = []
        for key in wanted:
            for r in rows:
                if r[0] == key or (key.endswith("vs") and r[0].startswith(key)):
                    label = r[0].replace(ref.name, "reference") if key.endswith("vs") else r[0]
                    keep.append([label, *r[1:]])
        eff = [s.efficiency_total if (s := d.savings()) else None for d in self.runs]
        keep.insert(len(keep) - 1, ["Efficiency (measured / predicted)",
                                    *[f"{e:.2f}" if isinstance(e, (int, float)) and
                                      math.isfinite(e) else "–" for e in eff]])
        for r in keep:
            if r[0].endswith("vs reference"):
                r[2] = "reference"
            if r[0] == "Units dropped":
                r[1:] = [f"{len(d.drops)} of {sum(not u.is_head for u in d.units)}"
                         for d in self.runs]
        at = next((k for k, r in enumerate(keep) if r[0] == "Time saved, measured"), None)
        if at is not None:
            keep.insert(at + 1, ["Time saved, predicted from FLOPs",
                                 *[duration(s.predicted_time_saved_s_total if s else None,
                                            precise=True)
                                   for s in (d.savings() for d in self.runs)]])
        return keep

    def _fill_table(self) -> None:
        keep = self._table_rows()
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
                item.setToolTip(text)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        header = self.table.horizontalHeader()
        header.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for c in (1, 2):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.Stretch)
        self.table.resizeRowsToContents()

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Wrapped cells grow or shrink with their columns (once the columns are laid out)."""
        super().resizeEvent(event)
        QTimer.singleShot(0, self.table.resizeRowsToContents)

    # ---- queries (tests, scripts) ------------------------------------------------------------
    def value(self, row_label: str, run: int) -> str:
        """The table's text for ``row_label`` (start of the label) and run 0 or 1."""
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 0)
            if item is not None and item.text().startswith(row_label):
                cell = self.table.item(r, run + 1)
                return cell.text() if cell is not None else ""
        raise KeyError(row_label)
