"""The main window (pytest-qt, offscreen): Start blocked by a bad setting, the run life cycle
(drop, pause, stop, cancel, close, failure) and the runs it records in the run history."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from learndrop.app.actions import RunState
from learndrop.app.main_window import MainWindow
from learndrop.app.services import running_threads
from learndrop.core.config import RunConfig

pytestmark = pytest.mark.gui

RUN_TIMEOUT_MS = 60_000

Config = Callable[..., RunConfig]


def one_line(text: str) -> bool:
    return bool(text) and "\n" not in text


def wait_run(qtbot: Any, window: MainWindow) -> str:
    qtbot.waitUntil(lambda: not window.is_running, timeout=RUN_TIMEOUT_MS)
    return window.last_status


def listen(window: MainWindow, name: str, receiver: Callable[[Any], object],
           *how: Qt.ConnectionType) -> None:
    """Call ``receiver(payload)`` for each ``name`` hook the window's bridge delivers."""
    window.signals.hook.connect(
        lambda hook, payload: receiver(payload) if hook == name else None, *how)


def wait_hook(qtbot: Any, window: MainWindow, name: str, start: Callable[[], object]) -> Any:
    """Call ``start`` (which must return true) and wait until the bridge delivers hook
    ``name``; returns its payload. A receiver that stays connected, not a signal blocker:
    the bridge's one signal carries every hook, and a blocker disconnected while deliveries
    of it are still queued must not be called after its event loop is gone."""
    seen: list[Any] = []
    listen(window, name, seen.append)
    assert start()
    qtbot.waitUntil(lambda: bool(seen), timeout=RUN_TIMEOUT_MS)
    return seen[0]


def start_and_wait_progress(qtbot: Any, window: MainWindow) -> None:
    wait_hook(qtbot, window, "on_progress", window.start_run)


# ---- the form -------------------------------------------------------------------------------
def test_invalid_value_marks_field_and_blocks_start(make_window: Any, tmp_path: Path) -> None:
    window = make_window(RunConfig())
    assert window.run_actions.start.isEnabled()
    window.setup.editor("data.dataset").set("imagefolder")  # needs data.root
    root = window.setup.editor("data.root").widget
    assert root.property("invalid") is True
    # in the form's words: its labels, not the config's dotted names
    assert "needs \u201cData folder\u201d" in root.toolTip() and "data.root" not in root.toolTip()
    assert not window.run_actions.start.isEnabled()
    reason = window.setup.findChild(type(window.state_label), "start-blocked-reason")
    assert reason.isVisible() and "Data folder" in reason.text()
    assert not window.start_run()

    window.setup.editor("data.root").set(str(tmp_path))
    assert root.property("invalid") is False
    assert window.run_actions.start.isEnabled() and not reason.isVisible()


# ---- runs -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_run_drops_then_finishes(qtbot: Any, make_window: Any, tiny_config: Config,
                                      tmp_path: Path) -> None:
    window = make_window(tiny_config(tmp_path))
    hooks: list[str] = []
    window.signals.hook.connect(lambda hook, _payload: hooks.append(hook))
    assert window.start_run()
    assert wait_run(qtbot, window) == "finished"
    assert "on_drop" in hooks and hooks[-1] == "on_fit_end"
    assert window.status_text().startswith("Finished")
    assert window.state is RunState.IDLE and window.run_actions.start.isEnabled()


@pytest.mark.slow
def test_pause_holds_progress_then_resume_finishes(qtbot: Any, make_window: Any,
                                                   tiny_config: Config, tmp_path: Path) -> None:
    window = make_window(tiny_config(tmp_path, **{"train.log_every": 1}))
    steps: list[int] = []
    units: list[str] = []
    listen(window, "on_progress", lambda ev: steps.append(ev.step))
    listen(window, "on_fit_start", lambda ev: units.extend(u.name for u in ev.units))
    start_and_wait_progress(qtbot, window)
    window.toggle_pause()
    paused_at = len(steps)
    assert window.state is RunState.PAUSED and window.status_text().startswith("Paused")

    qtbot.wait(2000)  # a report already queued and the batch in flight may still arrive
    held = len(steps)
    assert held <= paused_at + 2, "progress went on while paused"
    qtbot.wait(1500)
    assert len(steps) == held, "progress went on while paused"

    # a unit action from the live view reaches the run's control (taken here, not applied)
    window.live.unit_action_requested.emit("pin", units[0])
    assert ("pin", units[0]) in window.control.take_actions()
    window.toggle_pause()
    assert window.state is RunState.RUNNING
    assert wait_run(qtbot, window) == "finished"
    assert len(steps) > held


