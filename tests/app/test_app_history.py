"""Run history in the desktop app (pytest-qt, offscreen): recording runs started in the app,
the history table and its actions, replaying and following runs, comparing and exporting."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QInputDialog, QMessageBox

from learndrop.app.compare_view import CompareView
from learndrop.app.export_dialog import ExportDialog
from learndrop.app.history_panel import COLUMNS, HistoryPanel
from learndrop.app.live_panel import LivePanel
from learndrop.app.main_window import MainWindow
from learndrop.core.config import RunConfig
from learndrop.core.events import Callback, EpochEnd
from learndrop.core.report import load_run
from learndrop.core.store import RunStore, StoreRecorder
from learndrop.core.training import RunControl, Trainer

pytestmark = pytest.mark.gui

TIMEOUT_MS = 60_000


def tiny_config(out: Path, **changes: Any) -> RunConfig:
    """Three short epochs on CPU; units drop from the second epoch on."""
    cfg = RunConfig()
    values = {"data.dataset": "digits", "data.limit": 320, "data.image_size": 16,
              "model.name": "small_cnn", "train.epochs": 3, "train.batch_size": 32,
              "train.device": "cpu", "drop.threshold": 1.0, "drop.patience": 1,
              "drop.warmup_epochs": 1, "drop.window": 2, "drop.trend_tolerance": 10.0,
              "output.dir": str(out), **changes}
    for path, value in values.items():
        cfg.set(path, value)
    return cfg


class Recorded:
    """The module's store with a Learn&Drop run and its baseline."""

    def __init__(self, store: Path, ld: int, base: int) -> None:
        self.store, self.ld, self.base = store, ld, base

    def counts(self, run: int) -> Counter[str]:
        with RunStore(self.store) as s:
            return Counter(type(e).__name__ for e in s.load_events(run))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    root = tmp_path_factory.mktemp("history")
    store = root / "store.sqlite"
    ids = []
    for changes in ({}, {"drop.enabled": False}):
        recorder = StoreRecorder(store)
        result = Trainer(tiny_config(root / "runs", **changes), [recorder]).fit()
        assert result.status == "finished" and recorder.error is None
        ids.append(recorder.run_id)
    return Recorded(store, *ids)


@pytest.fixture
def store_copy(recorded: Recorded, tmp_path: Path) -> Path:
    """A copy of the module's store, for tests that change it."""
    path = tmp_path / "copy.sqlite"
    src, dst = sqlite3.connect(recorded.store), sqlite3.connect(path)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return path


@pytest.fixture
def panel(qtbot: Any, recorded: Recorded) -> HistoryPanel:
    live = LivePanel()
    qtbot.addWidget(live)
    view = HistoryPanel(recorded.store, live=live)
    qtbot.addWidget(view)
    assert view.refresh()
    yield view
    view.close_store()


def one_line(text: str) -> bool:
    return bool(text) and "\n" not in text


# ---- the table --------------------------------------------------------------------------------
def test_history_lists_runs_and_filters(panel: HistoryPanel, recorded: Recorded) -> None:
    runs = panel.runs()
    assert [r.id for r in runs] == [recorded.base, recorded.ld]  # newest first
    model = panel.proxy
    cells = {COLUMNS[c]: model.index(1, c).data() for c in range(len(COLUMNS))}
    ld = runs[1]
    assert cells["Name"] == ld.name and cells["Status"] == "finished"
    assert cells["Epochs"] == "3/3" and cells["Model"] == "small_cnn"
    assert cells["Data set"] == "digits" and cells["Accuracy"].endswith("%")
    assert cells["Saved"] == f"{ld.train_flops_saved * 100:.1f}%"
    assert model.index(0, COLUMNS.index("Saved")).data() == "baseline"
    assert panel.count_label.text() == "2 runs"

    panel.filter_edit.setText("BASELINE")
    assert [r.id for r in panel.runs()] == [recorded.base]
    assert panel.count_label.text() == "1 of 2 runs"
    panel.filter_edit.clear()
    assert len(panel.runs()) == 2

    panel.select_run(recorded.ld)
    assert panel.open_action.isEnabled() and not panel.follow_action.isEnabled()


