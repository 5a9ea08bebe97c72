"""The one adapter between the engine's callbacks and Qt.

:class:`QtBridge` is an engine :class:`~learndrop.core.events.Callback`; each hook only emits
a signal of :class:`BridgeSignals`. The hooks run in the training thread, the receivers (widgets)
live in the GUI thread, so Qt queues every emission and the widgets are never touched from the
training thread. Payloads are the engine's frozen event dataclasses.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from learndrop.core.events import (
    Callback,
    CheckpointSaved,
    DropEvent,
    EpochEnd,
    FitEnd,
    FitStart,
    Progress,
    ScoreCheck,
    UserAction,
)

__all__ = ["BridgeSignals", "QtBridge"]


class BridgeSignals(QObject):
    """Signals mirroring the engine's hooks. Create it in the GUI thread."""

    fit_started = Signal(object)  # FitStart
    epoch_started = Signal(int)
    progress = Signal(object)  # Progress
    scores = Signal(object)  # ScoreCheck
    dropped = Signal(object)  # DropEvent
    epoch_ended = Signal(object)  # EpochEnd
    checkpoint_saved = Signal(object)  # CheckpointSaved
    warning = Signal(str)
    user_action = Signal(object)  # UserAction
    fit_ended = Signal(object)  # FitEnd


class QtBridge(Callback):
    """Engine callback that turns every hook into a signal emission (and nothing else)."""

    def __init__(self, signals: BridgeSignals) -> None:
        self.signals = signals

    def on_fit_start(self, event: FitStart) -> None:
        self.signals.fit_started.emit(event)

    def on_epoch_start(self, epoch: int) -> None:
        self.signals.epoch_started.emit(int(epoch))

    def on_progress(self, event: Progress) -> None:
        self.signals.progress.emit(event)

    def on_scores(self, event: ScoreCheck) -> None:
        self.signals.scores.emit(event)

    def on_drop(self, event: DropEvent) -> None:
        self.signals.dropped.emit(event)

    def on_epoch_end(self, event: EpochEnd) -> None:
        self.signals.epoch_ended.emit(event)

    def on_checkpoint(self, event: CheckpointSaved) -> None:
        self.signals.checkpoint_saved.emit(event)

    def on_warning(self, message: str) -> None:
        self.signals.warning.emit(str(message))

    def on_user_action(self, event: UserAction) -> None:
        self.signals.user_action.emit(event)

    def on_fit_end(self, event: FitEnd) -> None:
        self.signals.fit_ended.emit(event)