def test_stop_keeps_a_checkpoint(qtbot: Any, make_window: Any, tiny_config: Config,
                                 tmp_path: Path) -> None:
    window = make_window(tiny_config(tmp_path, **{"train.epochs": 30}))
    start_and_wait_progress(qtbot, window)
    window.stop_run()
    assert wait_run(qtbot, window) == "stopped"
    assert window.status_text().startswith("Stopped")
    out = Path(window.last_output_dir)
    assert out.is_dir() and list(out.rglob("*.pt")), "no checkpoint kept"


def test_cancel_asks_then_discards(qtbot: Any, make_window: Any, answer_yes: list[str],
                                   tiny_config: Config, tmp_path: Path) -> None:
    window = make_window(tiny_config(tmp_path, **{"train.epochs": 30}))
    start_and_wait_progress(qtbot, window)
    window.run_actions.cancel.trigger()
    assert answer_yes and "discard" in answer_yes[0]
    assert wait_run(qtbot, window) == "cancelled"
    assert window.last_output_dir and not Path(window.last_output_dir).exists()


def test_closing_during_run_stops_cleanly(qtbot: Any, make_window: Any, answer_yes: list[str],
                                          tiny_config: Config, tmp_path: Path) -> None:
    window = make_window(tiny_config(tmp_path, **{"train.epochs": 30}))
    start_and_wait_progress(qtbot, window)
    window.close()
    assert answer_yes, "closing during a run must ask first"
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=RUN_TIMEOUT_MS)
    assert window.last_status == "stopped"
    assert not window.is_running and not running_threads()


def test_engine_error_is_shown_and_a_new_run_can_start(
        qtbot: Any, make_window: Any, errors_shown: list[str], tiny_config: Config,
        tmp_path: Path) -> None:
    empty = tmp_path / "no-images-in-here"  # there, but the run finds no class folders
    empty.mkdir()
    window = make_window(tiny_config(tmp_path, **{"data.dataset": "imagefolder",
                                                  "data.root": str(empty)}))
    assert window.start_run()
    assert wait_run(qtbot, window) == "failed"
    qtbot.waitUntil(lambda: bool(errors_shown), timeout=5000)
    assert len(errors_shown) == 1 and "\n" not in errors_shown[0]
    assert "no-images-in-here" in errors_shown[0]
    assert window.status_text().startswith("Failed")

    window.setup.set_config(tiny_config(tmp_path, **{"train.epochs": 1}))
    assert window.run_actions.start.isEnabled() and window.start_run()
    assert wait_run(qtbot, window) == "finished"


