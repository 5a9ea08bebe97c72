"""Desktop app tests (pytest-qt, offscreen): the form, the run life cycle, the CLI mode."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QMessageBox

from learndrop.app import settings
from learndrop.app.controls import RunState
from learndrop.app.main import main
from learndrop.app.main_window import MainWindow
from learndrop.app.setup_panel import SetupPanel
from learndrop.app.worker import running_threads
from learndrop.core.config import RunConfig, load_config, save_config

pytestmark = pytest.mark.gui

RUN_TIMEOUT_MS = 60_000


def tiny_config(out: Path, **changes: Any) -> RunConfig:
    """A run of a few seconds on CPU that drops units in its first epoch."""
    cfg = RunConfig()
    values = {"data.dataset": "digits", "data.limit": 512, "model.name": "small_cnn",
              "train.epochs": 2,
              "train.batch_size": 64, "train.device": "cpu", "train.log_every": 2,
              "drop.threshold": 1.0, "drop.patience": 1, "drop.warmup_epochs": 0,
              "drop.check_every": 5, "drop.window": 2, "drop.trend_tolerance": 10.0,
              "output.dir": str(out), **changes}
    for path, value in values.items():
        cfg.set(path, value)
    return cfg


@pytest.fixture
def make_window(qtbot: Any) -> Any:
    """Build main windows that forget their settings and never outlive a running run."""
    made: list[MainWindow] = []

    def build(cfg: RunConfig | None = None) -> MainWindow:
        window = MainWindow(cfg, remember=False)
        window.show()
        made.append(window)
        return window

    yield build
    for window in made:  # cancel first: closing during a run would ask
        if window.is_running and window.control is not None:
            window.control.cancel()
            qtbot.waitUntil(lambda w=window: not w.is_running, timeout=RUN_TIMEOUT_MS)
        window.close()
        window.deleteLater()


@pytest.fixture
def answer_yes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Accept every confirmation; returns the questions asked."""
    asked: list[str] = []

    def question(parent: Any, title: str, text: str, *args: Any) -> Any:
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    return asked


