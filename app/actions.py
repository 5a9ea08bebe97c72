"""The run actions (Start, Pause/Resume, Stop, Cancel) and which of them apply when."""

from __future__ import annotations

from enum import Enum

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QStyle, QWidget

__all__ = ["RunState", "RunActions"]


class RunState(str, Enum):
    """What the app is doing; the status bar shows :attr:`label`."""

    IDLE = "idle"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    CANCELLING = "cancelling"

    @property
    def busy(self) -> bool:
        return self is not RunState.IDLE


class RunActions(QObject):
    """The four run actions, shared by the toolbar, the Run menu and the setup panel."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        icon = parent.style().standardIcon
        sp = QStyle.StandardPixmap
        self.start = QAction(icon(sp.SP_MediaPlay), "&Start training", parent)
        self.start.setShortcut(QKeySequence("Ctrl+Return"))
        self.pause = QAction(icon(sp.SP_MediaPause), "&Pause", parent)
        self.pause.setShortcut(QKeySequence("Ctrl+P"))
        self.stop = QAction(icon(sp.SP_MediaStop), "S&top", parent)
        self.stop.setShortcut(QKeySequence("Ctrl+."))
        self.cancel = QAction(icon(sp.SP_DialogCancelButton), "&Cancel run", parent)
        self._icons = (icon(sp.SP_MediaPause), icon(sp.SP_MediaPlay))
        self._tips = {
            self.pause: "Hold training at the next batch (Ctrl+P)",
            self.stop: "Finish the current batch, save a checkpoint and the report, then end",
            self.cancel: "End the run now and discard its files",
        }
        for action, tip in self._tips.items():
            action.setToolTip(tip)
            action.setStatusTip(tip)
        self._start_tip = "Train with these settings (Ctrl+Return)"
        self._blocked = ""
        self.set_state(RunState.IDLE)

    def set_start_blocked(self, reason: str) -> None:
        """Disable Start with ``reason`` (empty: allowed) while idle."""
        self._blocked = reason
        self._refresh_start(self._state)

    def set_state(self, state: RunState) -> None:
        self._state = state
        active = state in (RunState.RUNNING, RunState.PAUSED)
        self.pause.setEnabled(active)
        self.stop.setEnabled(active)
        self.cancel.setEnabled(active or state is RunState.STARTING
                               or state is RunState.STOPPING)
        paused = state is RunState.PAUSED
        self.pause.setText("&Resume" if paused else "&Pause")
        self.pause.setIcon(self._icons[1] if paused else self._icons[0])
        self.pause.setToolTip("Continue training (Ctrl+P)" if paused
                              else self._tips[self.pause])
        self._refresh_start(state)

    def _refresh_start(self, state: RunState) -> None:
        idle = state is RunState.IDLE
        self.start.setEnabled(idle and not self._blocked)
        if self._blocked:
            tip = f"Cannot start: {self._blocked}"
        elif not idle:
            tip = "A run is in progress"
        else:
            tip = self._start_tip
        self.start.setToolTip(tip)
        self.start.setStatusTip(tip)
