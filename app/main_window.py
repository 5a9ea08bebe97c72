"""The main window, the app's composition root: it builds the services (training job, bridge,
run library) and the panels (run setup and run history on the left, the live view in the
middle, run actions on top), wires them together and keeps the run's state."""

from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QGuiApplication, QIcon, QResizeEvent
from PySide6.QtWidgets import QDockWidget

from learndrop.core.config import RunConfig
from learndrop.core.errors import LearnDropError
from learndrop.core.events import Callback, EpochEnd, FitEnd, FitStart, Progress, call_hook
from learndrop.core.training import RunControl

from .actions import RunActions, RunState
from .dialogs.standard import confirm, show_error
from .panels import HistoryPanel, LivePanel, SetupPanel, form_words
from .run_status import epoch_text, progress_text, summary_text
from .services import BridgeSignals, QtBridge, ResumePoint, RunLibrary, TrainingJob, settings
from .window_chrome import ChromeWindow

__all__ = ["MainWindow", "app_icon"]

log = logging.getLogger(__name__)

STATE_TEXT = {RunState.IDLE: "Ready", RunState.STARTING: "Starting…",
              RunState.RUNNING: "Running", RunState.PAUSED: "Paused",
              RunState.STOPPING: "Stopping after this batch…",
              RunState.CANCELLING: "Cancelling…"}


def app_icon() -> QIcon:
    """The app's icon from the packaged resources (empty icon when it is missing)."""
    try:
        ref = importlib.resources.files("learndrop.resources") / "learndrop.svg"
        with importlib.resources.as_file(ref) as path:
            return QIcon(str(path)) if Path(path).exists() else QIcon()
    except (ModuleNotFoundError, FileNotFoundError):
        return QIcon()


