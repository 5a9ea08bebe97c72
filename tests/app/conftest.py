"""Fixtures shared by the app tests (pytest-qt, offscreen): small run configurations, main
windows that never outlive their run, a store with two recorded runs, the panels built on it,
and message boxes answered without a person."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from factories import make_live_stream
from factories import tiny_config as tiny_run
from learndrop.app.main_window import MainWindow
from learndrop.app.panels import HistoryPanel, LivePanel
from learndrop.app.services import RunLibrary
from learndrop.core.config import RunConfig
from learndrop.core.store import RunStore, StoreRecorder
from learndrop.core.training import Trainer

RUN_TIMEOUT_MS = 60_000

ConfigFactory = Callable[..., RunConfig]


def _quick_config(out: Path, **changes: Any) -> RunConfig:
    """A run of a few seconds on CPU that drops units in its first epoch."""
    return tiny_run(out, **{
        "data.limit": 512, "data.image_size": 0, "train.epochs": 2, "train.batch_size": 64,
        "train.device": "cpu", "train.log_every": 2, "drop.warmup_epochs": 0,
        "drop.check_every": 5, **changes})


def _three_epoch_config(out: Path, **changes: Any) -> RunConfig:
    """Three short epochs on CPU; units drop from the second epoch on."""
    return tiny_run(out, **{"train.epochs": 3, "train.device": "cpu", **changes})


@pytest.fixture
def tiny_config() -> ConfigFactory:
    """``tiny_config(out, **changes)``: a run of a few seconds that drops in its first
    epoch, writing under ``out``."""
    return _quick_config


@pytest.fixture
def three_epoch_config() -> ConfigFactory:
    """``three_epoch_config(out, **changes)``: three short epochs, drops from the second."""
    return _three_epoch_config


# ---- message boxes ----------------------------------------------------------------------------
class UnaskedBoxes:
    """The message boxes a test did not answer itself (``texts``), and how long one shown
    with ``exec`` stays open before it is rejected (``limit_ms``)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.limit_ms = 90_000


@pytest.fixture(autouse=True)
def message_boxes(monkeypatch: pytest.MonkeyPatch) -> Iterator[UnaskedBoxes]:
    """Offscreen, nobody answers a modal message box, and one that opens unasked (an error
    box after a run failed, say) would hang the whole test run. A box the test did not ask
    for (with ``errors_shown``, ``answer_yes`` or its own patch) is answered No at once, or
    rejected after ``limit_ms`` when shown with ``exec``, and the test fails naming it."""
    unasked = UnaskedBoxes()

    def static_box(kind: str) -> Any:
        def show(parent: Any, title: str, text: str, *args: Any) -> Any:
            unasked.texts.append(f"{kind} box {title!r}: {text}")
            return QMessageBox.StandardButton.No
        return staticmethod(show)

    for kind in ("critical", "warning", "information", "question"):
        monkeypatch.setattr(QMessageBox, kind, static_box(kind))
    shown_with_exec = QMessageBox.exec

    def exec_within_limit(box: QMessageBox) -> int:
        def give_up() -> None:
            unasked.texts.append(f"message box left open: {box.text()}")
            box.reject()

        limit = QTimer(box)
        limit.setSingleShot(True)
        limit.timeout.connect(give_up)
        limit.start(unasked.limit_ms)
        return int(shown_with_exec(box))

    monkeypatch.setattr(QMessageBox, "exec", exec_within_limit)
    yield unasked
    if unasked.texts:
        pytest.fail("a message box opened that the test did not answer: "
                    + "; ".join(unasked.texts), pytrace=False)


# ---- the main window --------------------------------------------------------------------------
@pytest.fixture
def make_window(qtbot: Any) -> Iterator[Callable[..., MainWindow]]:
    """Build shown main windows that forget their settings and never outlive a running run:
    ``make_window(cfg, store_path=None, error_dialogs=True)``."""
    made: list[MainWindow] = []

    def build(cfg: RunConfig | None = None, store_path: Path | None = None,
              error_dialogs: bool = True) -> MainWindow:
        window = MainWindow(cfg, remember=False, store_path=store_path)
        window.show_error_dialogs = error_dialogs
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

    def exec_(box: QMessageBox) -> int:
        asked.append(box.text())
        return int(QMessageBox.StandardButton.Yes.value)

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    monkeypatch.setattr(QMessageBox, "exec", exec_)
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


# ---- recorded runs ----------------------------------------------------------------------------
class Recorded:
    """The session's store with a Learn&Drop run (``ld``) and its baseline (``base``)."""

    def __init__(self, store: Path, ld: int, base: int) -> None:
        self.store, self.ld, self.base = store, ld, base

    def counts(self, run: int) -> Counter[str]:
        with RunStore(self.store) as s:
            return Counter(type(e).__name__ for e in s.load_events(run))


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    root = tmp_path_factory.mktemp("history")
    store = root / "store.sqlite"
    ids = []
    for changes in ({}, {"drop.enabled": False}):
        recorder = StoreRecorder(store)
        result = Trainer(_three_epoch_config(root / "runs", **changes), [recorder]).fit()
        assert result.status == "finished" and recorder.error is None
        ids.append(recorder.run_id)
    return Recorded(store, *ids)


@pytest.fixture
def store_copy(recorded: Recorded, tmp_path: Path) -> Path:
    """A copy of the session's store, for tests that change it."""
    path = tmp_path / "copy.sqlite"
    src, dst = sqlite3.connect(recorded.store), sqlite3.connect(path)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return path


@pytest.fixture
def library(recorded: Recorded) -> Iterator[RunLibrary]:
    """The run library of the session's store (read only: use ``store_copy`` to change)."""
    lib = RunLibrary(recorded.store)
    yield lib
    lib.close()


@pytest.fixture
def stream() -> list[tuple[str, Any]]:
    """A 12-unit, 8-epoch run for the live views (see ``factories.make_live_stream``)."""
    return make_live_stream()


@pytest.fixture
def live_panel(qtbot: Any) -> LivePanel:
    panel = LivePanel()
    qtbot.addWidget(panel)
    panel.resize(1400, 900)
    return panel


@pytest.fixture
def history_panel(qtbot: Any, library: RunLibrary, live_panel: LivePanel
                  ) -> Iterator[HistoryPanel]:
    """The run history of the session's store, feeding a live panel."""
    view = HistoryPanel(library, live=live_panel)
    qtbot.addWidget(view)
    assert view.refresh()
    yield view
    view.close_store()
