"""Many stored runs side by side (any number: the runs selected in the history, or all
listed).

- **Runs**: a row per run with settings as columns (by default those that differ among the
  runs; "Columns…" chooses any), the final and best accuracy, wall time, savings; a filter.
- **Curves**: loss, accuracy or a unit's learning score of every run overlaid, against epoch,
  step or wall time; runs that differ only by seed as a mean with a band.
- **Settings that differ**: only the settings whose values are not the same everywhere.
- **Trade-off**: any setting or result against any other (by default training time saved
  against accuracy difference), a point per run or per seed group; a click opens the run.

``open_requested(run_id)`` asks to open a run (double-click a row, click a point).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from learndrop.core import format as fmt
from learndrop.core.report import RunData
from learndrop.core.report import many as many_runs

from ..views.runs_overlay import RunsOverlay
from ..views.tradeoff_plot import TradeoffPlot

__all__ = ["RunsDialog"]

_RESULT_TEXT = {
    "final_accuracy": lambda v: fmt.percent(v, 2), "best_accuracy": lambda v: fmt.percent(v, 2),
    "wall_time_s": lambda v: fmt.duration(v), "train_flops_saved": lambda v: fmt.percent(v),
    "time_saved": lambda v: fmt.percent(v),
    "accuracy_difference": lambda v: f"{v * 100:+.2f} points", "drops": lambda v: f"{v:.0f}",
    "epochs": lambda v: f"{v:.0f}"}


class RunsDialog(QDialog):
    open_requested = Signal(int)

    def __init__(self, runs: Sequence[RunData], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs = list(runs)
        self.records = [d.record for d in self.runs]
        self.labels = [r.label for r in self.records]
        if len(set(self.labels)) < len(self.labels):
            self.labels = [r.name for r in self.records]
        self.setWindowTitle(f"{len(self.runs)} runs side by side")
        self.results = many_runs.run_results(self.records)
        self.differing = many_runs.differing_settings(self.records)
        #: the setting columns of the runs table (default: the settings that differ)
        self.columns: list[str] = list(self.differing)

        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter runs: any text of a row")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._apply_filter)
        self.columns_button = QToolButton()
        self.columns_button.setText("Columns…")
        self.columns_button.setToolTip("Choose the settings shown as columns (by default "
                                       "those that differ among these runs)")
        self.columns_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.columns_button.setMenu(self._columns_menu())
        self.table = QTableWidget()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSortingEnabled(True)
        self.table.cellDoubleClicked.connect(
            lambda row, _c: self.open_requested.emit(self._row_run(row)))
        runs_tab = QWidget()
        lay = QVBoxLayout(runs_tab)
        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(self.columns_button)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addWidget(QLabel("Double-click a run to open it."))

        self.overlay = RunsOverlay(self.runs, self.labels)
        self.diff = QTableWidget()
        self.diff.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tradeoff = TradeoffPlot(self.records, self.labels)
        self.tradeoff.run_clicked.connect(self.open_requested.emit)
        self.tabs = QTabWidget()
        self.tabs.addTab(runs_tab, "Runs")
        self.tabs.addTab(self.overlay, "Curves")
        self.tabs.addTab(self.diff, "Settings that differ")
        self.tabs.addTab(self.tradeoff, "Trade-off")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        main = QVBoxLayout(self)
        main.addWidget(self.tabs, 1)
        main.addWidget(buttons)
        self.fill_table()
        self._fill_diff()
        fh = self.fontMetrics().height()
        self.resize(fh * 80, fh * 42)

    # ---- the runs table ---------------------------------------------------------------------
    def _columns_menu(self) -> QMenu:
        menu = QMenu(self)
        paths: list[str] = list(self.differing)
        for r in self.records:
            paths += [p for p in many_runs.flat_config(r.config) if p not in paths]
        for path in paths:
            action = QAction(path + ("  (differs)" if path in self.differing else ""), menu)
            action.setCheckable(True)
            action.setChecked(path in self.columns)
            action.setData(path)
            action.toggled.connect(lambda on, p=path: self.set_column(p, on))
            menu.addAction(action)
        return menu

    def set_column(self, path: str, shown: bool) -> None:
        """Show or hide setting ``path`` as a column of the runs table."""
        if shown and path not in self.columns:
            self.columns.append(path)
        elif not shown and path in self.columns:
            self.columns.remove(path)
        self.fill_table()

    def headers(self) -> list[str]:
        return ["run", *self.columns, *[label for _k, label in many_runs.RESULTS]]

    def fill_table(self) -> None:
        self.table.setSortingEnabled(False)
        heads = self.headers()
        self.table.clear()
        self.table.setColumnCount(len(heads))
        self.table.setRowCount(len(self.records))
        self.table.setHorizontalHeaderLabels(heads)
        for row, (r, label) in enumerate(zip(self.records, self.labels)):
            flat = many_runs.flat_config(r.config)
            cells: list[tuple[str, Any]] = [(label, label)]
            cells += [(many_runs.setting_text(flat.get(p, "")), flat.get(p)) for p in self.columns]
            for key, _label in many_runs.RESULTS:
                value = self.results[r.id].get(key)
                cells.append((_RESULT_TEXT[key](value) if fmt.is_number(value) else "-",
                              value))
            for col, (text, value) in enumerate(cells):
                item = _Item(text, value)
                item.setToolTip(text)
                if col == 0:
                    item.setData(Qt.ItemDataRole.UserRole + 1, r.id)
                    item.setToolTip(r.name)
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.setSortingEnabled(True)
        self._apply_filter(self.filter.text())

    def _row_run(self, row: int) -> int:
        item = self.table.item(row, 0)
        return int(item.data(Qt.ItemDataRole.UserRole + 1)) if item is not None else -1

    def _apply_filter(self, text: str) -> None:
        words = text.lower().split()
        for row in range(self.table.rowCount()):
            line = " ".join(_text(self.table.item(row, c))
                            for c in range(self.table.columnCount())).lower()
            self.table.setRowHidden(row, not all(w in line for w in words))

    def visible_runs(self) -> list[int]:
        """The ids of the rows the filter shows, in the table's order."""
        return [self._row_run(r) for r in range(self.table.rowCount())
                if not self.table.isRowHidden(r)]

    # ---- settings that differ -----------------------------------------------------------------
    def _fill_diff(self) -> None:
        self.diff.setColumnCount(len(self.records) + 1)
        self.diff.setHorizontalHeaderLabels(["setting", *self.labels])
        rows = self.differing or []
        self.diff.setRowCount(max(len(rows), 1))
        if not rows:
            self.diff.setItem(0, 0, QTableWidgetItem("every setting is the same in these runs"))
        for row, path in enumerate(rows):
            self.diff.setItem(row, 0, QTableWidgetItem(path))
            for col, r in enumerate(self.records, start=1):
                text = many_runs.setting_text(many_runs.flat_config(r.config).get(path, "-"))
                item = QTableWidgetItem(text)
                item.setToolTip(f"{self.labels[col - 1]}: {path} = {text}")
                self.diff.setItem(row, col, item)
        self.diff.resizeColumnsToContents()

    def diff_rows(self) -> list[list[str]]:
        """The settings-that-differ table as text (for tests)."""
        return [[_text(self.diff.item(r, c)) for c in range(self.diff.columnCount())]
                for r in range(self.diff.rowCount())]


def _text(item: QTableWidgetItem | None) -> str:
    return item.text() if item is not None else ""


class _Item(QTableWidgetItem):
    """A cell that sorts by its value (numbers as numbers), shows its text."""

    def __init__(self, text: str, value: Any) -> None:
        super().__init__(text)
        self.value = value

    def __lt__(self, other: QTableWidgetItem) -> bool:
        mine, theirs = self.value, getattr(other, "value", None)
        if fmt.is_number(mine) and fmt.is_number(theirs):
            return float(mine) < float(theirs)  # type: ignore[arg-type]
        if fmt.is_number(mine) != fmt.is_number(theirs):
            return fmt.is_number(theirs)  # unknown values last
        return str(self.text()) < str(other.text())
