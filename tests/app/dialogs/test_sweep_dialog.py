"""The sweep dialog: the settings to vary checked as they are typed, the queue while the
sweep trains, the grouped table at its end, the sweep in the store, its report (HTML, PDF);
stopping keeps what was trained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from factories import tiny_config
from learndrop.app.dialogs import SweepDialog
from learndrop.core.store import SWEEP_KIND, RunStore

RUN_TIMEOUT_MS = 120_000


def _dialog(qtbot: Any, tmp_path: Path) -> SweepDialog:
    base = tiny_config(tmp_path / "runs", **{"train.epochs": 1, "train.device": "cpu"})
    view = SweepDialog(base, tmp_path / "store.sqlite")
    qtbot.addWidget(view)
    return view


def _values(view: SweepDialog, text: str) -> None:
    item = view.vary.item(0, 1)
    assert item is not None
    item.setText(text)


def test_a_sweep_trains_its_queue_and_writes_its_report(qtbot: Any, tmp_path: Path) -> None:
    view = _dialog(qtbot, tmp_path)
    assert view.plan_line.text().startswith("3 runs")  # the default: three thresholds
    _values(view, "0.5, abc")
    assert "drop.threshold" in view.plan_line.text() and not view.start_button.isEnabled()
    _values(view, "0.5, 0.9")
    view.baseline.setChecked(True)
    assert view.plan_line.text() == "3 runs: 2 combinations \u00d7 1 seed(s) and the baselines"
    assert view.start()
    assert view.queue.rowCount() == 3 and view.queue_states()[0] in ("queued", "running")
    qtbot.waitUntil(lambda: view.job is not None and view.job.outcome is not None,
                    timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: view.report_button.isEnabled(), timeout=10_000)
    assert view.queue_states() == ["finished"] * 3
    text = view.table_box.toPlainText()
    assert "(baseline)" in text and "0.9" in text and "speed-up" in text
    with RunStore(tmp_path / "store.sqlite") as store:
        (group,) = store.list_groups(SWEEP_KIND)
        assert len(store.group_runs(group.id)) == 3
    html = view.write_report(tmp_path / "sweep.html")
    assert html is not None
    page = html.read_text()
    for part in ("Trade-off", "Learning scores", "Validation accuracy", "threshold=0.9"):
        assert part in page
    pdf = view.write_report(tmp_path / "sweep.pdf")
    assert pdf is not None and pdf.read_bytes().startswith(b"%PDF")
    shown: list[Any] = []
    view.runs_requested.connect(shown.append)
    view.side_button.click()
    assert len(shown[0]) == 3


def test_stopping_keeps_what_was_trained(qtbot: Any, tmp_path: Path) -> None:
    view = _dialog(qtbot, tmp_path)
    assert view.start()
    view.stop()
    qtbot.waitUntil(lambda: view.job is not None and view.job.outcome is not None,
                    timeout=RUN_TIMEOUT_MS)
    assert view.job is not None and view.job.outcome.stopped
    # the dialog hears the end through a queued signal, after the outcome is set
    qtbot.waitUntil(lambda: "continue it with learndrop sweep --resume"
                    in view.plan_line.text(), timeout=10_000)


def test_closing_while_it_trains_stops_the_sweep_without_leaving_it_hidden(
        qtbot: Any, tmp_path: Path) -> None:
    """Esc, like Close, never hides a sweep that goes on training out of sight: the sweep
    stops after the current batch, the window says so and closes once it has stopped."""
    view = _dialog(qtbot, tmp_path)
    view.show()
    close = view.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Close)
    assert close is not None and close.isVisible()
    assert view.start()
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert view.isVisible()  # still there while the sweep stops
    assert "Stopping the sweep" in view.plan_line.text()
    assert not view.stop_button.isEnabled() and not view.start_button.isEnabled()
    close.click()  # asked again: still stopping, not hidden
    assert view.isVisible()
    qtbot.waitUntil(lambda: view.job is not None and view.job.outcome is not None,
                    timeout=RUN_TIMEOUT_MS)
    assert view.job is not None and view.job.outcome.stopped
    qtbot.waitUntil(lambda: not view.isVisible(), timeout=10_000)
    assert not view.running
