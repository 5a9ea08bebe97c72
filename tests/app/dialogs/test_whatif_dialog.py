"""The what-if explorer on stored runs: the run's own settings reproduce it exactly, other
settings show at once when each unit would drop and the FLOPs saved, as ``what_if`` says;
baselines too; "Run with these settings" starts a run with them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from learndrop.app.dialogs import WhatIfDialog
from learndrop.app.panels import HistoryPanel
from learndrop.core.monitor import recorded_run, what_if
from learndrop.core.store import RunStore

RUN_TIMEOUT_MS = 60_000


def _open(history_panel: HistoryPanel, run_id: int) -> WhatIfDialog:
    history_panel.refresh(quiet=True)
    history_panel.select_run(run_id)
    assert history_panel.whatif_action.isEnabled()
    view = history_panel.explore_what_if()
    assert isinstance(view, WhatIfDialog)
    return view


def test_the_runs_own_settings_reproduce_it(history_panel: HistoryPanel, recorded: Any) -> None:
    view = _open(history_panel, recorded.ld)
    r = view.current
    assert r is not None and r.first_difference is None
    assert "exact" in view.honesty.text()
    with RunStore(recorded.store) as store:
        drops = {e.unit: e.epoch for e in store.load_events(recorded.ld)
                 if type(e).__name__ == "DropEvent"}
    assert drops  # the run dropped something
    for row, u in enumerate(r.units):
        expected = f"{drops[u.name]:.2f}" if u.name in drops else "-"
        assert view.table.item(row, 2).text() == expected
        assert view.table.item(row, 1).text() == expected  # the same settings: the same
    assert r.train_flops_saved == pytest.approx(r.recorded_train_flops_saved)
    assert len(view.timeline.tried_segments()) == len(drops)


def test_other_settings_show_at_once_as_what_if_says(history_panel: HistoryPanel,
                                                      recorded: Any) -> None:
    view = _open(history_panel, recorded.ld)
    with RunStore(recorded.store) as store:
        run = recorded_run(store.load_events(recorded.ld))
    view.set_settings(threshold=0.0)
    assert view.current is not None
    assert all(u.drop_epoch is None for u in view.current.units)  # nothing settles
    assert view.timeline.tried_segments() == []
    assert "Exact until epoch" in view.honesty.text()  # the recorded run dropped units
    assert "Units dropped: <b>0</b> with these settings" in view.summary.text()
    for settings in ({"threshold": 1.0, "patience": 1, "warmup_epochs": 0},
                     {"threshold": 0.6, "trend_tolerance": 0.5, "window": 2, "order": "any"}):
        view.reset_to_own()
        view.set_settings(**settings)
        expected = what_if(run, enabled=True, **{**view.settings(), **settings})
        assert view.current is not None
        assert view.current.to_dict() == expected.to_dict()
        saved = f"{expected.train_flops_saved * 100:.1f}%"
        assert saved in view.summary.text()
        assert view.last_update_ms > 0
    # the threshold: typed, slid or dragged on the plot
    view.scores.threshold_dragged.emit(0.3)
    assert view.fields["threshold"].value() == pytest.approx(0.3)
    assert view.slider.value() == 300
    view.slider.setValue(450)
    assert view.current is not None and view.current.policy.threshold == pytest.approx(0.45)
    assert view.scores.threshold.value() == pytest.approx(0.45)


def test_a_baseline_can_be_explored(history_panel: HistoryPanel, recorded: Any) -> None:
    view = _open(history_panel, recorded.base)
    r = view.current
    assert r is not None
    assert all(view.table.item(row, 2).text() == "-" for row in range(len(r.units)))
    assert any("recorded without drops" in label.text()
               for label in view.findChildren(type(view.summary)))
    assert r.recorded_train_flops_saved == 0.0


def test_run_with_these_settings_starts_a_run_with_them(make_window: Any, store_copy: Path,
                                                        recorded: Any, qtbot: Any) -> None:
    window = make_window(store_path=store_copy)
    view = _open(window.history, recorded.ld)
    view.set_settings(threshold=0.42, patience=3)
    view.run_button.click()
    assert window.is_running
    cfg = window.setup.config()
    assert cfg.drop.threshold == pytest.approx(0.42) and cfg.drop.patience == 3
    assert cfg.drop.enabled
    qtbot.waitUntil(lambda: not window.is_running, timeout=RUN_TIMEOUT_MS)
    assert window.last_status == "finished"
    with RunStore(store_copy) as store:
        newest = store.list_runs()[0]
    assert newest.config["drop"]["threshold"] == pytest.approx(0.42)
    assert newest.config["drop"]["patience"] == 3


def test_the_windows_next_to_the_one_shown_are_measured_while_idle(
        history_panel: HistoryPanel, recorded: Any, qtbot: Any) -> None:
    view = _open(history_panel, recorded.ld)
    view.set_settings(window=4)
    ema = view.run.policy.ema
    measured = lambda w: ("tracks", ema, w) in view.run.cache  # noqa: E731
    assert not measured(5)  # nothing ahead before the dialog is idle
    qtbot.waitUntil(lambda: all(measured(w) for w in (3, 5, 2, 6)), timeout=5000)
    settings = {**view.settings(), "window": 5}
    ahead = what_if(view.run, enabled=True, **settings)
    fresh = what_if(dataclasses.replace(view.run, cache={}), enabled=True, **settings)
    assert ahead.units == fresh.units
    assert ahead.train_flops_saved == fresh.train_flops_saved
