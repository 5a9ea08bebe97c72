"""A run stopped in the middle of an epoch and resumed from the app (pytest-qt, offscreen): the
live view goes on from the run's past (scores, losses, drops and log, the true unit states),
and the stop, the end of the first session and the resume are recorded, replayed when the run
is opened again, listed by ``learndrop show`` and in the report's "Your actions"; opening the
run fits every plot to the whole run."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from learndrop.core.cli import main as cli_main
from learndrop.core.config import RunConfig
from learndrop.core.report import load_run
from learndrop.core.report.tables import action_table
from learndrop.core.store import RunStore

pytestmark = pytest.mark.gui

Config = Callable[..., RunConfig]
RUN_TIMEOUT_MS = 60_000


def listen(window: Any, name: str, receiver: Callable[[Any], object]) -> None:
    """Call ``receiver(payload)`` for each ``name`` hook the window's bridge delivers."""
    window.signals.hook.connect(
        lambda hook, payload: receiver(payload) if hook == name else None)


def wait_hook(qtbot: Any, window: Any, name: str, start: Callable[[], object]) -> Any:
    """Call ``start`` (which must return true), wait for hook ``name``: its payload (a
    receiver that stays connected, as in test_main_window)."""
    seen: list[Any] = []
    listen(window, name, seen.append)
    assert start()
    qtbot.waitUntil(lambda: bool(seen), timeout=RUN_TIMEOUT_MS)
    return seen[0]


def wait_run(qtbot: Any, window: Any) -> str:
    qtbot.waitUntil(lambda: not window.is_running, timeout=RUN_TIMEOUT_MS)
    return str(window.last_status)


def log_rows(window: Any) -> list[str]:
    log = window.live.event_log
    return [log.row_text(r) for r in range(log.row_count())]


@pytest.mark.slow
def test_resume_continues_on_top_of_the_run_and_records_every_action(
        qtbot: Any, make_window: Any, three_epoch_config: Config, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store.sqlite"
    w = make_window(three_epoch_config(tmp_path / "runs", **{
        "train.epochs": 4, "train.log_every": 1, "drop.check_every": 2}), store,
        error_dialogs=False)
    # stopped in the middle of the third epoch: the checkpoint holds two epochs
    stopped: list[bool] = []
    listen(w, "on_progress", lambda ev: (stopped.append(True), w.stop_run())
           if ev.epoch == 2 and ev.batch >= 3 and not stopped else None)
    assert w.start_run()
    assert wait_run(qtbot, w) == "stopped"
    before = w.live.history
    dropped_before = [u.name for u in before.units if before.dropped[u.index]]
    stop_epoch = next(a.epoch for a in before.actions if a.action == "stop")
    assert 2.0 < stop_epoch < 3.0
    w.history.refresh()
    (run,) = w.history.runs()
    assert run.status == "stopped" and run.epochs_done == 2

    started = wait_hook(qtbot, w, "on_fit_start", lambda: w.resume_run(run.id))
    assert started.resumed_from_epoch == 2
    h = w.live.history
    # the past is there: the first two epochs, their checks and the units dropped in them
    assert len(h.epochs) >= 2 and list(h.epochs.column(0)[:2]) == [0, 1]
    assert h.n_checks() > 0 and float(h.check_epochs()[0]) <= 1.0
    kept_drops = [d.name for d in h.drops if d.epoch <= 2.0]
    assert kept_drops and set(kept_drops) <= set(dropped_before)
    for name in kept_drops:  # the strip shows them dropped, as the status bar counts them
        assert h.unit_state(h.unit_index(name)) == "dropped"
        assert w.live.strip.state_of(h.unit_index(name)) == "dropped"
    w.live.redraw()
    rows = log_rows(w)
    assert any("asked to stop" in r for r in rows)
    assert any("run stopped" in r for r in rows)
    assert wait_run(qtbot, w) == "finished"
    rows = log_rows(w)
    assert any("resumed the run from its checkpoint" in r for r in rows)
    # the live log dates the new session's lines now, not at the replay's last stored time
    assert h.log[-1].wall_time > h.log[0].wall_time

    with RunStore(store) as s:
        data = load_run(s, run.id)
    assert [a.action for a in data.actions] == ["stop", "resume_run"]
    # the report's actions to the second: a stop and a resume seconds apart read apart
    head, rows = action_table(data)
    assert head[0] == "Time" and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r[0])
                                     for r in rows)
    assert any(m.message.startswith("run stopped") for m in data.messages)

    # opened again from the history: the same record, every view fitted to the whole run
    for plot in (w.live.score_plot.plot, w.live.metrics.loss_plot):  # zoomed in by the reader
        plot.setRange(xRange=(2.5, 3.0), yRange=(0.5, 0.6), padding=0)
    assert w.history.open_run(run.id)
    w.live.redraw()
    rows = log_rows(w)
    for words in ("asked to stop", "run stopped", "resumed the run from its checkpoint"):
        assert any(words in r for r in rows), words
    for plot in (w.live.score_plot.plot, w.live.metrics.loss_plot, w.live.metrics.acc_plot):
        (x0, x1), (y0, y1) = plot.viewRange()
        assert x0 <= 0.05 and x1 >= 3.95, (plot, x0, x1)
        if plot is not w.live.metrics.acc_plot:  # its y axis fits the accuracies
            assert y0 <= 0.05 and y1 - y0 >= 0.5, (plot, y0, y1)
    x, _y = w.live.metrics.curve_data("train_loss")
    assert np.allclose(x, [1, 2, 3, 4])

    assert cli_main(["show", str(run.id), "--store", str(store)]) == 0
    shown = capsys.readouterr().out
    actions = shown.split("Your actions", 1)[1]
    assert "asked to stop" in actions and "resumed the run from its checkpoint" in actions
    assert "run stopped" in shown
