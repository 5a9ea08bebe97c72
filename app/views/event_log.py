"""A timestamped list of what happened in the run: drops, restores (drops the policy undid),
checkpoints, the user's actions, warnings and errors; the Show menu hides kinds (checkpoints,
say)."""

from __future__ import annotations

import time

from PySide6.QtGui import QAction, QBrush, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from learndrop.core.monitor import LogEntry, RunHistory

from ..theme import Theme, current_theme

__all__ = ["EventLog"]

_KIND_LABELS = {"drop": "Drop", "restore": "Restore", "checkpoint": "Checkpoint",
                "action": "Your action", "warning": "Warning", "error": "Error", "info": "Info"}
_MENU_LABELS = {"drop": "Drops", "restore": "Restores", "checkpoint": "Checkpoints",
                "action": "Your actions", "warning": "Warnings", "error": "Errors",
                "info": "Run messages"}
#: the most lines kept on screen (the history keeps them all)
MAX_ROWS = 5000


class EventLog(QWidget):
    """Shows the history's log entries, newest at the bottom; copy puts them on the clipboard."""

    def __init__(self, history: RunHistory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.theme: Theme = current_theme()
        self._shown = 0  # log entries looked at (shown or hidden)
        self.hidden: set[str] = set()
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Time", "Epoch", "Event", "Details"])
        self.tree.setRootIsDecorated(False)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QTreeWidget.SelectionMode.ExtendedSelection)
        cw = self.fontMetrics().averageCharWidth()
        for col, chars in enumerate((10, 7, 13)):
            self.tree.setColumnWidth(col, cw * chars)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the selected lines (all lines if none is selected)")
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        copy = QShortcut(QKeySequence(QKeySequence.StandardKey.Copy), self.tree)
        copy.activated.connect(self.copy_to_clipboard)
        self.show_button = QToolButton()
        self.show_button.setText("Show")
        self.show_button.setToolTip("Choose which kinds of events are listed")
        self.show_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.show_button)
        self.kind_actions: dict[str, QAction] = {}
        for kind, label in _MENU_LABELS.items():
            action = menu.addAction(label)
            action.setCheckable(True)
            action.setChecked(True)
            action.toggled.connect(lambda on, k=kind: self.set_kind_shown(k, on))
            self.kind_actions[kind] = action
        self.show_button.setMenu(menu)
        head = QHBoxLayout()
        head.addWidget(QLabel("Events"))
        head.addStretch(1)
        head.addWidget(self.show_button)
        head.addWidget(self.copy_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(head)
        lay.addWidget(self.tree)

    def restyle(self) -> None:
        self.theme = current_theme(self.palette())
        self._rebuild()

    def set_kind_shown(self, kind: str, shown: bool) -> None:
        """List events of ``kind`` (drop, restore, checkpoint, action, warning, error, info)
        or not."""
        if shown == (kind not in self.hidden):
            return
        (self.hidden.discard if shown else self.hidden.add)(kind)
        action = self.kind_actions.get(kind)
        if action is not None and action.isChecked() != shown:
            action.setChecked(shown)
        self.show_button.setText("Show (filtered)" if self.hidden else "Show")
        self._rebuild()

    def view_options(self) -> dict[str, object]:
        return {"hidden": ",".join(sorted(self.hidden))}

    def set_view_options(self, options: dict[str, object]) -> None:
        hidden = options.get("hidden")
        if isinstance(hidden, str):
            for kind in _KIND_LABELS:
                self.set_kind_shown(kind, kind not in hidden.split(","))

    def reset(self) -> None:
        self._rebuild()

    def refresh(self, force: bool = False) -> None:
        entries = self.history.log
        if len(entries) < self._shown or force:
            self._rebuild()
            return
        if len(entries) == self._shown:
            return
        at_bottom = self._at_bottom()
        for entry in entries[self._shown:]:
            if entry.kind not in self.hidden:
                self.tree.addTopLevelItem(self._item(entry))
        self._shown = len(entries)
        while self.tree.topLevelItemCount() > MAX_ROWS:
            self.tree.takeTopLevelItem(0)
        if at_bottom:
            self.tree.scrollToBottom()

    def row_count(self) -> int:
        return self.tree.topLevelItemCount()

    def row_text(self, row: int) -> str:
        item = self.tree.topLevelItem(row)
        if item is None:
            raise IndexError(f"no row {row} in the event log")
        return "\t".join(item.text(c) for c in range(self.tree.columnCount()))

    def copy_to_clipboard(self) -> str:
        items = self.tree.selectedItems() or [
            item for r in range(self.tree.topLevelItemCount())
            if (item := self.tree.topLevelItem(r)) is not None]
        text = "\n".join("\t".join(it.text(c) for c in range(self.tree.columnCount()))
                         for it in items)
        QApplication.clipboard().setText(text)
        return text

    def _rebuild(self) -> None:
        self.tree.clear()
        self._shown = 0
        self.refresh()

    def _item(self, e: LogEntry) -> QTreeWidgetItem:
        when = time.strftime("%H:%M:%S", time.localtime(e.wall_time))
        epoch = "" if e.epoch is None else f"{e.epoch:.2f}"
        item = QTreeWidgetItem([when, epoch, _KIND_LABELS.get(e.kind, e.kind), e.text])
        item.setToolTip(3, e.text)
        color = {"error": self.theme.error, "warning": self.theme.warning,
                 "restore": self.theme.restore}.get(e.kind)
        if color is not None:
            for c in range(4):
                item.setForeground(c, QBrush(color))
        return item

    def _at_bottom(self) -> bool:
        bar = self.tree.verticalScrollBar()
        return bar.value() >= bar.maximum() - 2
