"""The unit details say why a unit has not dropped (each condition of the rule with its
value); the user's pins, pauses, resumes and stops are marked on the charts."""

from __future__ import annotations

import time
from typing import Any

from factories import LIVE_THRESHOLD, feed
from learndrop.app.panels import LivePanel
from learndrop.app.views.why_text import why_lines
from learndrop.core.events import RestoreEvent, UserAction


def _half(stream: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The stream up to the end of its third epoch (the run still going)."""
    ends = [i for i, (hook, _) in enumerate(stream) if hook == "on_epoch_end"]
    return stream[:ends[2] + 1]


def test_details_list_each_condition_with_its_value(live_panel: LivePanel,
                                                    stream: Any) -> None:
    feed(live_panel, _half(stream))
    h = live_panel.history
    waiting = h.dropped_prefix_len() + 1  # behind the first unit still training
    live_panel.select_unit(h.units[waiting].name)
    text = live_panel.details.why.text()
    for label in ("Warm-up", "Score \u2264 threshold", "Trend within tolerance", "Patience",
                  "Unit in front", "Pinned", "Kept"):
        assert label in text
    conditions = {c.key: c for c in h.why_not_yet(waiting)}
    score = h.latest_score(waiting)
    assert f"{score:.3f}" in conditions["score"].value
    assert conditions["score"].met == (score <= LIVE_THRESHOLD)
    front = h.units[h.dropped_prefix_len()].name
    if not conditions["blocked"].met:
        assert f"blocked by {front}" in conditions["blocked"].value
    assert "3 of 1 epoch done" in conditions["warmup"].value  # warm-up of the default policy
    # the head is kept; a pinned unit says it is pinned
    head = len(h.units) - 1
    assert why_lines(h.why_not_yet(head), False)[-1] == "\u2717 Kept: the head: always trains"
    live_panel.on_user_action(UserAction("pin", h.units[waiting].name, 310, 3.1, time.time()))
    live_panel.select_unit(h.units[waiting].name)
    assert "pinned: never drops" in live_panel.details.why.text()
    assert "waiting for:" in live_panel.details.why.text()
    assert "unpinning" in why_lines(h.why_not_yet(waiting), False)[0]


def test_actions_are_marked_on_the_score_and_metrics_charts(live_panel: LivePanel,
                                                            stream: Any) -> None:
    feed(live_panel, _half(stream))
    unit = live_panel.history.units[5].name
    now = time.time()
    for action, u, epoch in (("pin", unit, 2.25), ("pause", "", 2.5), ("resume", "", 2.5),
                             ("stop", "", 3.0)):
        live_panel.on_user_action(UserAction(action, u, int(epoch * 100), epoch, now))
    live_panel.score_plot.refresh(force=True)
    live_panel.metrics.refresh(force=True)
    expected = [(2.25, f"pin {unit}"), (2.5, "pause"), (2.5, "resume"), (3.0, "stop")]
    assert live_panel.score_plot.action_marks.positions() == expected
    loss_marks, acc_marks = live_panel.metrics.action_marks
    assert loss_marks.positions() == expected
    assert [p for p, _ in acc_marks.positions()] == [2.25, 2.5, 2.5, 3.0]
    assert "you pinned" in loss_marks.lines[0].toolTip()
    # another run starts: its charts start without marks
    feed(live_panel, stream[:1])
    live_panel.score_plot.refresh(force=True)
    assert live_panel.score_plot.action_marks.positions() == []


def test_restores_are_marked_logged_and_the_unit_trains_again(live_panel: LivePanel,
                                                              stream: Any) -> None:
    """A drop the policy undid is marked on the score and loss charts (its text as
    tooltip), listed in the event log as a restore, and its unit shows as training again
    in the strip, the dropped prefix and the unit details."""
    feed(live_panel, _half(stream))
    live_panel.redraw()
    h = live_panel.history
    drop = h.drops[-1]
    assert h.dropped[drop.index]
    restore = RestoreEvent(step=drop.step + 50, epoch=drop.epoch + 0.5, unit=drop.name,
                           index=drop.index, reason="loss", loss_before=0.4125,
                           loss_after=0.5311)
    live_panel.on_restore(restore)
    live_panel.select_unit(drop.name)
    live_panel.redraw()
    label = f"restore {drop.name}"
    assert live_panel.score_plot.restore_marks.positions() == [(restore.epoch, label)]
    tip = live_panel.score_plot.restore_marks.lines[0].toolTip()
    assert restore.text in tip and "0.4125" in tip and "0.5311" in tip
    loss_marks, acc_marks = live_panel.metrics.restore_marks
    assert loss_marks.positions() == [(restore.epoch, label)]
    assert [p for p, _ in acc_marks.positions()] == [restore.epoch]
    # the mark has its own colour, not the one of the user's actions
    pen = live_panel.score_plot.restore_marks.lines[0].pen
    assert pen.color().name() == live_panel.score_plot.theme.restore.name()
    # the event log names it a restore
    rows = [live_panel.event_log.row_text(r) for r in range(live_panel.event_log.row_count())]
    assert any(f"\tRestore\t{restore.text}" in r for r in rows)
    assert "restore" in live_panel.event_log.kind_actions
    # the unit trains again: the strip's state, the dropped prefix and the details say so
    assert live_panel.strip.state_of(drop.index) != "dropped"
    assert restore.text in live_panel.strip.tooltip_text(drop.index)
    assert h.dropped_prefix_len() <= drop.index
    assert "restored at epoch" in live_panel.details.fields["dropped"].text()
    # another run starts: its charts start without restore marks
    feed(live_panel, stream[:1])
    live_panel.score_plot.refresh(force=True)
    assert live_panel.score_plot.restore_marks.positions() == []


def test_a_run_resumed_from_its_checkpoint_is_marked_in_words(live_panel: LivePanel,
                                                              stream: Any) -> None:
    """The mark of a stopped run continued from its checkpoint reads "resume run" (its
    tooltip says the rest), never the action's stored name."""
    feed(live_panel, _half(stream))
    live_panel.on_user_action(UserAction("resume_run", "", 300, 3.0, time.time()))
    live_panel.score_plot.refresh(force=True)
    live_panel.metrics.refresh(force=True)
    assert live_panel.score_plot.action_marks.positions() == [(3.0, "resume run")]
    loss_marks, _acc = live_panel.metrics.action_marks
    assert loss_marks.positions() == [(3.0, "resume run")]
    assert "resumed the run from its checkpoint" in loss_marks.lines[0].toolTip()
    assert all("_" not in label for _, label in loss_marks.positions())
