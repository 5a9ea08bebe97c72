"""Drops the policy undid (reversible drops) where drops show: the comparison's drop
timeline marks them, the event log lists them as restores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factories import UNDONE, feed, make_events, make_undone_events, record
from learndrop.app.theme import current_theme
from learndrop.app.views.compare_plots import ComparePlots, run_colors
from learndrop.app.views.event_log import EventLog
from learndrop.core.monitor import RunHistory
from learndrop.core.report import load_run
from learndrop.core.store import RunStore


def test_the_comparison_timeline_marks_restores(qtbot: Any, tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    record(path, make_undone_events("undone-run"))
    record(path, make_events("kept-run"))
    with RunStore(path) as store:
        runs = [load_run(store, "undone-run"), load_run(store, "kept-run")]
    theme = current_theme()
    plots = ComparePlots(runs, [r.name for r in runs], run_colors(theme.dark), theme, 9.0)
    qtbot.addWidget(plots)
    undone, kept = plots.restore_markers
    assert kept.points().size == 0
    (point,) = undone.points()
    assert (point.pos().x(), point.pos().y()) == (UNDONE.epoch, 1.0)
    assert UNDONE.text in str(point.data()) and "step 8" in str(point.data())
    assert point.brush().color().name() == theme.restore.name()
    assert point.symbol() != plots.drop_markers[0].points()[0].symbol()  # a distinct mark
    assert "restores" in plots.drop_plot.titleLabel.text


def test_the_event_log_lists_restores(qtbot: Any) -> None:
    history = RunHistory()
    log = EventLog(history)
    qtbot.addWidget(log)
    feed(history, make_undone_events())
    log.refresh()
    rows = [log.row_text(r) for r in range(log.row_count())]
    (restore,) = [r for r in rows if "\tRestore\t" in r]
    assert restore.split("\t")[1:] == [f"{UNDONE.epoch:.2f}", "Restore", UNDONE.text]
    log.kind_actions["restore"].setChecked(False)  # the Show menu hides them
    assert not any("\tRestore\t" in log.row_text(r) for r in range(log.row_count()))
    assert log.view_options() == {"hidden": "restore"}
