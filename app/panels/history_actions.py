"""The run history's actions: made once with their tips, laid out in its tool bar (the common
ones, the rest under More) and its context menu, and enabled for the runs selected."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QToolBar, QToolButton

from ..services import RESUMABLE

if TYPE_CHECKING:
    from learndrop.core.store import RunRecord

    from .run_table import RunTable


class ActionHost(Protocol):
    """The history panel as its actions see it: where they live and what they call (the
    panel calls these functions for itself)."""

    toolbar: QToolBar
    run_table: RunTable
    refresh_action: QAction
    open_action: QAction
    follow_action: QAction
    resume_action: QAction
    settings_action: QAction
    compare_action: QAction
    whatif_action: QAction
    many_action: QAction
    export_action: QAction
    rename_action: QAction
    note_action: QAction
    delete_action: QAction

    def addAction(self, action: QAction) -> None: ...
    def selected_runs(self) -> list[RunRecord]: ...
    def refresh(self, quiet: bool = False) -> bool: ...
    def open_run(self) -> bool: ...
    def follow_run(self) -> bool: ...
    def resume_run(self) -> bool: ...
    def use_settings(self) -> bool: ...
    def compare_with(self) -> object: ...
    def explore_what_if(self) -> object: ...
    def side_by_side(self) -> object: ...
    def export_report(self) -> object: ...
    def rename_run(self) -> bool: ...
    def edit_note(self) -> bool: ...
    def delete_run(self) -> bool: ...

__all__ = ["build_actions", "show_context_menu", "update_actions"]


def build_actions(panel: ActionHost) -> None:
    """The panel's actions (``panel.open_action`` and so on) and its ``panel.toolbar``."""
    def act(text: str, slot: Callable[[], object], tip: str) -> QAction:
        return _add_action(panel, text, slot, tip)

    panel.refresh_action = act("Refresh", panel.refresh, "Read the run store again (F5)")
    panel.refresh_action.setShortcut("F5")
    panel.open_action = act("Open", panel.open_run,
                            "Show the selected run in the live views (double-click)")
    panel.follow_action = act("Follow live", panel.follow_run,
                              "Watch a run that is training in another program, as it goes")
    panel.resume_action = act("Resume", panel.resume_run,
                              "Continue a stopped, interrupted or failed run from its last "
                              "checkpoint, in its own folder")
    panel.settings_action = act("Use these settings", panel.use_settings,
                                "Load the selected run's settings into the form, to start "
                                "a new run with them")
    panel.compare_action = act("Compare…", panel.compare_with,
                               "Compare the selected run with another (select two rows to "
                               "compare them directly)")
    panel.whatif_action = act("What if…", panel.explore_what_if,
                              "Replay the run's scores under other drop settings and see "
                              "when each unit would have dropped")
    panel.many_action = act("Side by side…", panel.side_by_side,
                            "The selected runs (or every run listed) side by side: settings "
                            "that differ, overlaid curves, seed groups, the trade-off plot")
    panel.export_action = act("Export…", panel.export_report,
                              "Write the selected run's report as HTML, PDF, CSV or JSON")
    panel.rename_action = act("Rename…", panel.rename_run, "Give the run a display name")
    panel.note_action = act("Note…", panel.edit_note, "Write a note about the run")
    panel.delete_action = act("Delete…", panel.delete_run,
                              "Delete the run from the store, with its folder")
    panel.toolbar = QToolBar("Run history")
    panel.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    # the tool bar stays narrow enough for the history dock at 1024 px; the rest is in More
    for action in (panel.open_action, panel.resume_action, panel.compare_action,
                   panel.export_action):
        panel.toolbar.addAction(action)
    more = QToolButton()
    more.setText("More")
    more.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    more_menu = QMenu(more)
    more_menu.addActions([panel.follow_action, panel.settings_action, panel.many_action,
                          panel.whatif_action])
    more_menu.addSeparator()
    more_menu.addActions([panel.rename_action, panel.note_action])
    more_menu.addSeparator()
    more_menu.addAction(panel.delete_action)
    more.setMenu(more_menu)
    panel.toolbar.addWidget(more)


def _add_action(panel: ActionHost, text: str, slot: Callable[[], object],
                tip: str) -> QAction:
    action = QAction(text, panel.run_table)  # owned with the panel (the table is its child)
    action.setToolTip(tip)
    action.setStatusTip(tip)
    action.triggered.connect(lambda _checked=False: slot())
    panel.addAction(action)  # shortcuts work while the panel has focus
    return action


def update_actions(panel: ActionHost) -> None:
    """Enable the actions that apply to the runs selected in the panel's table."""
    chosen = panel.selected_runs()
    one = len(chosen) == 1
    panel.open_action.setEnabled(one)
    panel.follow_action.setEnabled(one and chosen[0].status == "running")
    panel.resume_action.setEnabled(one and chosen[0].status in RESUMABLE)
    panel.settings_action.setEnabled(one)
    panel.whatif_action.setEnabled(one)
    panel.many_action.setEnabled(len(panel.run_table.records) > 0)
    panel.compare_action.setEnabled(len(chosen) in (1, 2) and len(panel.run_table.records) > 1)
    for action in (panel.export_action, panel.rename_action, panel.note_action):
        action.setEnabled(one)
    panel.delete_action.setEnabled(bool(chosen))


def show_context_menu(panel: ActionHost, pos: QPoint) -> None:
    """The enabled actions for the selected runs, in a menu at ``pos`` (none: no menu)."""
    if not panel.selected_runs():
        return
    menu = QMenu(panel.run_table)
    for action in (panel.open_action, panel.follow_action, panel.resume_action,
                   panel.settings_action, None, panel.compare_action, panel.many_action,
                   panel.whatif_action,
                   panel.export_action,
                   None, panel.rename_action, panel.note_action, None, panel.delete_action):
        if action is None:
            menu.addSeparator()
        elif action.isEnabled():
            menu.addAction(action)
    menu.popup(pos)