# ---- open -------------------------------------------------------------------------------------
def test_open_replays_the_run_into_the_live_panel(panel: HistoryPanel,
                                                  recorded: Recorded) -> None:
    opened: list[tuple[int, str, str]] = []
    panel.run_opened.connect(lambda *a: opened.append(a))
    panel.select_run(recorded.ld)
    assert panel.open_run()
    counts = recorded.counts(recorded.ld)
    h = panel.live.history
    assert counts["DropEvent"] > 0
    assert h.n_checks() == counts["ScoreCheck"]
    assert len(h.drops) == counts["DropEvent"]
    assert len(h.epochs) == counts["EpochEnd"] == 3
    assert h.fit_end is not None and h.fit_end.status == "finished"
    assert opened and opened[0][0] == recorded.ld and opened[0][2] == "open"
    assert panel.current_run_id == recorded.ld

    assert panel.open_run(recorded.base)  # the baseline replaces it
    assert len(panel.live.history.drops) == 0 and len(panel.live.history.epochs) == 3


def test_open_is_refused_while_training_here(qtbot: Any, recorded: Recorded) -> None:
    live = LivePanel()
    qtbot.addWidget(live)
    view = HistoryPanel(recorded.store, live=live, busy=lambda: True)
    qtbot.addWidget(view)
    assert not view.open_run(recorded.ld)
    assert one_line(view.last_error) and "after it ends" in view.last_error
    assert live.history.fit_start is None
    view.close_store()


# ---- compare ----------------------------------------------------------------------------------
def test_compare_shows_both_runs_and_their_savings(qtbot: Any, panel: HistoryPanel,
                                                   recorded: Recorded) -> None:
    # asked in either order, the baseline is the reference
    view = panel.compare_with(recorded.base, recorded.ld)
    assert isinstance(view, CompareView)
    qtbot.addWidget(view)
    ld, base = view.runs
    assert (ld.record.id, base.record.id) == (recorded.ld, recorded.base)
    assert len(view.curves) == 2
    for label, data in zip(view.labels, view.runs):
        loss = view.curves[label][0]
        assert len(loss.xData) == len(data.epochs) == 3
    assert view.value("Units dropped", 0) == f"{len(ld.drops)} of 4"
    assert view.value("Units dropped", 1) == "0 of 4"
    assert view.value("Training FLOPs saved", 0) == \
        f"{ld.savings().train_flops_saved * 100:.1f}%"
    acc = ld.accuracy().final_val_accuracy - base.accuracy().final_val_accuracy
    assert view.value("Accuracy vs reference", 0) == f"{acc * 100:+.2f} points"
    assert view.value("Accuracy vs reference", 1) == "reference"
    assert view.value("Wall time", 1).endswith("s")
    assert view.value("Efficiency", 1) == "–"
    assert len(view.drop_markers[0].points()) == len(ld.drops) > 0
    assert len(view.drop_markers[1].points()) == 0
    tip = view.drop_markers[0].points()[0].data()
    assert ld.drops[0].unit in tip and "epoch" in tip