class MainWindow(ChromeWindow, Callback):
    """Learn&Drop Studio's main window. ``run_finished(status)`` fires once a run's thread has
    ended (status: finished, stopped, cancelled or failed). Runs are recorded in the run store
    at ``store_path`` (default: the one under the user data folder or ``LEARNDROP_HOME``).

    The window is an engine callback too: after the live view, the hooks of the run it trains
    update its status line and progress bar."""

    run_finished = Signal(str)

    def __init__(self, config: RunConfig | None = None, remember: bool = True,
                 store_path: str | Path | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Learn&Drop Studio")
        self.setWindowIcon(app_icon())
        self.setObjectName("learndrop-main-window")
        self.show_error_dialogs = True
        self._remember = remember
        self._job: TrainingJob | None = None
        self._state = RunState.IDLE
        self._fit_start: FitStart | None = None
        self._fit_end: FitEnd | None = None
        self._epochs = 0
        self._close_pending = False
        self._resuming: ResumePoint | None = None
        self._idle_text = STATE_TEXT[RunState.IDLE]
        self.last_status = ""
        self.last_error = ""
        self.last_output_dir = ""
        self.signals = BridgeSignals(self)
        self.library = RunLibrary(store_path, parent=self)

        self.live = LivePanel(self)
        self.setCentralWidget(self.live)
        start_cfg = config or (settings.load_last_config() if remember else RunConfig())
        self.setup = SetupPanel(start_cfg)
        self.run_actions = RunActions(self)
        self.setup.add_start_button(self.run_actions.start)
        self.history = HistoryPanel(self.library, live=self.live,
                                    busy=lambda: self.is_running)
        self.build_chrome(STATE_TEXT[RunState.IDLE], self.show_history, self.export_shown_run)
        self._connect_engine_signals()
        self._connect_panels()
        self.setup.validity_changed.connect(self._on_validity)
        self.setup.notice.connect(lambda text: self.statusBar().showMessage(text, 12000))
        self._on_validity(self.setup.valid, self.setup.reason)
        self._default_size()
        if remember:
            self._restore_layout()
            self.live.set_view_options(settings.load_view_options())

    # ---- construction ---------------------------------------------------------------------
    def _connect_engine_signals(self) -> None:
        """The engine's hooks, as the bridge's one signal, reach the live view first, then
        the window's status line."""
        self.signals.hook.connect(self._on_engine_hook)

    @Slot(str, object)
    def _on_engine_hook(self, hook: str, payload: object) -> None:
        """One engine hook from the bridge (queued into the GUI thread), handed to the live
        view and the window the way a replay hands stored events: an unknown hook fails.
        A resumed run starts with its earlier sessions, replayed from the run store."""
        if (hook == "on_fit_start" and isinstance(payload, FitStart)
                and payload.resumed_from_epoch > 0 and self._replay_past()):
            call_hook((self,), hook, payload)
            return
        call_hook((self.live, self), hook, payload)

    def _replay_past(self) -> bool:
        """Show what the resumed run recorded before this session (its scores, losses, drops,
        actions and log) in the live view, which then goes on live; False when the stored run
        cannot be read (the view then starts at the resumed epoch)."""
        recorder = self._job.recorder if self._job is not None else None
        if recorder is None or recorder.run_id is None or recorder.first_seq <= 0:
            return False
        try:
            self.library.replay_before(recorder.run_id, recorder.first_seq, self.live)
        except LearnDropError as exc:
            log.warning("could not show the run's earlier epochs: %s", exc.message)
            return False
        self.live.go_live()
        return True

    def _connect_panels(self) -> None:
        self.live.unit_action_requested.connect(self._on_unit_action)
        self.live.notice.connect(lambda text: self.statusBar().showMessage(text, 12000))
        self.history.run_opened.connect(self._on_history_opened)
        self.history.resume_requested.connect(self.resume_run)
        self.history.settings_requested.connect(self.use_run_settings)
        self.history.what_if_run_requested.connect(self.run_with_settings)
        self.history.following_ended.connect(self._on_following_ended)
        self.history.message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.run_actions.start.triggered.connect(self.start_run)
        self.run_actions.pause.triggered.connect(self.toggle_pause)
        self.run_actions.stop.triggered.connect(self.stop_run)
        self.run_actions.cancel.triggered.connect(self.ask_cancel_run)

    # ---- state ----------------------------------------------------------------------------
    @property
    def state(self) -> RunState:
        return self._state

    @property
    def is_running(self) -> bool:
        return self._job is not None

    @property
    def control(self) -> RunControl | None:
        return self._job.control if self._job is not None else None

    def status_text(self) -> str:
        return self.state_label.text()

    def _set_state(self, state: RunState, text: str | None = None) -> None:
        self._state = state
        self.run_actions.set_state(state)
        self.setup.set_locked(state.busy)
        self.open_action.setEnabled(not state.busy)
        self.state_label.setText(text or STATE_TEXT[state])

    @Slot(bool, str)
    def _on_validity(self, ok: bool, reason: str) -> None:
        self.run_actions.set_start_blocked("" if ok else reason)
        if self._state is RunState.IDLE:
            self.state_label.setText(self._idle_text if ok else f"Cannot start: {reason}")

    # ---- run actions ----------------------------------------------------------------------
    @Slot()
    def start_run(self) -> bool:
        """Start training with the form's settings; False when it cannot start now."""
        if self._job is not None:
            return False
        if not self.setup.valid:
            self.statusBar().showMessage(f"Cannot start: {self.setup.reason}", 8000)
            return False
        cfg = self.setup.config()
        if self._remember:
            settings.save_last_config(cfg)
        self._begin(cfg)
        return True

    @Slot(int)
    def resume_run(self, run_id: int) -> bool:
        """Continue stored run ``run_id`` from its checkpoint, in its own folder and into the
        same stored run; False (with the reason in the status bar) when it cannot."""
        if self._job is not None:
            self.statusBar().showMessage("Cannot resume: a run is training in this window; "
                                         "resume after it ends", 8000)
            return False
        try:
            point = self.library.claim(self.library.resume_point(run_id))
        except LearnDropError as exc:
            self.statusBar().showMessage(f"Cannot resume: {exc.message}", 12000)
            self.history.show_problem(exc.message)
            return False
        shown = point.config.copy()
        shown.output.name = ""  # the form's settings start a new run, not this one
        self.setup.set_config(shown)
        self._resuming = point
        self._begin(point.config, resume_from=point.checkpoint, resume_id=point.run_id)
        self.statusBar().showMessage(f"Resuming {point.label} after epoch "
                                     f"{point.epochs_done}", 8000)
        return True

    @Slot(int)
    def use_run_settings(self, run_id: int) -> bool:
        """Load a stored run's settings into the form (the pins it ended with included)."""
        if self._job is not None:
            self.statusBar().showMessage("The settings are locked while a run trains: load "
                                         "them after it ends", 8000)
            return False
        try:
            cfg = self.library.run_config(run_id)
        except LearnDropError as exc:
            self.history.show_problem(exc.message)
            return False
        self.setup.set_config(cfg)
        self.setup_dock.show()
        self.setup_dock.raise_()
        self.statusBar().showMessage("Settings loaded from the run history: press Start to "
                                     "train with them", 8000)
        return True

    @Slot(int, object)
    def run_with_settings(self, run_id: int, changes: dict[str, Any]) -> bool:
        """A stored run's settings with ``changes`` (setting path: value) into the form, and
        a new run started with them (the what-if explorer's "Run with these settings")."""
        if not self.use_run_settings(run_id):
            return False
        cfg = self.setup.config()
        for path, value in changes.items():
            cfg.set(path, value, source="what-if")
        self.setup.set_config(cfg)
        return self.start_run()

    def _begin(self, cfg: RunConfig, resume_from: Path | None = None,
               resume_id: int | None = None) -> None:
        """Start the training job for ``cfg`` (from ``resume_from``'s checkpoint, recorded
        into the stored run ``resume_id``, when resuming)."""
        self._fit_start = self._fit_end = None
        self.last_status = self.last_error = self.last_output_dir = ""
        self._epochs = cfg.train.epochs
        self.library.stop_following()
        self.live.reset()
        store = self._recording_store()
        self._job = TrainingJob(cfg, [QtBridge(self.signals)], RunControl(), parent=self,
                                store=store, record=store is not None,
                                resume_from=resume_from, resume_id=resume_id)
        self._job.ended.connect(self._on_job_ended)
        self._set_state(RunState.STARTING)
        self.progress_bar.setRange(0, 0)
        self.progress_bar.show()
        self._job.start()

    def _recording_store(self) -> Path | None:
        """The run store to record into, opened here so a problem is told before training
        (the run then trains without being recorded)."""
        try:
            return self.library.recording_path()
        except LearnDropError as exc:
            self.statusBar().showMessage(f"This run is not recorded in the run history: "
                                         f"{exc.message}", 15000)
            return None

    @Slot()
    def toggle_pause(self) -> None:
        control = self.control
        if control is None:
            return
        if self._state is RunState.PAUSED:
            control.resume()
            self._set_state(RunState.RUNNING)
        elif self._state is RunState.RUNNING:
            control.pause()
            self._set_state(RunState.PAUSED, "Paused (Resume to continue)")

    @Slot()
    def stop_run(self) -> None:
        if self.control is not None and self._state is not RunState.CANCELLING:
            self.control.stop()
            self._set_state(RunState.STOPPING)

    @Slot()
    def ask_cancel_run(self) -> None:
        if self.control is None:
            return
        # the question closes by itself if the run ends while it is asked
        if confirm(self, "Cancel the run?",
                   "Cancel this run and discard its files? Stop keeps them instead.",
                   until=self.run_finished):
            self.cancel_run()

    def cancel_run(self) -> None:
        if self.control is not None:
            self.control.cancel()
            self._set_state(RunState.CANCELLING)

    @Slot(str, str)
    def _on_unit_action(self, action: str, unit: str) -> None:
        control = self.control
        if control is None:
            return
        requests = {"pin": control.request_pin, "unpin": control.request_unpin,
                    "drop": control.request_drop}
        if action not in requests:
            raise ValueError(f"unknown unit action {action!r}")
        requests[action](unit)
        self.statusBar().showMessage(f"{action} {unit}: applied at the next step", 5000)

    # ---- engine events (the status line's part; the live view gets them first) -----------
    def on_fit_start(self, ev: FitStart) -> None:
        self._fit_start = ev
        self._epochs = ev.epochs
        self.last_output_dir = ev.output_dir
        self.setWindowTitle(f"{ev.run_name} — Learn&Drop Studio")
        self.progress_bar.setRange(0, max(ev.total_steps, 1))
        self.progress_bar.setValue(0)
        for unit in ev.config.get("drop", {}).get("pinned", []):
            self.live.set_pinned(unit, True)
        if self._state is RunState.STARTING:
            self._set_state(RunState.RUNNING, f"Running on {ev.device}")

    def on_progress(self, ev: Progress) -> None:
        self.progress_bar.setValue(ev.step)
        if self._state is RunState.RUNNING:
            self.state_label.setText(progress_text(ev, self._epochs))

    def on_epoch_end(self, ev: EpochEnd) -> None:
        self.progress_bar.setValue(ev.step)
        if self._state is RunState.RUNNING:
            self.state_label.setText(epoch_text(ev, self._epochs))

    def on_fit_end(self, ev: FitEnd) -> None:
        self._fit_end = ev

    @Slot()
    def _on_job_ended(self) -> None:
        job, self._job = self._job, None
        error = job.error if job is not None else None
        if error:  # the engine's words for settings and flags, as the form calls them
            error = form_words(error)
        end = self._fit_end
        status = "failed" if error else (end.status if end else "failed")
        self.last_status = status
        self.last_error = error or ""
        if end and end.summary.output_dir:
            self.last_output_dir = end.summary.output_dir
        self.progress_bar.hide()
        self._idle_text = summary_text(status, end, error)
        self._set_state(RunState.IDLE, self._idle_text)
        recorder = job.recorder if job is not None else None
        resumed, self._resuming = self._resuming, None
        if (resumed is not None and recorder is not None and recorder.run_id is None
                and recorder.journal is None):  # the continuation never started
            try:
                self.library.release(resumed)
            except LearnDropError as exc:
                log.warning("could not give back run %s: %s", resumed.label, exc.message)
        if job is not None:
            job.deleteLater()
        if error and (end is None or end.status != "failed"):  # else the live view logged it
            self.live.on_error(error)
        if recorder is not None and recorder.error:
            self.live.on_warning(f"this run was not recorded in the run history: "
                                 f"{recorder.error}")
        if recorder is not None and recorder.run_id is not None:
            self.history.current_run_id = recorder.run_id
        self.history.refresh(quiet=True)
        self.run_finished.emit(status)
        if self._close_pending:
            self.close()
        elif error and self.show_error_dialogs:  # after this slot: the dialog blocks
            QTimer.singleShot(0, lambda: show_error(self, "Training failed", error))

    # ---- run history ----------------------------------------------------------------------
    @Slot()
    def show_history(self) -> None:
        self.history_dock.show()
        self.history_dock.raise_()
        self.history.refresh()

    @Slot()
    def export_shown_run(self) -> None:
        """Export the report of the run the live views show (the last one trained here, or
        one opened from the history)."""
        if self.history.current_run_id is None:
            self.statusBar().showMessage("No stored run is shown: train one, or open one from "
                                         "the run history, then export its report", 8000)
            return
        self.history.export_report(self.history.current_run_id)

    @Slot(int, str, str)
    def _on_history_opened(self, run_id: int, label: str, how: str) -> None:
        self.setWindowTitle(f"{label} — Learn&Drop Studio")
        end = self.live.history.fit_end if how == "open" else None
        if how == "follow":
            self._idle_text = f"Following {label} live (it trains in another program)"
        elif end is not None:
            self._idle_text = f"{label} (from the run history): " + summary_text(
                end.status, end, None)
        else:
            self._idle_text = f"{label} (from the run history)"
        if self._state is RunState.IDLE:
            self.state_label.setText(self._idle_text)

    @Slot(str, str)
    def _on_following_ended(self, status: str, label: str) -> None:
        end = self.live.history.fit_end if status else None
        self._idle_text = (f"{label}: " + summary_text(end.status, end, None)
                           if end is not None else f"{label}: no longer followed")
        if self._state is RunState.IDLE:
            self.state_label.setText(self._idle_text)

    # ---- window ---------------------------------------------------------------------------
    def save_screenshot(self, path: str | Path) -> bool:
        """Save a PNG of the window; False when the file cannot be written."""
        return bool(self.grab().save(str(path), "PNG"))

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._job is not None:
            event.ignore()
            if self._close_pending:
                self.statusBar().showMessage("Waiting for the run to stop…", 5000)
                return
            if confirm(self, "Stop training and quit?",
                       "A run is in progress. Stop it (its checkpoint is kept) and quit?",
                       until=self.run_finished):
                self._close_pending = True
                if self.control is not None and self._state is not RunState.CANCELLING:
                    self.control.stop()
                    self._set_state(RunState.STOPPING, "Stopping, then closing…")
            elif self._job is None:  # the run ended while asked: nothing left to stop
                QTimer.singleShot(0, self.close)
            return
        if self._remember:
            settings.save_last_config(self.setup.config())
            settings.save_window_layout(bytes(self.saveGeometry().data()),
                                        bytes(self.saveState().data()))
            settings.save_view_options(self.live.view_options())
        self.history.close_store()
        event.accept()

    def _default_size(self) -> None:
        """1400x900, or what a smaller screen has room for (all of it below 1280 pixels
        wide: the window works down to 1024x640); headless platforms keep the full size."""
        width, height = 1400, 900
        screen = self.screen()
        if screen is not None and QGuiApplication.platformName() not in ("offscreen", "minimal"):
            area = screen.availableGeometry()
            share = 1.0 if area.width() < 1280 else 0.92
            width = min(width, int(area.width() * share))
            height = min(height, int(area.height() * share))
        self.resize(width, height)
        self.fit_docks()

    def fit_docks(self) -> None:
        """The setup and history docks take about a quarter of the width, 380 pixels at
        most, and never less than the form needs (sized through the one shown: a dock
        hidden behind the other's tab does not resize)."""
        self.resizeDocks([self._shown_dock()], [self._dock_width()], Qt.Orientation.Horizontal)

    def _shown_dock(self) -> QDockWidget:
        # a dock behind the other's tab counts as visible, but shows nothing
        return next((d for d in (self.setup_dock, self.history_dock)
                     if d.isVisible() and not d.visibleRegion().isEmpty()), self.setup_dock)

    def _dock_width(self) -> int:
        return max(self.setup_dock.minimumSizeHint().width(),
                   self.history_dock.minimumSizeHint().width(),
                   min(380, int(self.width() * 0.28)))

    def resizeEvent(self, event: QResizeEvent) -> None:
        """A window made narrow narrows the docks too, so the live view keeps its plots; made
        wide again, docks narrower than their share grow back to it."""
        super().resizeEvent(event)
        dock = self._shown_dock()
        if dock.isFloating():
            return
        wider = event.size().width() > event.oldSize().width() >= 0
        if (event.size().width() < event.oldSize().width()
                and dock.width() > self._dock_width()):
            self.fit_docks()
        elif wider and dock.width() < self._dock_width():
            QTimer.singleShot(0, self.fit_docks)  # once the window's layout has its size

    def _restore_layout(self) -> None:
        geometry, state = settings.load_window_layout()
        if geometry:
            self.restoreGeometry(QByteArray(geometry))
        if state:
            self.restoreState(QByteArray(state))