@pytest.fixture
def errors_shown(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Capture error boxes instead of showing them."""
    shown: list[str] = []

    def critical(parent: Any, title: str, text: str, *args: Any) -> Any:
        shown.append(text)
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "critical", staticmethod(critical))
    return shown


def wait_run(qtbot: Any, window: MainWindow) -> str:
    qtbot.waitUntil(lambda: not window.is_running, timeout=RUN_TIMEOUT_MS)
    return window.last_status


def start_and_wait_progress(qtbot: Any, window: MainWindow) -> None:
    with qtbot.waitSignal(window.signals.progress, timeout=RUN_TIMEOUT_MS):
        assert window.start_run()


# ---- the form ---------------------------------------------------------------------------------
def test_form_to_config_and_back(qtbot: Any, tmp_path: Path) -> None:
    panel = SetupPanel(RunConfig())
    qtbot.addWidget(panel)
    panel.editor("model.name").set("resnet20")
    panel.editor("train.epochs").widget.setValue(7)
    panel.editor("optim.optimizer").widget.setCurrentText("adam")
    panel.editor("optim.lr").widget.setValue(0.003)
    panel.editor("drop.threshold").widget.setValue(0.35)
    panel.editor("drop.order").widget.setCurrentText("any")
    panel.editor("data.augment").widget.setChecked(True)
    panel.editor("drop.pinned").set(["stage1", "stage2"])
    panel.findChild(type(panel.editor("data.augment").widget), "baseline").setChecked(True)
    cfg = panel.config()
    assert (cfg.model.name, cfg.train.epochs, cfg.optim.optimizer) == ("resnet20", 7, "adam")
    assert cfg.optim.lr == pytest.approx(0.003)
    assert cfg.drop.threshold == pytest.approx(0.35)
    assert (cfg.drop.order, cfg.data.augment, cfg.drop.enabled) == ("any", True, False)
    assert cfg.drop.pinned == ["stage1", "stage2"]

    other = tiny_config(tmp_path, **{"optim.schedule": "step", "train.batch_size": 32,
                                     "drop.mode": "skip", "output.name": "demo"})
    path = save_config(other, tmp_path / "run.toml")
    assert panel.load_file(path)
    assert panel.editor("optim.schedule").widget.currentText() == "step"
    assert panel.editor("train.batch_size").widget.value() == 32
    assert panel.editor("drop.mode").widget.currentText() == "skip"
    assert panel.editor("output.dir").get() == str(tmp_path)
    assert panel.config().to_dict() == load_config(path).to_dict()


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


def test_last_settings_restored_and_damaged_file_ignored(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "last.toml"
    cfg = tiny_config(tmp_path, **{"train.epochs": 5})
    assert settings.save_last_config(cfg, path)
    assert settings.load_last_config(path).to_dict() == cfg.to_dict()

    path.write_text("this is [not toml", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert settings.load_last_config(path).to_dict() == RunConfig().to_dict()
    assert "damaged settings" in caplog.text


# ---- runs -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_run_drops_then_finishes(qtbot: Any, make_window: Any, tmp_path: Path) -> None:
    window = make_window(tiny_config(tmp_path))
    with qtbot.waitSignals([window.signals.dropped, window.signals.fit_ended],
                           order="simple", timeout=RUN_TIMEOUT_MS):
        assert window.start_run()
    assert wait_run(qtbot, window) == "finished"
    assert window.status_text().startswith("Finished")
    assert window.state is RunState.IDLE and window.run_actions.start.isEnabled()


@pytest.mark.slow
def test_pause_holds_progress_then_resume_finishes(qtbot: Any, make_window: Any,
                                                   tmp_path: Path) -> None:
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


def test_stop_keeps_a_checkpoint(qtbot: Any, make_window: Any, tmp_path: Path) -> None:
    window = make_window(tiny_config(tmp_path, **{"train.epochs": 30}))
    start_and_wait_progress(qtbot, window)
    window.stop_run()
    assert wait_run(qtbot, window) == "stopped"
    assert window.status_text().startswith("Stopped")
    out = Path(window.last_output_dir)
    assert out.is_dir() and list(out.rglob("*.pt")), "no checkpoint kept"


def test_cancel_asks_then_discards(qtbot: Any, make_window: Any, answer_yes: list[str],
                                   tmp_path: Path) -> None:
    window = make_window(tiny_config(tmp_path, **{"train.epochs": 30}))
    start_and_wait_progress(qtbot, window)
    window.run_actions.cancel.trigger()
    assert answer_yes and "discard" in answer_yes[0]
    assert wait_run(qtbot, window) == "cancelled"
    assert window.last_output_dir and not Path(window.last_output_dir).exists()


def test_closing_during_run_stops_cleanly(qtbot: Any, make_window: Any, answer_yes: list[str],
                                          tmp_path: Path) -> None:
    window = make_window(tiny_config(tmp_path, **{"train.epochs": 30}))
    start_and_wait_progress(qtbot, window)
    window.close()
    assert answer_yes, "closing during a run must ask first"
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=RUN_TIMEOUT_MS)
    assert window.last_status == "stopped"
    assert not window.is_running and not running_threads()


def test_engine_error_is_shown_and_a_new_run_can_start(
        qtbot: Any, make_window: Any, errors_shown: list[str], tmp_path: Path) -> None:
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


# ---- launching --------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_runs_config_and_saves_screenshot(tmp_path: Path) -> None:
    """The scripted mode, in its own process: it runs (and quits) a whole QApplication."""
    import os
    import subprocess
    import sys

    config = save_config(tiny_config(tmp_path / "runs"), tmp_path / "tiny.toml")
    shot = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-m", "learndrop.core.cli", "studio", "--config",
                           str(config), "--autostart", "--exit-when-done", "--screenshot",
                           str(shot)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_config_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.toml" in err and "\n" not in err


def test_no_display_names_the_headless_command(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert main([]) == 2
    err = capsys.readouterr().err.strip()
    assert "no display" in err and "learndrop train" in err and "\n" not in err