# ---- the run history --------------------------------------------------------------------------
def test_app_runs_are_recorded_and_listed(qtbot: Any, make_window: Any,
                                          three_epoch_config: Config, tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    w = make_window(three_epoch_config(tmp_path / "runs", **{"train.epochs": 2}), store,
                    error_dialogs=False)
    assert w.history_dock.widget() is w.history
    def start_paused() -> bool:
        started = w.start_run()
        w.control.pause()  # held at its first batch while the test looks
        return started

    wait_hook(qtbot, w, "on_fit_start", start_paused)
    # the run is in the store as soon as the window hears of it; it cannot be opened now
    w.history.refresh()
    assert [r.status for r in w.history.runs()] == ["running"]
    assert not w.history.open_run(w.history.runs()[0].id)
    assert "after it ends" in w.history.last_error
    w.control.resume()
    qtbot.waitUntil(lambda: not w.is_running, timeout=RUN_TIMEOUT_MS)
    assert w.last_status == "finished"
    runs = w.history.runs()
    assert [r.status for r in runs] == ["finished"] and runs[0].epochs_done == 2
    assert w.history.current_run_id == runs[0].id
    assert w.history.open_run(runs[0].id)
    assert "from the run history" in w.status_text()


def test_a_broken_store_does_not_stop_training(qtbot: Any, make_window: Any,
                                               three_epoch_config: Config,
                                               tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    store.write_bytes(b"this is not a run store" * 100)
    w = make_window(three_epoch_config(tmp_path / "runs", **{"train.epochs": 1}), store,
                    error_dialogs=False)
    messages: list[str] = []
    w.statusBar().messageChanged.connect(messages.append)
    with qtbot.waitSignal(w.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert w.start_run()
    assert blocker.args == ["finished"]
    said = [m for m in messages if "not recorded" in m]
    assert said and one_line(said[0]) and "store.sqlite" in said[0]
    assert one_line(w.history.last_error)


def test_user_actions_are_recorded_and_replayed(qtbot: Any, make_window: Any,
                                                tiny_config: Config, tmp_path: Path) -> None:
    """Pin from the network strip, pause and resume: the run records each with its time;
    opened again from the history, the unit is pinned (not "settling") and the log dates
    every line when it happened, not when the run was opened."""
    from learndrop.core.report import load_run
    from learndrop.core.store import RunStore

    store = tmp_path / "store.sqlite"
    window = make_window(tiny_config(tmp_path / "runs", **{"train.log_every": 1}), store,
                         error_dialogs=False)
    units: list[str] = []
    actions: list[Any] = []
    listen(window, "on_fit_start", lambda ev: units.extend(u.name for u in ev.units))
    listen(window, "on_user_action", actions.append)
    start_and_wait_progress(qtbot, window)
    window.live.strip.unit_action_requested.emit("pin", units[0])
    assert window.live.history.unit_state(0) == "pinned"  # shown at once
    window.toggle_pause()
    qtbot.waitUntil(lambda: [a.action for a in actions] == ["pin", "pause"], timeout=10_000)
    qtbot.wait(1100)
    window.toggle_pause()
    assert wait_run(qtbot, window) == "finished"
    assert [(a.action, a.unit) for a in actions] == [("pin", units[0]), ("pause", ""),
                                                     ("resume", "")]
    assert actions[2].time - actions[1].time >= 1.0
    log = window.live.event_log
    shown = [log.row_text(r) for r in range(log.row_count())]
    assert sum("Your action" in row for row in shown) == 3

    run_id = window.history.current_run_id
    with RunStore(store) as s:
        data = load_run(s, run_id)
    assert [a.action for a in data.actions] == ["pin", "pause", "resume"]
    assert {u.name: u.state for u in data.unit_rows()}[units[0]] == "pinned"

    qtbot.wait(1100)  # opening later than anything happened
    assert window.history.open_run(run_id)
    h = window.live.history
    assert h.unit_state(0) == "pinned" and not h.running
    assert h.log[0].wall_time == data.record.created
    stored = [a.time for a in data.actions]
    assert [e.wall_time for e in h.log if e.kind == "action"] == stored
    assert all(e.wall_time <= data.record.updated + 0.001 for e in h.log)


def test_resume_from_the_history_continues_the_same_run(
        qtbot: Any, make_window: Any, three_epoch_config: Config, tmp_path: Path) -> None:
    """A run stopped in its second epoch: Resume in the history continues it from its
    checkpoint into the same stored run, which then finishes its three epochs."""
    store = tmp_path / "store.sqlite"
    w = make_window(three_epoch_config(tmp_path / "runs"), store, error_dialogs=False)
    listen(w, "on_epoch_end", lambda ev: w.stop_run() if ev.epoch == 0 else None)
    assert w.start_run()
    assert wait_run(qtbot, w) == "stopped"
    w.history.refresh()
    (run,) = w.history.runs()
    assert run.status == "stopped" and run.epochs_done == 1
    w.history.select_run(run.id)
    assert w.history.resume_action.isEnabled()

    started = wait_hook(qtbot, w, "on_fit_start",
                        lambda: w.history.resume_action.trigger() or True)
    assert started.resumed_from_epoch == 1
    assert not w.setup.editor("train.epochs").widget.isEnabled() or w.state.busy
    assert wait_run(qtbot, w) == "finished"
    w.history.refresh()
    (again,) = w.history.runs()
    assert again.id == run.id and again.status == "finished" and again.epochs_done == 3
    assert again.output_dir == run.output_dir
    w.history.select_run(run.id)
    assert not w.history.resume_action.isEnabled()  # finished: nothing to continue
    assert not w.resume_run(run.id) and "finished all its epochs" in w.history.last_error
    assert one_line(w.history.last_error)


def test_use_these_settings_loads_a_run_into_the_form(
        qtbot: Any, make_window: Any, tiny_config: Config, tmp_path: Path) -> None:
    """The settings of a past run, with the pin made during it, fill the form for a new run
    (whose name is its own)."""
    store = tmp_path / "store.sqlite"
    w = make_window(tiny_config(tmp_path / "runs", **{"train.epochs": 1, "optim.lr": 0.02,
                                                     "train.log_every": 1}),
                    store, error_dialogs=False)
    units: list[str] = []
    listen(w, "on_fit_start", lambda ev: units.extend(u.name for u in ev.units))
    start_and_wait_progress(qtbot, w)
    w.live.strip.unit_action_requested.emit("pin", units[1])
    assert wait_run(qtbot, w) == "finished"
    w.setup.reset_defaults()
    assert w.setup.config().optim.lr != 0.02
    w.history.refresh()
    w.history.select_run(w.history.runs()[0].id)
    w.history.settings_action.trigger()
    cfg = w.setup.config()
    assert cfg.optim.lr == 0.02 and cfg.train.epochs == 1 and cfg.data.limit == 512
    assert cfg.drop.pinned == [units[1]] and cfg.output.name == ""
    assert w.setup.valid


def test_questions_about_a_run_close_when_it_ends(qtbot: Any, make_window: Any,
                                                  tiny_config: Config, tmp_path: Path) -> None:
    """"Cancel the run?" and "Stop training and quit?" go away by themselves when the run
    ends while they are asked; closing then goes on, as nothing is left to stop."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    def failsafe() -> None:  # never hang the test run if a question stays open
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            box.reject()

    seen: list[str] = []

    def look() -> None:
        """Record the question's text as soon as it shows (polled, so a fast run that ends
        within a moment of the question is still seen)."""
        timer = QTimer(window)

        def poll() -> None:
            box = QApplication.activeModalWidget()
            if isinstance(box, QMessageBox):
                seen.append(box.text())
                timer.stop()

        timer.timeout.connect(poll)
        timer.start(5)

    window = make_window(tiny_config(tmp_path, **{"train.epochs": 3}))
    start_and_wait_progress(qtbot, window)
    QTimer.singleShot(RUN_TIMEOUT_MS, failsafe)
    look()
    window.ask_cancel_run()  # returns once the run has ended by itself
    assert seen and "discard" in seen[0]
    assert window.last_status == "finished" and QApplication.activeModalWidget() is None
    assert "in progress" not in window.run_actions.start.toolTip()
    assert window.run_actions.start.toolTip().startswith("Train with these settings")

    window.setup.set_config(tiny_config(tmp_path, **{"train.epochs": 3}))
    start_and_wait_progress(qtbot, window)
    look()
    window.close()  # asks; the run ends meanwhile; the window then closes
    assert "in progress" in seen[-1]
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=RUN_TIMEOUT_MS)
    assert window.last_status == "finished"


def test_help_menu_has_a_guide_and_the_shortcuts(make_window: Any) -> None:
    window = make_window()
    menus = {a.text().replace("&", ""): a.menu() for a in window.menuBar().actions()}
    texts = [a.text().replace("&", "") for a in menus["Help"].actions() if a.text()]
    assert texts[:2] == ["Quick guide", "Keyboard shortcuts"]
    guide = next(a for a in menus["Help"].actions() if "guide" in a.text())
    guide.trigger()
    from PySide6.QtWidgets import QApplication, QMessageBox

    boxes = [w for w in QApplication.topLevelWidgets()
             if isinstance(w, QMessageBox) and w.isVisible()]
    assert any("five steps" in b.text() for b in boxes)
    keys = dict(window.shortcuts())
    assert keys["Start training"] and keys["Pause"] and keys["Run history"]
    assert keys["Refresh"] == "F5" and "Quick guide" in keys
    for box in boxes:
        box.close()


def test_a_run_stopped_mid_epoch_reads_the_same_everywhere(
        qtbot: Any, make_window: Any, three_epoch_config: Config, tmp_path: Path) -> None:
    """Stopped in its second epoch: one complete epoch in the history table, the gauges
    and the report; its partial epoch is drawn where it stopped, not at epoch 2; the
    checkpoint is logged at the step it was taken, with what a resume repeats."""
    from learndrop.core.report import tables
    from learndrop.core.store import RunStore

    store = tmp_path / "store.sqlite"
    w = make_window(three_epoch_config(tmp_path / "runs", **{"train.log_every": 1}), store,
                    error_dialogs=False)
    steps: list[int] = []

    def stop_there(ev: Any) -> None:
        # runs in the training thread (a direct connection), so the stop lands at exactly this
        # batch however late the window gets the queued signal; RunControl is thread-safe
        if ev.epoch == 1 and ev.batch == 2 and w.control is not None:
            w.control.stop()

    def on_progress(ev: Any) -> None:
        steps.append(ev.step)
        if ev.epoch == 1 and ev.batch == 2:
            w.stop_run()  # what the Stop button does, for the window's own state

    listen(w, "on_progress", stop_there, Qt.ConnectionType.DirectConnection)
    listen(w, "on_progress", on_progress)
    assert w.start_run()
    assert wait_run(qtbot, w) == "stopped"
    h = w.live.history
    spe = h.fit_start.steps_per_epoch
    x, _y = w.live.metrics.curve_data("val_loss")
    assert 1.0 < x[-1] < 2.0 and x[-1] == pytest.approx(h.epochs.view()[-1, 1])
    assert w.live.gauges.epoch_label.text() == "1 of 3 epochs complete"
    w.history.refresh()
    (run,) = w.history.runs()
    assert run.epochs_done == 1
    assert w.history.run_table.model.data(w.history.run_table.model.index(0, 5)) == "1/3"
    from learndrop.core.report import load_run

    with RunStore(store) as s:
        assert dict(tables.overview_rows(load_run(s, run.id)))["Epochs"] == "1 of 3"
    checkpoints = [e for e in h.log if e.kind == "checkpoint"]
    assert checkpoints[-1].epoch == pytest.approx(checkpoints[-1].step / spe)
    assert "checkpoint after 1 complete epoch: " in checkpoints[-1].text
