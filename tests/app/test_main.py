"""The app's entry point (``learndrop studio``): the scripted mode, bad input, no display."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from learndrop.app.main import main
from learndrop.core.config import RunConfig, save_config

pytestmark = pytest.mark.gui


@pytest.mark.slow
def test_cli_runs_config_and_saves_screenshot(tiny_config: Callable[..., RunConfig],
                                              tmp_path: Path) -> None:
    """The scripted mode, in its own process: it runs (and quits) a whole QApplication."""
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
