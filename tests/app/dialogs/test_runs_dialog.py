"""Many stored runs side by side: settings that differ as columns (or chosen), results,
filter, overlaid curves against epoch, step or wall time, seed groups as a mean with a band,
the settings-diff view and the trade-off scatter whose points open their run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from factories import tiny_config
from learndrop.app.dialogs import RunsDialog
from learndrop.app.panels import HistoryPanel
from learndrop.app.services import RunLibrary
from learndrop.core.store import RunStore, StoreRecorder
from learndrop.core.training import Trainer


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """Two seeds of two thresholds and two seeds of their baseline: six short runs."""
    root = tmp_path_factory.mktemp("many")
    store = root / "store.sqlite"
    ids = []
    for changes in ({"drop.threshold": 0.5}, {"drop.threshold": 0.9}, {"drop.enabled": False}):
        for seed in (0, 1):
            recorder = StoreRecorder(store)
            cfg = tiny_config(root / "runs", **{"train.epochs": 2, "train.device": "cpu",
                                                "data.seed": 0, "train.seed": seed, **changes})
            assert Trainer(cfg, [recorder]).fit().status == "finished"
            ids.append(recorder.run_id)
    return store, ids


@pytest.fixture
def dialog(qtbot: Any, seeded: tuple[Path, list[int]]) -> RunsDialog:
    store, ids = seeded
    lib = RunLibrary(store)
    view = RunsDialog(lib.load_runs(ids))
    qtbot.addWidget(view)
    lib.close()
    return view


def test_settings_that_differ_are_the_columns(dialog: RunsDialog) -> None:
    assert dialog.differing == ["drop.enabled", "drop.threshold", "train.seed"]
    heads = dialog.headers()
    assert heads[:4] == ["run", "drop.enabled", "drop.threshold", "train.seed"]
    assert "final accuracy" in heads and "best accuracy" in heads
    rows = dialog.diff_rows()
    assert [r[0] for r in rows] == dialog.differing
    assert rows[1][1:] == ["0.5", "0.5", "0.9", "0.9", "1", "1"]  # the tiny run's own: 1
    dialog.set_column("optim.lr", True)
    assert "optim.lr" in dialog.headers()
    dialog.set_column("train.seed", False)
    assert "train.seed" not in dialog.headers()
    dialog.filter.setText("0.9")
    assert len(dialog.visible_runs()) == 2
    dialog.filter.clear()
    assert len(dialog.visible_runs()) == 6


def test_curves_overlay_and_group_seeds(dialog: RunsDialog) -> None:
    overlay = dialog.overlay
    assert len(overlay.drawn) == 6
    assert all(list(x) == [1.0, 2.0] for _, x, _ in overlay.drawn)  # epochs
    run = dialog.runs[0]
    overlay.x_axis.setCurrentIndex(overlay.x_axis.findData("wall"))
    label, x, y = overlay.drawn[0]
    assert x[-1] == pytest.approx(run.epochs[-1].elapsed_s)
    overlay.x_axis.setCurrentIndex(overlay.x_axis.findData("step"))
    assert list(overlay.drawn[0][1]) == [e.step for e in run.epochs]
    overlay.grouped.setChecked(True)
    assert len(overlay.drawn) == 3 and overlay.bands == 3  # three settings, two seeds each
    _label, _x, mean = overlay.drawn[0]
    both = [d.epochs[-1].val_accuracy for d in dialog.runs[:2]]
    assert mean[-1] == pytest.approx(np.mean(both))
    overlay.metric_box.setCurrentIndex(overlay.metric_box.findData("score"))
    assert overlay.unit.isVisible() or not overlay.isVisible()
    assert len(overlay.drawn) == 3


def test_tradeoff_points_open_their_run(dialog: RunsDialog, seeded: Any) -> None:
    plot = dialog.tradeoff
    assert plot.x_box.currentData() == "time_saved"
    assert plot.y_box.currentData() == "accuracy_difference"
    assert len(plot.points) == 6  # the baselines at (0, 0)
    with RunStore(seeded[0]) as store:
        runs = {r.id: r for r in store.list_runs()}
    base = [runs[i] for i in seeded[1][4:]]
    base_acc = np.mean([b.final_val_accuracy for b in base])
    first = next(p for p in plot.points if p[2] == seeded[1][0])
    assert first[1] == pytest.approx(100 * (runs[seeded[1][0]].final_val_accuracy - base_acc))
    assert first[3].startswith("threshold=0.5")  # what sets it apart
    plot.grouped.setChecked(True)
    assert len(plot.points) == 3
    plot.x_box.setCurrentIndex(plot.x_box.findData("drop.threshold"))
    assert sorted(p[0] for p in plot.points) == [0.5, 0.9, 1.0]
    opened: list[int] = []
    dialog.open_requested.connect(opened.append)
    plot.click_point(0)
    assert opened == [plot.points[0][2]]


def test_side_by_side_from_the_history(history_panel: HistoryPanel, recorded: Any) -> None:
    history_panel.refresh(quiet=True)
    assert history_panel.many_action.isEnabled()
    view = history_panel.side_by_side()
    assert isinstance(view, RunsDialog) and len(view.records) == 2
    assert "drop.enabled" in view.differing
