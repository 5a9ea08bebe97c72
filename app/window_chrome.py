"""The main window's chrome: its docks, tool bar and status bar, its menus, and the list of its
keyboard shortcuts (the Help menu shows it)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QRect, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMenu,
    QProgressBar,
    QToolBar,
)

from .actions import RunActions
from .dialogs.standard import show_about, show_guide, show_shortcuts
from .panels import HistoryPanel, LivePanel, SetupPanel
from .panels.launchers import open_sweep

__all__ = ["ChromeWindow", "fitted_geometry"]


class ChromeWindow(QMainWindow):
    """A main window with Learn&Drop Studio's chrome; the window that derives from it makes
    its panels and run actions, then calls :meth:`build_chrome`."""

    setup: SetupPanel
    history: HistoryPanel
    live: LivePanel
    run_actions: RunActions
    # made by build_chrome
    setup_dock: QDockWidget
    history_dock: QDockWidget
    toolbar: QToolBar
    state_label: QLabel
    progress_bar: QProgressBar
    open_action: QAction
    sweep_action: QAction

    def build_chrome(self, idle_text: str, show_history: Callable[[], object],
                     export_shown_run: Callable[[], object]) -> None:
        """The docks and bars (the state line shows ``idle_text``), then the menus."""
        build_docks_and_bars(self, idle_text)
        build_menus(self, show_history, export_shown_run)

    def shortcuts(self) -> list[tuple[str, str]]:
        """Every action of the window with a keyboard shortcut: (what it does, keys)."""
        return shortcuts(self)

    def showEvent(self, event: QShowEvent) -> None:
        """Once shown (its frame known), the whole window fits the screen's free area."""
        super().showEvent(event)
        if QGuiApplication.platformName() not in ("offscreen", "minimal"):
            QTimer.singleShot(0, self.fit_to_screen)
            QTimer.singleShot(400, self.fit_to_screen)  # a window manager may frame it late

    def fit_to_screen(self) -> None:
        """Shrink and move the window so that its frame too is inside the screen's free area
        (the status bar stays on screen); a maximised or full-screen window is left alone."""
        screen = self.screen()
        if screen is None or self.isMaximized() or self.isFullScreen():
            return
        inner = fitted_geometry(self.frameGeometry(), self.geometry(),
                                screen.availableGeometry())
        if inner != self.geometry():
            self.setGeometry(inner)


def build_docks_and_bars(window: ChromeWindow, idle_text: str) -> None:
    """The setup and history docks (tabbed on the left), the run tool bar, and the status
    bar's state line (showing ``idle_text``) and progress bar."""
    window.setup_dock = QDockWidget("Run setup", window)
    window.setup_dock.setObjectName("setup-dock")
    window.setup_dock.setWidget(window.setup)
    window.setup_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                                  | QDockWidget.DockWidgetFeature.DockWidgetClosable
                                  | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, window.setup_dock)
    window.history_dock = QDockWidget("Run history", window)
    window.history_dock.setObjectName("history-dock")
    window.history_dock.setWidget(window.history)
    window.history_dock.setFeatures(window.setup_dock.features())
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, window.history_dock)
    window.tabifyDockWidget(window.setup_dock, window.history_dock)
    window.setup_dock.raise_()

    window.toolbar = QToolBar("Run", window)
    window.toolbar.setObjectName("run-toolbar")
    window.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    window.toolbar.setIconSize(QSize(20, 20))
    actions = window.run_actions
    for action in (actions.start, actions.pause, actions.stop, actions.cancel):
        window.toolbar.addAction(action)
    window.addToolBar(window.toolbar)

    window.state_label = QLabel(idle_text)
    window.state_label.setObjectName("run-state")
    window.progress_bar = QProgressBar()
    window.progress_bar.setMaximumWidth(220)
    window.progress_bar.setTextVisible(True)
    window.progress_bar.hide()
    window.statusBar().addWidget(window.state_label, 1)
    window.statusBar().addPermanentWidget(window.progress_bar)


def build_menus(window: ChromeWindow, show_history: Callable[[], object],
                export_shown_run: Callable[[], object]) -> None:
    """File, Run, View and Help; the File menu's Open action is ``window.open_action``."""
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    window.open_action = _menu_action(
        file_menu, "&Open configuration…", window.setup.open_config_dialog,
        QKeySequence.StandardKey.Open)
    _menu_action(file_menu, "&Save configuration…", window.setup.save_config_dialog,
                 QKeySequence.StandardKey.Save)
    file_menu.addSeparator()
    _menu_action(file_menu, "Run &history", show_history, "Ctrl+H")
    _menu_action(file_menu, "&Export report of the shown run…", export_shown_run, "Ctrl+E")
    file_menu.addSeparator()
    _menu_action(file_menu, "&Quit", window.close, QKeySequence.StandardKey.Quit)
    run_menu = bar.addMenu("&Run")
    actions = window.run_actions
    for action in (actions.start, actions.pause, actions.stop, actions.cancel):
        run_menu.addAction(action)
    run_menu.addSeparator()
    window.sweep_action = _menu_action(
        run_menu, "S&weep…", lambda: open_sweep(window.history, window.setup.config(), window))
    window.sweep_action.setToolTip("Train every combination of some settings' values, for "
                                   "several seeds, starting from the form's settings")
    view_menu = bar.addMenu("&View")
    view_menu.addAction(window.setup_dock.toggleViewAction())
    view_menu.addAction(window.history_dock.toggleViewAction())
    view_menu.addAction(window.toolbar.toggleViewAction())
    for dock in window.live.findChildren(QDockWidget):
        view_menu.addAction(dock.toggleViewAction())
    help_menu = bar.addMenu("&Help")
    _menu_action(help_menu, "&Quick guide", lambda: show_guide(window),
                 QKeySequence.StandardKey.HelpContents)
    _menu_action(help_menu, "&Keyboard shortcuts",
                 lambda: show_shortcuts(window, window.shortcuts()))
    help_menu.addSeparator()
    _menu_action(help_menu, "&About Learn&&Drop Studio", lambda: show_about(window))


def shortcuts(window: ChromeWindow) -> list[tuple[str, str]]:
    """Every action of the window with a keyboard shortcut: (what it does, keys)."""
    out: dict[str, str] = {}
    actions = [*window.findChildren(QAction), *window.history.actions()]
    for action in actions:
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        what = action.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
        if keys and what:
            out.setdefault(what.rstrip("…"), keys)
    return sorted(out.items(), key=lambda kv: kv[0].lower())


def _menu_action(menu: QMenu, text: str, slot: Callable[[], object],
                 key: QKeySequence.StandardKey | str | None = None) -> QAction:
    action = menu.addAction(text)
    action.triggered.connect(slot)
    if key is not None:
        action.setShortcut(QKeySequence(key))
    return action


def fitted_geometry(frame: QRect, inner: QRect, area: QRect) -> QRect:
    """The window's geometry (without its frame, ``inner``) that puts its whole ``frame``
    (title bar and borders included) inside the screen's free ``area``: smaller if need be,
    then moved in."""
    left, top = inner.x() - frame.x(), inner.y() - frame.y()
    extra_w, extra_h = frame.width() - inner.width(), frame.height() - inner.height()
    width = min(inner.width(), area.width() - extra_w)
    height = min(inner.height(), area.height() - extra_h)
    x = min(max(frame.x(), area.x()), area.x() + area.width() - (width + extra_w))
    y = min(max(frame.y(), area.y()), area.y() + area.height() - (height + extra_h))
    return QRect(x + left, y + top, width, height)
