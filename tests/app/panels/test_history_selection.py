"""The run history's table when runs come and go (pytest-qt, offscreen): the selection and
the current row follow the run, not the row; a new run moves no row under the pointer; every
status fits its column."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QEvent
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import QApplication

from factories import make_events, record
from learndrop.app.panels import HistoryPanel, LivePanel
from learndrop.app.services import RunLibrary

pytestmark = pytest.mark.gui


@pytest.fixture
def panel(qtbot: Any, tmp_path: Path) -> Iterator[HistoryPanel]:
    store = tmp_path / "store.sqlite"
    for i in range(24):
        record(store, make_events(f"run{i:02d}"))
    library = RunLibrary(store)
    live = LivePanel()
    qtbot.addWidget(live)
    view = HistoryPanel(library, live=live)
    qtbot.addWidget(view)
    QCursor.setPos(5000, 5000)  # wherever an earlier test left the pointer: off the table
    view.resize(420, 360)
    view.show()
    assert view.refresh()
    yield view
    view.close_store()
    library.close()


def add_run(panel: HistoryPanel, name: str, status: str = "finished") -> None:
    record(panel.library.path, make_events(name, status=status))


def test_selection_and_current_row_follow_the_run_when_a_new_one_appears(
        panel: HistoryPanel) -> None:
    table = panel.run_table.table
    assert table.verticalScrollBar().maximum() > 0  # more runs than rows on screen
    table.verticalScrollBar().setValue(table.verticalScrollBar().maximum() // 2)
    row = table.rowAt(table.viewport().height() // 2)
    chosen = panel.runs()[row]
    table.selectRow(row)
    y = table.rowViewportPosition(row)
    assert [r.id for r in panel.selected_runs()] == [chosen.id]

    add_run(panel, "from-a-terminal")
    assert panel.refresh()
    assert panel.runs()[0].name == "from-a-terminal"  # newest first
    now = next(i for i, r in enumerate(panel.runs()) if r.id == chosen.id)
    assert now == row + 1
    assert [r.id for r in panel.selected_runs()] == [chosen.id]
    assert table.currentIndex().row() == now  # the keyboard goes on from the same run
    assert table.rowViewportPosition(now) == y  # and it did not move on screen
    assert panel.export_action.isEnabled()


def test_a_new_run_waits_while_the_pointer_is_on_the_rows(panel: HistoryPanel) -> None:
    table = panel.run_table.table
    table.selectRow(0)
    chosen = panel.runs()[0]
    QApplication.sendEvent(table.viewport(), QEvent(QEvent.Type.Enter))
    add_run(panel, "while-clicking")
    assert panel.refresh()
    assert panel.run_table.pending
    assert panel.runs()[0].id == chosen.id  # nothing moved under the pointer
    QApplication.sendEvent(table.viewport(), QEvent(QEvent.Type.Leave))
    assert not panel.run_table.pending
    assert panel.runs()[0].name == "while-clicking"
    assert [r.id for r in panel.selected_runs()] == [chosen.id]


def test_every_status_fits_its_column_and_the_toolbar_fits_the_panel(
        panel: HistoryPanel) -> None:
    add_run(panel, "gone", status="cancelled")
    assert panel.refresh()
    table = panel.run_table.table
    metrics = table.fontMetrics()
    for word in ("cancelled", "interrupted"):
        assert table.columnWidth(1) > metrics.horizontalAdvance(word)
    panel.resize(panel.minimumWidth(), 360)
    QApplication.processEvents()
    for action in panel.toolbar.actions():
        widget = panel.toolbar.widgetForAction(action)
        assert widget is not None and widget.isVisible(), action.text()
