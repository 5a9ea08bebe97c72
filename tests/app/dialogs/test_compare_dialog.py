"""The comparison of two stored runs (pytest-qt, offscreen): curves, drop markers, the table."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
import pytest
from PySide6.QtWidgets import QPushButton

from learndrop.app.dialogs import CompareDialog
from learndrop.app.services import RunLibrary

pytestmark = pytest.mark.gui


def test_compare_shows_both_runs_and_their_savings(qtbot: Any, library: RunLibrary,
                                                   recorded: Any) -> None:
    view = CompareDialog(*library.compare_data(recorded.ld, recorded.base))
    qtbot.addWidget(view)
    ld, base = view.runs
    assert (ld.record.id, base.record.id) == (recorded.ld, recorded.base)
    curves = view.plots.curves
    assert len(curves) == 2
    for label, data in zip(view.labels, view.runs):
        loss = curves[label][0]
        assert len(loss.xData) == len(data.epochs) == 3
    assert view.value("Units dropped", 0) == f"{len(ld.drops)} of 4"
    assert view.value("Units dropped", 1) == "0 of 4"
    assert view.value("Training FLOPs saved", 0) == \
        f"{ld.savings().train_flops_saved_total * 100:.1f}%"
    acc = ld.accuracy().final_val_accuracy - base.accuracy().final_val_accuracy
    assert view.value("Accuracy vs reference", 0) == f"{acc * 100:+.2f} points"
    assert view.value("Accuracy vs reference", 1) == "reference"
    assert view.value("Wall time", 1).endswith("s")
    assert view.value("Efficiency", 1) == "–"
    threshold = ld.start.config["drop"]["threshold"]
    assert view.value("Drop rule", 0).startswith(f"change, threshold {threshold}, patience ")
    assert view.value("Drop rule", 1) == "–"  # the baseline drops nothing
    markers = view.plots.drop_markers
    assert len(markers[0].points()) == len(ld.drops) > 0
    assert len(markers[1].points()) == 0
    tip = markers[0].points()[0].data()
    assert ld.drops[0].unit in tip and "epoch" in tip


def test_export_asks_for_a_report_of_both_runs(qtbot: Any, library: RunLibrary,
                                              recorded: Any) -> None:
    view = CompareDialog(*library.compare_data(recorded.ld, recorded.base))
    qtbot.addWidget(view)
    export = next(b for b in view.findChildren(QPushButton) if b.text() == "Export report…")
    with qtbot.waitSignal(view.export_requested) as sig:
        export.click()
    assert sig.args == [recorded.ld, recorded.base]


def test_runs_named_alike_keep_different_labels(qtbot: Any, store_copy: Any) -> None:
    """Two runs whose names differ only at their end (the time they started) stay apart in
    the plots' legend and the caption; the table gives the FLOP-predicted time saving next
    to the measured one."""
    from learndrop.core.store import RunStore

    lib = RunLibrary(store_copy)
    with RunStore(store_copy) as store:
        ids = [r.id for r in store.list_runs()]
        for run_id, stamp in zip(ids, ("153012", "160544")):
            store.set_display_name(run_id, f"small_cnn-digits-20261201-{stamp}-long-suffix-"
                                           f"{stamp}")
    view = CompareDialog(*lib.compare_data(*ids))
    qtbot.addWidget(view)
    shown = view.plots.shown
    assert len(set(shown)) == 2 and all(len(s) <= 34 for s in shown)
    legend = [item[1].text for item in view.plots.legend.items]
    assert len(set(legend)) == 2
    assert view.value("Time saved, predicted from FLOPs", 0) != ""
    lib.close()


def test_the_drop_rule_is_shown_whole(qtbot: Any, library: RunLibrary, recorded: Any) -> None:
    """A long cell (the drop rule) wraps instead of being cut off, and says itself in full
    as its tooltip."""
    view = CompareDialog(*library.compare_data(recorded.ld, recorded.base))
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    qtbot.waitExposed(view)
    qtbot.wait(50)  # the rows follow the columns' widths once laid out
    row = next(r for r in range(view.table.rowCount())
               if view.table.item(r, 0).text() == "Drop rule")
    item = view.table.item(row, 1)
    assert item.toolTip() == item.text() and "threshold" in item.text()
    width = view.table.columnWidth(1)
    needed = view.table.fontMetrics().horizontalAdvance(item.text())
    lines = -(-needed // max(width - 8, 1))  # the lines the text needs at this width
    assert view.table.rowHeight(row) >= lines * view.table.fontMetrics().height()


def test_a_run_without_drops_says_so_on_its_own_row(qtbot: Any, library: RunLibrary,
                                                    recorded: Any) -> None:
    """"no drops" (or "baseline: no dropping") is on the row of the run it is about and
    covers no run's name, the first run's as well as the second's, in a narrow window."""
    view = CompareDialog(*library.compare_data(recorded.base, recorded.ld))
    qtbot.addWidget(view)
    view.show()
    view.resize(view.minimumSizeHint().width(), 560)
    qtbot.wait(100)
    texts = [item for item in view.plots.drop_plot.items if isinstance(item, pg.TextItem)]
    rows = {item.toPlainText(): item.sceneBoundingRect() for item in texts}
    note = next(t for t in rows if "no dropping" in t)
    assert view.plots.shown[0] in note  # said beside the baseline's own name
    boxes = list(rows.values())
    assert not any(a.intersects(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_a_narrow_plot_pane_keeps_both_plots_whole(qtbot: Any, library: RunLibrary,
                                                   recorded: Any) -> None:
    """When the plots' pane is narrower than the legend's names side by side (a narrow
    window, the splitter dragged), the legend stacks them instead of making the plots wider
    than the pane (the accuracy plot and the drop timeline's right end were cut off); a
    wide pane puts them side by side again."""
    from PySide6.QtWidgets import QSplitter

    view = CompareDialog(*library.compare_data(recorded.base, recorded.ld))
    qtbot.addWidget(view)
    view.show()
    view.resize(1200, 560)
    split = view.findChild(QSplitter)
    plots = view.plots
    for pane, columns in ((380, 1), (900, 2)):
        split.setSizes([pane, 1200 - pane])
        qtbot.wait(100)
        right = max(p.sceneBoundingRect().right()
                    for p in (plots.loss_plot, plots.acc_plot, plots.drop_plot))
        assert right <= plots.viewport().width() + 1, (pane, right, plots.viewport().width())
        assert plots.legend.columnCount == columns
