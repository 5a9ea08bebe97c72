"""The app's remembered settings: the last configuration, kept leniently."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from learndrop.app.services import settings
from learndrop.core.config import RunConfig


def test_last_settings_restored_and_damaged_file_ignored(
        tiny_config: Callable[..., RunConfig], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "last.toml"
    cfg = tiny_config(tmp_path, **{"train.epochs": 5})
    assert settings.save_last_config(cfg, path)
    assert settings.load_last_config(path).to_dict() == cfg.to_dict()

    path.write_text("this is [not toml", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert settings.load_last_config(path).to_dict() == RunConfig().to_dict()
    assert "damaged settings" in caplog.text


def test_view_choices_restored_at_the_next_start(qtbot: object) -> None:
    """Log scale, smoothing and its span, and the event log's filter come back when the app
    opens again (the window saves them when it closes)."""
    from learndrop.app.main_window import MainWindow

    first = MainWindow(remember=True)
    first.live.score_plot.set_log_scale(True)
    first.live.score_plot.set_smoothing(True)
    first.live.score_plot.set_smoothing_span(12)
    first.live.event_log.set_kind_shown("checkpoint", False)
    first.close()
    assert settings.load_view_options()["score_plot"] == {
        "log_scale": True, "smooth": True, "smooth_checks": 12}
    second = MainWindow(remember=True)
    plot = second.live.score_plot
    assert plot.log_box.isChecked() and plot.smooth_box.isChecked()
    assert plot.span_box.value() == 12 and second.live.event_log.hidden == {"checkpoint"}
    second.close()
    (settings.config_home() / settings.VIEW_FILE).write_text("[score_plot\nbroken")
    assert settings.load_view_options() == {}
    for name in (settings.VIEW_FILE, settings.LAYOUT_FILE, settings.FILE_NAME):
        (settings.config_home() / name).unlink(missing_ok=True)  # other tests start afresh
