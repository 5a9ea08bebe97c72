"""The main window (pytest-qt, offscreen): Start blocked by a bad setting, the run life cycle
(drop, pause, stop, cancel, close, failure) and the runs it records in the run history."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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


def start_and_wait_progress(qtbot: Any, window: MainWindow) -> None:
    with qtbot.waitSignal(window.signals.progress, timeout=RUN_TIMEOUT_MS):
        assert window.start_run()


# ---- the form -------------------------------------------------------------------------------
def test_invalid_value_marks_field_and_blocks_start(make_window: Any) -> None:
    window = make_window(RunConfig())
    assert window.run_actions.start.isEnabled()
    window.setup.editor("data.dataset").set("imagefolder")  # needs data.root
    root = window.setup.editor("data.root").widget
    assert root.property("invalid") is True
    assert "needs data.root" in root.toolTip()
    assert not window.run_actions.start.isEnabled()
    reason = window.setup.findChild(type(window.state_label), "start-blocked-reason")
    assert reason.isVisible() and "data.root" in reason.text()
    assert not window.start_run()

    window.setup.editor("data.root").set("/some/images")
    assert root.property("invalid") is False
    assert window.run_actions.start.isEnabled() and not reason.isVisible()


# ---- runs -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_run_drops_then_finishes(qtbot: Any, make_window: Any, tiny_config: Config,
                                      tmp_path: Path) -> None:
    window = make_window(tiny_config(tmp_path))
    with qtbot.waitSignals([window.signals.dropped, window.signals.fit_ended],
                           order="simple", timeout=RUN_TIMEOUT_MS):
        assert window.start_run()
    assert wait_run(qtbot, window) == "finished"
    assert window.status_text().startswith("Finished")
    assert window.state is RunState.IDLE and window.run_actions.start.isEnabled()


@pytest.mark.slow
def test_pause_holds_progress_then_resume_finishes(qtbot: Any, make_window: Any,
                                                   tiny_config: Config, tmp_path: Path) -> None:
    window = make_window(tiny_config(tmp_path, **{"train.log_every": 1}))
    steps: list[int] = []
    units: list[str] = []
    window.signals.progress.connect(lambda ev: steps.append(ev.step))
    window.signals.fit_started.connect(lambda ev: units.extend(u.name for u in ev.units))
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
    missing = tmp_path / "no-such-images"
    window = make_window(tiny_config(tmp_path, **{"data.dataset": "imagefolder",
                                                  "data.root": str(missing)}))
    assert window.start_run()
    assert wait_run(qtbot, window) == "failed"
    qtbot.waitUntil(lambda: bool(errors_shown), timeout=5000)
    assert len(errors_shown) == 1 and "\n" not in errors_shown[0]
    assert "no-such-images" in errors_shown[0] or "data.root" in errors_shown[0]
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
    with qtbot.waitSignal(w.signals.fit_started, timeout=RUN_TIMEOUT_MS):
        assert w.start_run()
        w.control.pause()  # held at its first batch while the test looks
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
