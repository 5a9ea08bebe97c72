"""A run setup with ``train.nproc = 2``: the window starts two local processes and follows
their run through the store like any run (pytest-qt, offscreen; bounded by the wait)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from learndrop.core.config import RunConfig

pytestmark = [pytest.mark.gui, pytest.mark.slow]

RUN_TIMEOUT_MS = 240_000


def test_two_process_run_is_followed_to_its_end(qtbot: Any, make_window: Any,
                                                tiny_config: Callable[..., RunConfig],
                                                tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, **{"train.nproc": 2, "data.limit": 128, "train.epochs": 4,
                                   "train.batch_size": 16, "drop.check_every": 2})
    window = make_window(cfg, store_path=tmp_path / "store.sqlite")
    assert window.setup.editor("train.nproc") is not None  # the field is in the form
    hooks: list[str] = []
    window.signals.hook.connect(lambda hook, _payload: hooks.append(hook))
    assert window.start_run()
    qtbot.waitUntil(lambda: not window.is_running, timeout=RUN_TIMEOUT_MS)
    assert window.last_status == "finished"
    assert "on_drop" in hooks and hooks[-1] == "on_fit_end"
    assert hooks.index("on_fit_start") < hooks.index("on_drop")
    assert "all-reduce" in window.live.gauges.params.detail.text()
