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
