"""The run history: every run of the run store in a table, and what can be done with one.

Open replays a stored run into the live views (the same hooks the training bridge calls, in
the order the run emitted them); a run that is still training elsewhere (``learndrop train``
in a terminal, say) is followed live instead. While this window trains, Open and Follow are
refused with a one-line message, so the run in progress is never hidden; Compare, Export,
Rename, Note and Delete work at any time.

The table refreshes itself every few seconds while it is visible, and only reads the store
when its files changed since the last look (plus once every half minute, to notice runs
whose process died).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QAction, QCursor, QGuiApplication, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QTableView,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from learndrop.core.errors import LearnDropError
from learndrop.core.report import tables as fmt
from learndrop.core.store import RunRecord, RunStore, default_store_path, replay

from . import dialogs
from .follow import RunFollower
from .theme import current_theme

__all__ = ["HistoryPanel", "RunTableModel", "COLUMNS", "REFRESH_INTERVAL_MS"]

REFRESH_INTERVAL_MS = 3000
FULL_REFRESH_S = 30.0
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
_BUSY = ("Training is running in this window: open or follow a stored run after it ends "
         "(Compare and Export work now)")


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else -1.0


class RunTableModel(QAbstractTableModel):
    """The store's runs as table rows (display text, sort keys, tooltips)."""

    def __init__(self, parent: QWidget | None = None) -> None:
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
                 fmt.pct(r.train_flops_saved) if r.drop_enabled else "baseline",
                 fmt.duration(r.wall_time_s), f"{r.epochs_done}/{r.epochs_planned}",
                 r.model or "–", r.dataset or "–", fmt.when(r.created))
        return texts[col - 1]

    @staticmethod
    def _key(r: RunRecord, col: int) -> Any:
        keys = (r.label.lower(), r.status, _num(r.final_val_accuracy),
                _num(r.train_flops_saved) if r.drop_enabled else -2.0, _num(r.wall_time_s),
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


class HistoryPanel(QWidget):
    """The run history table with its actions.

    ``live`` is the live view that Open and Follow feed (anything with the engine hooks'
    names, ``reset()`` included); ``busy()`` says whether this window is training now.
    ``run_opened(run id, label, how)`` after Open (``how`` = "open") or Follow ("follow");
    ``following_ended(status, label)`` (status empty when following failed); ``message(text)``
    carries one-line news and problems.
    """

    run_opened = Signal(int, str, str)
    following_ended = Signal(str, str)
    message = Signal(str)

    def __init__(self, store_path: str | Path | None = None, live: Any = None,
                 busy: Callable[[], bool] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store_path = Path(store_path).expanduser() if store_path else default_store_path()
        self.live = live
        self._busy = busy or (lambda: False)
        self.store: RunStore | None = None
        self.follower: RunFollower | None = None
        self.current_run_id: int | None = None
        self.last_error = ""
        self.windows: list[QWidget] = []
        self._stamp: tuple[int, ...] | None = None
        self._last_full = 0.0

        self.model = RunTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterRole(FILTER_ROLE)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.table = QTableView()
        self.table.setObjectName("run-history-table")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(CREATED, Qt.SortOrder.DescendingOrder)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self._sized = False
        self.table.doubleClicked.connect(lambda _i: self.open_run())
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter: name, status, model, data set, note…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._on_filter)
        self.count_label = QLabel("")
        refresh = QToolButton()
        refresh.setAutoRaise(True)
        self.notice = QLabel("")
        self.notice.setObjectName("history-notice")
        self.notice.setWordWrap(True)
        self.notice.hide()

        self.toolbar = QToolBar("Run history")
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        act = self._add_action
        self.refresh_action = act("Refresh", self.refresh, "Read the run store again (F5)")
        self.refresh_action.setShortcut("F5")
        self.open_action = act("Open", self.open_run,
                               "Show the selected run in the live views (double-click)")
        self.follow_action = act("Follow live", self.follow_run,
                                 "Watch a run that is training in another program, as it goes")
        self.compare_action = act("Compare…", self.compare_with,
                                  "Compare the selected run with another (select two rows to "
                                  "compare them directly)")
        self.export_action = act("Export…", self.export_report,
                                 "Write the selected run's report as HTML, PDF, CSV or JSON")
        self.rename_action = act("Rename…", self.rename_run, "Give the run a display name")
        self.note_action = act("Note…", self.edit_note, "Write a note about the run")
        self.delete_action = act("Delete…", self.delete_run,
                                 "Delete the run from the store, with its folder")
        for action in (self.open_action, self.follow_action, self.compare_action,
                       self.export_action):
            self.toolbar.addAction(action)
        more = QToolButton()
        more.setText("More")
        more.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        more_menu = QMenu(more)
        more_menu.addActions([self.rename_action, self.note_action])
        more_menu.addSeparator()
        more_menu.addAction(self.delete_action)
        more.setMenu(more_menu)
        self.toolbar.addWidget(more)
        refresh.setDefaultAction(self.refresh_action)

        top = QHBoxLayout()
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.count_label)
        top.addWidget(refresh)
        lay = QVBoxLayout(self)
        m = self.fontMetrics().height() // 3
        lay.setContentsMargins(m, m, m, m)
        lay.addWidget(self.toolbar)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.notice)

        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_INTERVAL_MS)
        self.timer.timeout.connect(self.auto_refresh)
        self.timer.start()
        self._update_actions()

    def _add_action(self, text: str, slot: Callable[[], Any], tip: str) -> QAction:
        action = QAction(text, self)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)  # shortcuts work while the panel has focus
        return action

    # ---- reading the store -------------------------------------------------------------------
    def _open_store(self) -> RunStore | None:
        if self.store is None:
            try:
                self.store = RunStore(self.store_path)
            except LearnDropError as exc:
                self._error(exc.message)
                return None
        return self.store

    def _files_stamp(self) -> tuple[int, ...]:
        out: list[int] = []
        for suffix in ("", "-wal"):
            try:
                st = os.stat(f"{self.store_path}{suffix}")
                out += [st.st_mtime_ns, st.st_size]
            except OSError:
                out += [0, 0]
        return tuple(out)

    @Slot()
    def auto_refresh(self) -> None:
        """The timer's refresh: only while shown, and only when the store changed."""
        if not self.isVisible():
            return
        if (self._files_stamp() == self._stamp
                and time.monotonic() - self._last_full < FULL_REFRESH_S):
            return
        self.refresh(quiet=True)

    @Slot()
    def refresh(self, quiet: bool = False) -> bool:
        """Read the runs again; False (with a one-line message) when the store cannot be read."""
        store = self._open_store()
        if store is None:
            return False
        stamp = self._files_stamp()
        try:
            records = store.list_runs()
        except LearnDropError as exc:
            self._error(exc.message)
            return False
        self._stamp, self._last_full = stamp, time.monotonic()
        if self.last_error and not quiet:
            self._clear_notice()
        selected = [r.id for r in self.selected_runs()]
        if self.model.set_records(records):
            self._select_ids(selected)
            if not self._sized and records:  # once: later the user's widths are kept
                self._sized = True
                self.table.resizeColumnsToContents()
                most = self.fontMetrics().averageCharWidth() * 28
                self.table.setColumnWidth(0, min(self.table.columnWidth(0), most))
        self._update_count()
        self._update_actions()
        return True

    def _update_count(self) -> None:
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
        for row, rec in enumerate(self.runs()):
            if rec.id in ids:
                self.table.selectionModel().select(
                    self.proxy.index(row, 0),
                    self.table.selectionModel().SelectionFlag.Select
                    | self.table.selectionModel().SelectionFlag.Rows)

    def _one(self, ref: str | int | None) -> RunRecord | None:
        """The run ``ref``, or the single selected one (None with a message otherwise)."""
        store = self._open_store()
        if store is None:
            return None
        if ref is None:
            chosen = self.selected_runs()
            if len(chosen) != 1:
                self._error("select one run in the table first")
                return None
            ref = chosen[0].id
        try:
            return store.get_run(ref)
        except LearnDropError as exc:
            self._error(exc.message)
            return None

    # ---- open and follow ---------------------------------------------------------------------
    def open_run(self, ref: str | int | None = None) -> bool:
        """Replay a stored run into the live views (a run still training is followed)."""
        rec = self._one(ref)
        if rec is None or not self._can_show():
            return False
        if rec.status == "running":
            return self.follow_run(rec.id)
        assert self.store is not None
        self.stop_following()
        QGuiApplication.setOverrideCursor(QCursor(Qt.CursorShape.WaitCursor))
        try:
            events = self.store.load_events(rec.id)
            self.live.reset()
            replay(events, [self.live])
        except LearnDropError as exc:
            self._error(exc.message)
            return False
        finally:
            QGuiApplication.restoreOverrideCursor()
        self.current_run_id = rec.id
        self._info(f"Showing {rec.label} ({rec.status}) from the run history")
        self.run_opened.emit(rec.id, rec.label, "open")
        return True

    def follow_run(self, ref: str | int | None = None) -> bool:
        """Show a run that is being written elsewhere, updating as it trains."""
        rec = self._one(ref)
        if rec is None or not self._can_show():
            return False
        self.stop_following()
        self.live.reset()
        follower = RunFollower(self.store_path, rec.id, self.live, parent=self)
        follower.ended.connect(self._on_follow_ended)
        follower.failed.connect(self._on_follow_failed)
        self.follower = follower
        self.current_run_id = rec.id
        self.run_opened.emit(rec.id, rec.label, "follow")
        self._info(f"Following {rec.label} live")
        try:
            follower.start()
        except LearnDropError as exc:
            self.follower = None
            self._error(exc.message)
            return False
        return True

    @Slot()
    def stop_following(self) -> None:
        follower, self.follower = self.follower, None
        if follower is not None:
            follower.stop()
            follower.deleteLater()

    @property
    def following(self) -> bool:
        return self.follower is not None and self.follower.active

    def _can_show(self) -> bool:
        if self.live is None:
            self._error("there is no live view to show the run in")
            return False
        if self._busy():
            self._error(_BUSY)
            return False
        return True

    @Slot(str)
    def _on_follow_ended(self, status: str) -> None:
        label = self.follower.run_label if self.follower else "the run"
        self.stop_following()
        self._info(f"{label} {status}: following stopped")
        self.refresh(quiet=True)
        self.following_ended.emit(status, label)

    @Slot(str)
    def _on_follow_failed(self, message: str) -> None:
        label = self.follower.run_label if self.follower else "the run"
        self.stop_following()
        self._error(message)
        self.refresh(quiet=True)
        self.following_ended.emit("", label)

    # ---- changing runs -----------------------------------------------------------------------
    def rename_run(self, ref: str | int | None = None, display_name: str | None = None) -> bool:
        """Set the run's display name (asked when not given; empty shows its name again)."""
        rec = self._one(ref)
        if rec is None:
            return False
        if display_name is None:
            text, ok = QInputDialog.getText(
                self, "Rename run", f"Display name for {rec.name}\n(leave empty to show the "
                "run's own name):", text=rec.label)
            if not ok:
                return False
            display_name = text
        name = display_name.strip()
        if "\n" in name or len(name) > 200:
            self._error("a display name is one line of at most 200 characters: shorten it")
            return False
        return self._change(lambda s: s.set_display_name(
            rec.id, "" if name == rec.name else name),
            f"{rec.name} is now shown as {name or rec.name}")

    def edit_note(self, ref: str | int | None = None, note: str | None = None) -> bool:
        """Set the run's note (a multi-line editor opens when not given)."""
        rec = self._one(ref)
        if rec is None:
            return False
        if note is None:
            text, ok = QInputDialog.getMultiLineText(
                self, "Note", f"Note about {rec.label}:", rec.note)
            if not ok:
                return False
            note = text
        return self._change(lambda s: s.set_note(rec.id, note.rstrip()),
                            f"Note of {rec.label} saved")

    def delete_run(self, ref: str | int | None = None, ask: bool = True) -> bool:
        """Delete runs (``ref``, else the selected ones) and their folders, after asking."""
        store = self._open_store()
        if store is None:
            return False
        recs = [r for r in [self._one(ref)] if r] if ref is not None else self.selected_runs()
        if not recs:
            self._error("select the runs to delete in the table first")
            return False
        what = (f"run {recs[0].label}" if len(recs) == 1 else f"{len(recs)} runs")
        folders = "its folder" if len(recs) == 1 else "their folders"
        if ask and not dialogs.confirm(
                self, "Delete runs?" if len(recs) > 1 else "Delete run?",
                f"Delete {what} from the run history, with {folders} (checkpoints and "
                f"weights)? This cannot be undone.", "Delete"):
            return False
        for rec in recs:
            try:
                store.delete_run(rec.id)
            except LearnDropError as exc:
                self._error(exc.message)
                self.refresh(quiet=True)
                return False
            if rec.id == self.current_run_id:
                self.current_run_id = None
        self.refresh(quiet=True)
        self._info(f"Deleted {what}")
        return True

    def _change(self, change: Callable[[RunStore], Any], done: str) -> bool:
        assert self.store is not None
        try:
            change(self.store)
        except LearnDropError as exc:
            self._error(exc.message)
            return False
        self.refresh(quiet=True)
        self._info(done)
        return True

    # ---- compare and export ------------------------------------------------------------------
    def compare_with(self, ref: str | int | None = None, other: str | int | None = None
                     ) -> QWidget | None:
        """Open a comparison of two runs; the baseline (or else the older run) is the
        reference. With one run given or selected, the other is asked for."""
        chosen = self.selected_runs()
        if ref is None and other is None and len(chosen) == 2:
            ref, other = chosen[0].id, chosen[1].id
        rec = self._one(ref)
        if rec is None:
            return None
        if other is None:
            other = self._ask_other(rec)
            if other is None:
                return None
        second = self._one(other)
        if second is None:
            return None
        if second.id == rec.id:
            self._error("choose two different runs to compare")
            return None
        first, reference = rec, second
        if (not first.drop_enabled and second.drop_enabled) or (
                first.drop_enabled == second.drop_enabled and first.created < second.created):
            first, reference = second, first
        from .compare_view import CompareView

        assert self.store is not None
        try:
            view = CompareView(self.store, first.id, reference.id, parent=self.window())
        except LearnDropError as exc:
            self._error(exc.message)
            return None
        view.export_requested.connect(lambda a, b: self.export_report(a, [b]))
        self._keep(view)
        view.show()
        return view

    def _ask_other(self, rec: RunRecord) -> int | None:
        assert self.store is not None
        others = [r for r in self.store.list_runs() if r.id != rec.id]
        if not others:
            self._error("there is no other run to compare with: record another run first")
            return None
        # the likeliest partner first: a baseline of the same model and data set
        others.sort(key=lambda r: (r.drop_enabled == rec.drop_enabled,
                                   (r.model, r.dataset) != (rec.model, rec.dataset),
                                   -r.created))
        items = [f"{r.label} · {r.model}/{r.dataset} · "
                 f"{'baseline' if not r.drop_enabled else r.mode} · {r.status} · "
                 f"{fmt.when(r.created)}" for r in others]
        item, ok = QInputDialog.getItem(self, "Compare with…",
                                        f"Compare {rec.label} with:", items, 0, False)
        if not ok or item not in items:
            return None
        return others[items.index(item)].id

    def export_report(self, ref: str | int | None = None,
                      compare: list[Any] | None = None) -> QWidget | None:
        """Open the export dialog for a run (and the runs it is compared with)."""
        rec = self._one(ref)
        if rec is None:
            return None
        from .export_dialog import ExportDialog

        assert self.store is not None
        title = rec.label
        if compare:
            try:
                title += " vs " + ", ".join(self.store.get_run(c).label for c in compare)
            except LearnDropError as exc:
                self._error(exc.message)
                return None
        dialog = ExportDialog(self.store, rec.id, compare=compare, title=title,
                              parent=self.window())
        dialog.exported.connect(lambda path: self._info(f"Report saved: {path}"))
        self._keep(dialog)
        dialog.show()
        return dialog

    def _keep(self, window: QWidget) -> None:
        """Keep a non-modal window alive until it is closed."""
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.windows.append(window)
        window.destroyed.connect(lambda *_: self.windows.remove(window)
                                 if window in self.windows else None)

    # ---- messages and actions ----------------------------------------------------------------
    def _error(self, text: str) -> None:
        self.last_error = " ".join(text.split())
        self.notice.setStyleSheet(f"color: {current_theme().error.name()};")
        self.notice.setText(self.last_error)
        self.notice.show()
        self.message.emit(self.last_error)

    def _info(self, text: str) -> None:
        self._clear_notice()
        self.message.emit(text)

    def _clear_notice(self) -> None:
        self.last_error = ""
        self.notice.hide()

    def _on_filter(self, text: str) -> None:
        self.proxy.setFilterFixedString(text.strip())
        self._update_count()
        self._update_actions()

    def _update_actions(self) -> None:
        chosen = self.selected_runs()
        one = len(chosen) == 1
        self.open_action.setEnabled(one)
        self.follow_action.setEnabled(one and chosen[0].status == "running")
        self.compare_action.setEnabled(len(chosen) in (1, 2) and len(self.model.records) > 1)
        for action in (self.export_action, self.rename_action, self.note_action):
            action.setEnabled(one)
        self.delete_action.setEnabled(bool(chosen))

    def _context_menu(self, pos: Any) -> None:
        if not self.selected_runs():
            return
        menu = QMenu(self)
        for action in (self.open_action, self.follow_action, None, self.compare_action,
                       self.export_action, None, self.rename_action, self.note_action,
                       None, self.delete_action):
            if action is None:
                menu.addSeparator()
            elif action.isEnabled():
                menu.addAction(action)
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.auto_refresh()

    def close_store(self) -> None:
        """Stop following and timers, close the store (the window is closing)."""
        self.timer.stop()
        self.stop_following()
        store, self.store = self.store, None
        if store is not None:
            store.close()
