"""The run history panel (pytest-qt, offscreen): the table and its filter, replaying and
following runs, choosing a run to compare with, renaming, notes and deleting."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QInputDialog, QMessageBox

from learndrop.app.panels import HistoryPanel, LivePanel
from learndrop.app.panels.run_table import COLUMNS
from learndrop.app.services import RunLibrary
from learndrop.core.events import Callback, EpochEnd
from learndrop.core.store import RunStore, StoreRecorder
from learndrop.core.training import RunControl, Trainer

pytestmark = pytest.mark.gui

RUN_TIMEOUT_MS = 60_000


def one_line(text: str) -> bool:
    return bool(text) and "\n" not in text


# ---- the table --------------------------------------------------------------------------------
def test_history_lists_runs_and_filters(history_panel: HistoryPanel, recorded: Any) -> None:
    runs = history_panel.runs()
    assert [r.id for r in runs] == [recorded.base, recorded.ld]  # newest first
    model = history_panel.run_table.proxy
    cells = {COLUMNS[c]: model.index(1, c).data() for c in range(len(COLUMNS))}
    ld = runs[1]
    assert cells["Name"] == ld.name and cells["Status"] == "finished"
    assert cells["Epochs"] == "3/3" and cells["Model"] == "small_cnn"
    assert cells["Data set"] == "digits" and cells["Accuracy"].endswith("%")
    assert cells["Saved"] == f"{ld.train_flops_saved_total * 100:.1f}%"
    assert model.index(0, COLUMNS.index("Saved")).data() == "baseline"
    assert history_panel.run_table.count_label.text() == "2 runs"

    history_panel.run_table.filter_edit.setText("BASELINE")
    assert [r.id for r in history_panel.runs()] == [recorded.base]
    assert history_panel.run_table.count_label.text() == "1 of 2 runs"
    history_panel.run_table.filter_edit.clear()
    assert len(history_panel.runs()) == 2

    history_panel.select_run(recorded.ld)
    assert history_panel.open_action.isEnabled() and not history_panel.follow_action.isEnabled()


# ---- open -------------------------------------------------------------------------------------
def test_open_replays_the_run_into_the_live_panel(history_panel: HistoryPanel,
                                                  recorded: Any) -> None:
    opened: list[tuple[int, str, str]] = []
    history_panel.run_opened.connect(lambda *a: opened.append(a))
    history_panel.select_run(recorded.ld)
    assert history_panel.open_run()
    counts = recorded.counts(recorded.ld)
    h = history_panel.live.history
    assert counts["DropEvent"] > 0
    assert h.n_checks() == counts["ScoreCheck"]
    assert len(h.drops) == counts["DropEvent"]
    assert len(h.epochs) == counts["EpochEnd"] == 3
    assert h.fit_end is not None and h.fit_end.status == "finished"
    assert opened and opened[0][0] == recorded.ld and opened[0][2] == "open"
    assert history_panel.current_run_id == recorded.ld

    assert history_panel.open_run(recorded.base)  # the baseline replaces it
    shown = history_panel.live.history
    assert len(shown.drops) == 0 and len(shown.epochs) == 3


def test_open_is_refused_while_training_here(qtbot: Any, library: RunLibrary,
                                            live_panel: LivePanel, recorded: Any) -> None:
    view = HistoryPanel(library, live=live_panel, busy=lambda: True)
    qtbot.addWidget(view)
    assert not view.open_run(recorded.ld)
    assert one_line(view.last_error) and "after it ends" in view.last_error
    assert live_panel.history.fit_start is None
    view.close_store()


# ---- compare --------------------------------------------------------------------------------
def test_compare_makes_the_baseline_the_reference(qtbot: Any, history_panel: HistoryPanel,
                                                  recorded: Any) -> None:
    # asked in either order, the baseline is the reference
    view = history_panel.compare_with(recorded.base, recorded.ld)
    assert view is not None
    qtbot.addWidget(view)
    assert [d.record.id for d in view.runs] == [recorded.ld, recorded.base]
    assert history_panel.windows == [view]


def test_compare_asks_for_the_other_run(history_panel: HistoryPanel, recorded: Any,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []

    def get_item(parent: Any, title: str, label: str, items: list[str], *args: Any) -> Any:
        asked.append(items)
        return items[0], True

    monkeypatch.setattr(QInputDialog, "getItem", staticmethod(get_item))
    history_panel.select_run(recorded.ld)
    view = history_panel.compare_with()
    assert asked and "baseline" in asked[0][0]
    assert view is not None and view.runs[1].record.id == recorded.base
    view.close()


# ---- changing runs ----------------------------------------------------------------------------
def test_rename_and_note_persist(qtbot: Any, store_copy: Path, recorded: Any,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    view = HistoryPanel(RunLibrary(store_copy))
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
    assert view.run_table.proxy.index(row, 0).data() == "My baseline ✎"
    view.run_table.filter_edit.setText("second line")  # the filter finds notes too
    assert [r.id for r in view.runs()] == [recorded.base]

    assert not view.rename_run(recorded.base, "two\nlines")
    assert one_line(view.last_error)
    assert view.rename_run(recorded.base, "")  # empty: the run's own name again
    with RunStore(store_copy) as store:
        assert store.get_run(recorded.base).display_name == ""
    view.close_store()


def test_delete_asks_then_removes(qtbot: Any, store_copy: Path, recorded: Any,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked: list[str] = []

    def question(parent: Any, title: str, text: str, *args: Any) -> Any:
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    view = HistoryPanel(RunLibrary(store_copy))
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
def test_follow_a_run_written_by_another_thread(qtbot: Any, live_panel: LivePanel,
                                                three_epoch_config: Any, tmp_path: Path) -> None:
    store_path = tmp_path / "store.sqlite"
    control = RunControl()
    control.pause()  # held at its first batch until the follower is watching

    class PauseAfterFirstEpoch(Callback):  # so the test sees the run half-way
        def on_epoch_end(self, event: EpochEnd) -> None:
            if event.epoch == 0:
                control.pause()

    trainer = Trainer(three_epoch_config(tmp_path / "runs"),
                      [StoreRecorder(store_path), PauseAfterFirstEpoch()], control)
    thread = threading.Thread(target=trainer.fit, name="test-writer")
    live = live_panel
    view = HistoryPanel(RunLibrary(store_path), live=live)
    qtbot.addWidget(view)
    polls: list[int] = []
    ended: list[tuple[str, str]] = []
    view.following_ended.connect(lambda *a: ended.append(a))
    thread.start()
    try:
        qtbot.waitUntil(lambda: view.refresh() and len(view.runs()) == 1,
                        timeout=RUN_TIMEOUT_MS)
        run = view.select_run(view.runs()[0].id)
        assert run is not None and run.status == "running"
        assert view.follow_action.isEnabled()
        assert view.follow_run()
        follower = view.library.follower
        assert follower is not None
        follower.received.connect(polls.append)
        assert live.history.running and live.history.fit_end is None
        assert not live.strip.actions_enabled  # pin and drop cannot reach another process
        control.resume()
        qtbot.waitUntil(lambda: len(live.history.epochs) == 1, timeout=RUN_TIMEOUT_MS)
        assert live.history.running and view.following
        control.resume()
        qtbot.waitUntil(lambda: bool(ended), timeout=RUN_TIMEOUT_MS)
    finally:
        if not ended:  # the test failed: end the run quickly
            control.cancel()
        control.resume()
        thread.join(RUN_TIMEOUT_MS / 1000)
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


def test_run_names_lose_their_middle_not_their_model_or_date(qtbot: Any) -> None:
    """A default name starts with the model and ends with when the run started: too long for
    its column, it is cut in the middle, so the model stays and runs of one model and data set
    stay apart; other names lose their end."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QStandardItemModel
    from PySide6.QtWidgets import QStyleOptionViewItem

    from learndrop.app.panels.run_table import NameDelegate

    model = QStandardItemModel(2, 1)
    model.setData(model.index(0, 0), "small_cnn-digits-20261201-153012")
    model.setData(model.index(1, 0), "my long experiment on the new augmentation")
    delegate = NameDelegate()
    modes = []
    for row in (0, 1):
        option = QStyleOptionViewItem()
        delegate.initStyleOption(option, model.index(row, 0))
        modes.append(option.textElideMode)
    assert modes == [Qt.TextElideMode.ElideMiddle, Qt.TextElideMode.ElideRight]