def test_compare_asks_for_the_other_run(panel: HistoryPanel, recorded: Recorded,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []

    def get_item(parent: Any, title: str, label: str, items: list[str], *args: Any) -> Any:
        asked.append(items)
        return items[0], True

    monkeypatch.setattr(QInputDialog, "getItem", staticmethod(get_item))
    panel.select_run(recorded.ld)
    view = panel.compare_with()
    assert asked and "baseline" in asked[0][0]
    assert view is not None and view.runs[1].record.id == recorded.base
    view.close()


# ---- export -----------------------------------------------------------------------------------
def test_export_writes_every_format(qtbot: Any, recorded: Recorded, tmp_path: Path) -> None:
    with RunStore(recorded.store) as store:
        dialog = ExportDialog(store, recorded.ld, compare=[recorded.base], title="ld vs base")
        qtbot.addWidget(dialog)
        written = {}
        for fmt in ("html", "csv", "json", "pdf"):
            dialog.set_format(fmt)
            dialog.set_path(tmp_path / f"report.{fmt}")
            path = dialog.export_now()
            assert path == tmp_path / f"report.{fmt}" and dialog.last_error == ""
            assert str(path) in dialog.result_label.text()
            written[fmt] = path
        name = load_run(store, recorded.ld).name
        html = written["html"].read_text(encoding="utf-8")
        assert html.lstrip().lower().startswith("<!doctype html") and name in html
        lines = written["csv"].read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("run,check,step") and len(lines) > 3
        report = json.loads(written["json"].read_text(encoding="utf-8"))
        assert report["format"] == "learndrop-report" and report["run"]["run"]["name"] == name
        assert report["baseline"] == load_run(store, recorded.base).name
        assert written["pdf"].read_bytes()[:5] == b"%PDF-"

        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        dialog.set_format("html")
        dialog.set_path(blocker / "report.html")  # its "folder" is a file
        assert dialog.export_now() is None
        assert one_line(dialog.last_error) and "cannot write" in dialog.last_error
        assert "Not exported" in dialog.result_label.text()


def test_export_follows_the_format_in_the_file_name(qtbot: Any, recorded: Recorded,
                                                    tmp_path: Path) -> None:
    with RunStore(recorded.store) as store:
        dialog = ExportDialog(store, recorded.ld, title="my run", folder=tmp_path)
        qtbot.addWidget(dialog)
        assert dialog.path_edit.text() == str(tmp_path / "my-run-report.html")
        dialog.set_format("json")
        assert dialog.path_edit.text() == str(tmp_path / "my-run-report.json")


# ---- changing runs ----------------------------------------------------------------------------
def test_rename_and_note_persist(qtbot: Any, store_copy: Path, recorded: Recorded,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    view = HistoryPanel(store_copy)
    qtbot.addWidget(view)
    view.refresh()
    monkeypatch.setattr(QInputDialog, "getText",
                        staticmethod(lambda *a, **k: ("  My baseline ", True)))
    monkeypatch.setattr(QInputDialog, "getMultiLineText",
                        staticmethod(lambda *a, **k: ("first line\nsecond line\n", True)))
    view.select_run(recorded.base)
    assert view.rename_run() and view.edit_note()
    with RunStore(store_copy) as store:
        run = store.get_run(recorded.base)
    assert (run.display_name, run.note) == ("My baseline", "first line\nsecond line")
    row = [r.id for r in view.runs()].index(recorded.base)
    assert view.proxy.index(row, 0).data() == "My baseline ✎"
    view.filter_edit.setText("second line")  # the filter finds notes too
    assert [r.id for r in view.runs()] == [recorded.base]

    assert not view.rename_run(recorded.base, "two\nlines")
    assert one_line(view.last_error)
    assert view.rename_run(recorded.base, "")  # empty: the run's own name again
    with RunStore(store_copy) as store:
        assert store.get_run(recorded.base).display_name == ""
    view.close_store()


def test_delete_asks_then_removes(qtbot: Any, store_copy: Path, recorded: Recorded,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked: list[str] = []

    def question(parent: Any, title: str, text: str, *args: Any) -> Any:
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    view = HistoryPanel(store_copy)
    qtbot.addWidget(view)
    view.refresh()
    with RunStore(store_copy) as store:
        folder = Path(store.get_run(recorded.base).output_dir)
    assert folder.is_dir()
    view.select_run(recorded.base)
    assert not view.delete_run()  # answered No
    assert len(view.runs()) == 2 and folder.is_dir()
    assert view.delete_run()
    assert len(asked) == 2 and "cannot be undone" in asked[0]
    assert [r.id for r in view.runs()] == [recorded.ld]
    assert not folder.exists()
    with RunStore(store_copy) as store:
        assert [r.id for r in store.list_runs()] == [recorded.ld]
    view.close_store()


# ---- follow -----------------------------------------------------------------------------------
def test_follow_a_run_written_by_another_thread(qtbot: Any, tmp_path: Path) -> None:
    store_path = tmp_path / "store.sqlite"
    control = RunControl()
    control.pause()  # held at its first batch until the follower is watching

    class PauseAfterFirstEpoch(Callback):  # so the test sees the run half-way
        def on_epoch_end(self, event: EpochEnd) -> None:
            if event.epoch == 0:
                control.pause()

    trainer = Trainer(tiny_config(tmp_path / "runs"),
                      [StoreRecorder(store_path), PauseAfterFirstEpoch()], control)
    thread = threading.Thread(target=trainer.fit, name="test-writer")
    live = LivePanel()
    qtbot.addWidget(live)
    view = HistoryPanel(store_path, live=live)
    qtbot.addWidget(view)
    polls: list[int] = []
    ended: list[tuple[str, str]] = []
    view.following_ended.connect(lambda *a: ended.append(a))
    thread.start()
    try:
        qtbot.waitUntil(lambda: view.refresh() and len(view.runs()) == 1, timeout=TIMEOUT_MS)
        run = view.select_run(view.runs()[0].id)
        assert run is not None and run.status == "running"
        assert view.follow_action.isEnabled()
        assert view.follow_run()
        assert view.follower is not None
        view.follower.received.connect(polls.append)
        assert live.history.running and live.history.fit_end is None
        control.resume()
        qtbot.waitUntil(lambda: len(live.history.epochs) == 1, timeout=TIMEOUT_MS)
        assert live.history.running and view.following
        control.resume()
        qtbot.waitUntil(lambda: bool(ended), timeout=TIMEOUT_MS)
    finally:
        if not ended:  # the test failed: end the run quickly
            control.cancel()
        control.resume()
        thread.join(TIMEOUT_MS / 1000)
    assert not thread.is_alive()
    assert ended[0][0] == "finished" and not view.following
    counts: Counter[str] = Counter()
    with RunStore(store_path) as store:
        counts.update(type(e).__name__ for e in store.load_events(run.id))
    h = live.history
    assert h.fit_end is not None and h.fit_end.status == "finished"
    assert h.n_checks() == counts["ScoreCheck"] and len(h.epochs) == 3
    assert len(h.drops) == counts["DropEvent"] > 0
    assert len(polls) >= 2, "the events should arrive over several polls"
    view.close_store()


# ---- the main window --------------------------------------------------------------------------
@pytest.fixture
def window(qtbot: Any, tmp_path: Path) -> Any:
    made: list[MainWindow] = []

    def build(cfg: RunConfig, store: Path) -> MainWindow:
        w = MainWindow(cfg, remember=False, store_path=store)
        w.show_error_dialogs = False
        w.show()
        made.append(w)
        return w

    yield build
    for w in made:
        if w.is_running and w.control is not None:
            w.control.cancel()
            qtbot.waitUntil(lambda w=w: not w.is_running, timeout=TIMEOUT_MS)
        w.close()
        w.deleteLater()


def test_app_runs_are_recorded_and_listed(qtbot: Any, window: Any, tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    w = window(tiny_config(tmp_path / "runs", **{"train.epochs": 2}), store)
    assert w.history_dock.widget() is w.history
    with qtbot.waitSignal(w.signals.fit_started, timeout=TIMEOUT_MS):
        assert w.start_run()
        w.control.pause()  # held at its first batch while the test looks
    # the run is in the store as soon as the window hears of it; it cannot be opened now
    w.history.refresh()
    assert [r.status for r in w.history.runs()] == ["running"]
    assert not w.history.open_run(w.history.runs()[0].id)
    assert "after it ends" in w.history.last_error
    w.control.resume()
    qtbot.waitUntil(lambda: not w.is_running, timeout=TIMEOUT_MS)
    assert w.last_status == "finished"
    runs = w.history.runs()
    assert [r.status for r in runs] == ["finished"] and runs[0].epochs_done == 2
    assert w.history.current_run_id == runs[0].id
    assert w.history.open_run(runs[0].id)
    assert "from the run history" in w.status_text()


def test_a_broken_store_does_not_stop_training(qtbot: Any, window: Any,
                                               tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    store.write_bytes(b"this is not a run store" * 100)
    w = window(tiny_config(tmp_path / "runs", **{"train.epochs": 1}), store)
    messages: list[str] = []
    w.statusBar().messageChanged.connect(messages.append)
    with qtbot.waitSignal(w.run_finished, timeout=TIMEOUT_MS) as blocker:
        assert w.start_run()
    assert blocker.args == ["finished"]
    said = [m for m in messages if "not recorded" in m]
    assert said and one_line(said[0]) and "store.sqlite" in said[0]
    assert one_line(w.history.last_error)
