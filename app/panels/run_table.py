"""The run history's table: the store's runs as rows (display text, sort keys, filter text,
tooltips, status colours) in a sortable view with a filter line and a run count."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from learndrop.core.report import tables as fmt

from ..theme import current_theme

if TYPE_CHECKING:  # the records come from the run library; the table only reads them
    from learndrop.core.store import RunRecord

__all__ = ["RunTable", "RunTableModel", "COLUMNS", "CREATED", "SORT_ROLE", "FILTER_ROLE"]

COLUMNS = ("Name", "Status", "Accuracy", "Saved", "Wall time", "Epochs", "Model", "Data set",
           "Created")
COLUMN_TIPS = ("Display name, or the run's name",
               "finished, running, stopped, cancelled, failed or interrupted",
               "Final validation accuracy",
               "Training FLOPs saved over the run (baseline: a run without dropping)",
               "Wall-clock time of the run", "Epochs done / planned", "Model", "Data set",
               "When the run started")
CREATED = 8
SORT_ROLE = Qt.ItemDataRole.UserRole
FILTER_ROLE = Qt.ItemDataRole.UserRole + 1
_NUMERIC = {2, 3, 4, 5}
_ROOT = QModelIndex()


#: the date and time a default run name ends with (``small_cnn-digits-20261201-153012``)
_STAMPED = re.compile(r"\d{8}-\d{6}(?:-\d+)?(?: \u270e)?$")


class NameDelegate(QStyledItemDelegate):
    """Run names too long for their column lose their middle when they end with the date and
    time they were started (the model at the start and the time at the end tell runs apart),
    else their end."""

    def initStyleOption(self, option: QStyleOptionViewItem,
                        index: QModelIndex | QPersistentModelIndex) -> None:
        super().initStyleOption(option, index)
        text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        option.textElideMode = (Qt.TextElideMode.ElideMiddle if _STAMPED.search(text)
                                else Qt.TextElideMode.ElideRight)


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else -1.0


class RunTableModel(QAbstractTableModel):
    """The store's runs as table rows (display text, sort keys, tooltips)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.records: list[RunRecord] = []

    def set_records(self, records: list[RunRecord]) -> bool:
        """Show ``records``; False (and nothing redrawn) when they are what is shown."""
        if records == self.records:
            return False
        self.beginResetModel()
        self.records = list(records)
        self.endResetModel()
        return True

    def record(self, row: int) -> RunRecord:
        return self.records[row]

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.records)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMN_TIPS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r, col = self.records[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(r, col)
        if role == SORT_ROLE:
            return self._key(r, col)
        if role == FILTER_ROLE:
            extra = f" {r.name} {r.note} {r.message}" if col == 0 else ""
            return self._text(r, col) + extra
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(r)
        if role == Qt.ItemDataRole.ForegroundRole and col == 1:
            theme = current_theme()
            return {"running": theme.states["learning"], "failed": theme.error,
                    "interrupted": theme.warning, "cancelled": theme.muted}.get(r.status)
        if role == Qt.ItemDataRole.TextAlignmentRole and col in _NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _text(r: RunRecord, col: int) -> str:
        if col == 0:
            return r.label + (" ✎" if r.note.strip() else "")
        texts = (r.status, fmt.pct(r.final_val_accuracy),
                 fmt.pct(r.train_flops_saved_total) if r.drop_enabled else "baseline",
                 fmt.duration(r.wall_time_s), f"{r.epochs_done}/{r.epochs_planned}",
                 r.model or "–", r.dataset or "–", fmt.when(r.created))
        return texts[col - 1]

    @staticmethod
    def _key(r: RunRecord, col: int) -> Any:
        keys = (r.label.lower(), r.status, _num(r.final_val_accuracy),
                _num(r.train_flops_saved_total) if r.drop_enabled else -2.0, _num(r.wall_time_s),
                r.epochs_done, r.model, r.dataset, r.created)
        return keys[col]

    @staticmethod
    def _tooltip(r: RunRecord) -> str:
        lines = [r.name + (f" (shown as {r.display_name})" if r.display_name else ""),
                 f"{r.status}" + (f": {r.message}" if r.message else ""),
                 f"{r.drops} unit{'s' if r.drops != 1 else ''} dropped · mode {r.mode}"
                 if r.drop_enabled else "baseline: the full network, no dropping",
                 f"folder: {r.output_dir or '–'}"]
        if r.note.strip():
            lines.append("note: " + r.note.strip())
        return "\n".join(lines)


class RunTable(QWidget):
    """The runs in a sortable table under a filter line and a run count. When the runs change,
    the selection (by run id) is kept, and the columns are sized once, then left to the user.

    ``selection_changed()`` when the selected or the shown runs change; ``activated()`` on a
    double click; ``menu_requested(pos)`` asks for a context menu at ``pos`` (global).
    """

    selection_changed = Signal()
    activated = Signal()
    menu_requested = Signal(QPoint)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._sized = False
        self.model = RunTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterRole(FILTER_ROLE)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self._pending: list[RunRecord] | None = None
        self._pointer_in = False
        self._hold_timer = QTimer(self)
        self._hold_timer.setSingleShot(True)
        self._hold_timer.setInterval(500)
        self._hold_timer.timeout.connect(self._apply_pending)
        self._build_table()
        self.table.viewport().installEventFilter(self)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter: name, status, model, data set, note…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._on_filter)
        self.count_label = QLabel("")
        self._top = QHBoxLayout()
        self._top.addWidget(self.filter_edit, 1)
        self._top.addWidget(self.count_label)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(self._top)
        lay.addWidget(self.table, 1)

    def _build_table(self) -> None:
        self.table = QTableView()
        self.table.setObjectName("run-history-table")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(CREATED, Qt.SortOrder.DescendingOrder)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.name_delegate = NameDelegate(self.table)
        self.table.setItemDelegateForColumn(0, self.name_delegate)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.table.doubleClicked.connect(lambda _i: self.activated.emit())
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(
            lambda pos: self.menu_requested.emit(self.table.viewport().mapToGlobal(pos)))
        self.table.selectionModel().selectionChanged.connect(
            lambda *_: self.selection_changed.emit())

    def add_tool(self, action: QAction) -> QToolButton:
        """A small button for ``action`` at the end of the filter line."""
        button = QToolButton()
        button.setAutoRaise(True)
        button.setDefaultAction(action)
        self._top.addWidget(button)
        return button

    # ---- content -----------------------------------------------------------------------------
    @property
    def records(self) -> list[RunRecord]:
        """Every run, shown or filtered out."""
        return self.model.records

    def set_records(self, records: list[RunRecord]) -> None:
        """Show ``records``, keeping the selected runs selected and the current one current,
        and the rows shown where they were. New runs wait while the pointer is on the table
        or a menu of it is open, so that no row moves under a click."""
        if self._holding():
            self._pending = list(records)
            self._hold_timer.start()
            return
        self._pending = None
        selected = [r.id for r in self.selected_runs()]
        current = self._current_id()
        anchor = self._anchor()
        if self.model.set_records(records):
            self._select_ids(selected)
            self._set_current(current)
            self._keep_in_place(anchor)
            if not self._sized and records:  # once: later the user's widths are kept
                self._sized = True
                self.table.resizeColumnsToContents()
                most = self.fontMetrics().averageCharWidth() * 36
                room = self.table.columnWidth(0) + self.fontMetrics().height()  # + margins
                self.table.setColumnWidth(0, min(room, most))
                self._fit_status_column()
        self.update_count()
        self.selection_changed.emit()

    @property
    def pending(self) -> bool:
        """Whether newer runs wait to be shown (until the pointer leaves the table)."""
        return self._pending is not None

    def _holding(self) -> bool:
        return self._pointer_in or QApplication.activePopupWidget() is not None

    def _apply_pending(self) -> None:
        if self._pending is not None:
            if self._holding():
                self._hold_timer.start()
            else:
                self.set_records(self._pending)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The pointer on the table's rows holds back changes to them."""
        if watched is self.table.viewport():
            if event.type() == QEvent.Type.Enter:
                self._pointer_in = True
            elif event.type() == QEvent.Type.Leave:
                self._pointer_in = False
                self._apply_pending()
        return super().eventFilter(watched, event)

    def _current_id(self) -> int | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        return self.model.record(self.proxy.mapToSource(index).row()).id

    def _set_current(self, run_id: int | None) -> None:
        """Make run ``run_id`` the current row again (the selection left as it is)."""
        row = self._row_of(run_id)
        if row is not None:
            self.table.selectionModel().setCurrentIndex(
                self.proxy.index(row, 0), QItemSelectionModel.SelectionFlag.NoUpdate)

    def _row_of(self, run_id: int | None) -> int | None:
        if run_id is None:
            return None
        return next((row for row, rec in enumerate(self.runs()) if rec.id == run_id), None)

    def _anchor(self) -> tuple[int, int] | None:
        """A run on screen and its y in the viewport: the first selected run shown, else the
        top row."""
        rows = sorted(i.row() for i in self.table.selectionModel().selectedRows())
        top = self.table.rowAt(0)
        row = next((r for r in rows if self.table.rowViewportPosition(r) >= 0), top)
        if row < 0 or row >= self.proxy.rowCount():
            return None
        rec = self.model.record(self.proxy.mapToSource(self.proxy.index(row, 0)).row())
        return rec.id, self.table.rowViewportPosition(row)

    def _keep_in_place(self, anchor: tuple[int, int] | None) -> None:
        """Scroll so that the anchor run is where it was (as far as the table scrolls)."""
        if anchor is None:
            return
        row = self._row_of(anchor[0])
        if row is None:
            return
        self.table.verticalScrollBar().setValue(
            self.table.verticalHeader().sectionPosition(row) - anchor[1])

    def _fit_status_column(self) -> None:
        """The status column fits its longest word, whichever statuses there are now."""
        metrics = self.table.fontMetrics()
        words = ("interrupted", "cancelled", "finished", "running", COLUMNS[1])
        need = max(metrics.horizontalAdvance(w) for w in words) + metrics.height()
        self.table.setColumnWidth(1, max(self.table.columnWidth(1), need))

    def update_count(self) -> None:
        shown, total = self.proxy.rowCount(), len(self.model.records)
        self.count_label.setText(f"{total} run{'s' if total != 1 else ''}" if shown == total
                                 else f"{shown} of {total} runs")

    def runs(self) -> list[RunRecord]:
        """The runs in the table, in the table's order (after the filter)."""
        return [self.model.record(self.proxy.mapToSource(self.proxy.index(r, 0)).row())
                for r in range(self.proxy.rowCount())]

    def selected_runs(self) -> list[RunRecord]:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.model.record(self.proxy.mapToSource(self.proxy.index(r, 0)).row())
                for r in rows]

    def select_run(self, ref: str | int) -> RunRecord | None:
        """Select the run with this id, name or display name (None when not shown)."""
        for row, rec in enumerate(self.runs()):
            if str(ref) in (str(rec.id), rec.name, rec.display_name):
                self.table.selectRow(row)
                return rec
        return None

    def _select_ids(self, ids: list[int]) -> None:
        self.table.clearSelection()
        flags = QItemSelectionModel.SelectionFlag
        for row, rec in enumerate(self.runs()):
            if rec.id in ids:
                self.table.selectionModel().select(self.proxy.index(row, 0),
                                                   flags.Select | flags.Rows)

    def _on_filter(self, text: str) -> None:
        self.proxy.setFilterFixedString(text.strip())
        self.update_count()
        self.selection_changed.emit()
