"""What the plots say with no run and with one (pytest-qt, offscreen): no axis numbers and no
legends on empty plots, a legend naming the score curves and the loss and accuracy series
above their plots, a heatmap without an empty head row whose unscored cells have the
reports' grey, and the FLOPs gauges saying "now" and "so far"."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtGui import QColor

from factories import make_live_stream
from learndrop.app.panels import LivePanel
from learndrop.app.views._score_legend import MAX_ENTRIES
from learndrop.core.events import call_hook
from learndrop.core.report import EMPTY_CELL

pytestmark = pytest.mark.gui


def feed(panel: LivePanel, stream: list[tuple[str, Any]]) -> None:
    for hook, payload in stream:
        call_hook([panel], hook, payload)
    panel.redraw()


def values_shown(plot: Any, axis: str = "bottom") -> bool:
    return bool(plot.getAxis(axis).style["showValues"])


def test_empty_plots_have_no_numbers_and_no_legends(live_panel: LivePanel) -> None:
    live_panel.show()
    live_panel.reset()
    m = live_panel.metrics
    for plot in (live_panel.score_plot.plot, m.loss_plot, m.acc_plot):
        assert not values_shown(plot) and not values_shown(plot, "left")
    assert not live_panel.score_plot.legend.item.isVisible()
    assert not m.loss_plot.titleLabel.isVisible() and not m.acc_plot.titleLabel.isVisible()
    live_panel.tabs.setCurrentWidget(live_panel.heatmap)
    live_panel.redraw()
    assert live_panel.heatmap.image_shape() == ()
    assert not values_shown(live_panel.heatmap.plot)
    g = live_panel.gauges
    assert g.train.suffix.text() == "" and g.forward.suffix.text() == ""


def test_a_run_gets_numbers_legends_and_a_heatmap_without_the_head(
        live_panel: LivePanel) -> None:
    stream = make_live_stream(n_units=5, epochs=3)
    live_panel.show()
    feed(live_panel, stream)
    h = live_panel.history
    scored = [u.name for u in h.units if not u.is_head]
    assert live_panel.score_plot.legend.names() == scored  # every curve named
    assert live_panel.score_plot.legend.item.isVisible()
    assert values_shown(live_panel.score_plot.plot)
    m = live_panel.metrics
    loss_title = m.loss_plot.titleLabel.text
    assert "batch loss" in loss_title and "train" in loss_title
    assert "validation" in m.acc_plot.titleLabel.text
    assert "scaled-down" not in m.acc_plot.titleLabel.text  # no data: not listed
    assert values_shown(m.loss_plot) and values_shown(m.acc_plot)

    live_panel.tabs.setCurrentWidget(live_panel.heatmap)
    live_panel.redraw()
    hm = live_panel.heatmap
    assert hm.image_shape() == (h.n_checks(), len(scored))
    assert hm.row_names() == scored
    assert hm.backdrop.isVisible() and hm.backdrop.brush().color() == QColor(EMPTY_CELL)
    assert h.drops  # the dropped prefix is marked
    _x, y = hm.boundary.getOriginalDataset()
    assert y is not None and y.max() == h.dropped_prefix_len()

    g = live_panel.gauges
    assert g.train.suffix.text() == "now" and g.train.detail.text().startswith("so far ")


def test_many_units_are_named_by_a_few_spread_from_input_to_output(qtbot: Any) -> None:
    panel = LivePanel()
    qtbot.addWidget(panel)
    panel.show()
    feed(panel, make_live_stream(n_units=30, epochs=2))
    names = panel.score_plot.legend.names()
    scored = [u.name for u in panel.history.units if not u.is_head]
    assert len(names) == MAX_ENTRIES and names[0] == scored[0] and names[-1] == scored[-1]
