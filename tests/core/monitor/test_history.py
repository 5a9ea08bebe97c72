"""RunHistory: a pure data structure, fed with handmade events (no Qt)."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest

from learndrop.core.events import (
    Callback,
    CheckpointSaved,
    DropEvent,
    EpochEnd,
    FitEnd,
    FitStart,
    Progress,
    SavingsReport,
    ScoreCheck,
    UnitInfo,
    UserAction,
    call_hook,
)
from learndrop.core.monitor import GrowingArray, RunHistory, ema_smoothed


def units(n: int = 4) -> tuple[UnitInfo, ...]:
    return tuple(UnitInfo(i, f"u{i}", (f"u{i}",), 10 * (i + 1), 100, 0.25, is_head=(i == n - 1))
                 for i in range(n))


def fit_start(n: int = 4, pinned: tuple[str, ...] = ()) -> FitStart:
    return FitStart("r", {"drop": {"threshold": 0.2, "keep_last": 0, "pinned": list(pinned)}},
                    units(n), 4, 10,
                    40, "cpu", "freeze", True, sum(10 * (i + 1) for i in range(n)), 400, "/tmp")


def check(step: int, scores: list[float | None], settled: list[bool] | None = None) -> ScoreCheck:
    n = len(scores)
    return ScoreCheck(step, step / 10, 0.1, tuple(scores), tuple(scores), (0.0,) * n,
                      tuple(settled or [False] * n), (0,) * n, 0.0)


def savings(step: int, fwd: float, params: int = 50) -> SavingsReport:
    return SavingsReport(step, fwd, fwd / 2, fwd / 3, fwd / 4, params, 100, 0.1, 0.2, 0.5,
                         3.0, 9.0, 0.9)


def epoch_end(epoch: int, val_acc: float, fwd: float = 0.0) -> EpochEnd:
    return EpochEnd(epoch, epoch * 10, 1.0, 0.5, 1.1, val_acc, None, 2.0, 2.0 * epoch,
                    2.0 * (4 - epoch), 500.0, 0.1, (), savings(epoch * 10, fwd))


def drop(step: int, i: int, score: float | None = 0.1, reason: str = "policy") -> DropEvent:
    return DropEvent(step, step / 10, f"u{i}", i, reason, score, "freeze")


def test_is_a_callback_and_works_through_call_hook() -> None:
    h = RunHistory()
    assert isinstance(h, Callback)
    call_hook([h], "on_fit_start", fit_start())
    call_hook([h], "on_scores", check(5, [0.9, 0.8, 0.7, None]))
    assert h.n_checks() == 1 and h.threshold == pytest.approx(0.2)


def test_growing_array_doubles_and_views() -> None:
    g = GrowingArray(3, capacity=2)
    for k in range(5):
        g.append([k, k + 1, k + 2])
    assert len(g) == 5 and g.view().shape == (5, 3)
    assert g._buf.shape[0] == 8
    assert list(g.column(0)) == [0, 1, 2, 3, 4]
    assert np.shares_memory(g.view(), g._buf)


def test_scores_matrix_nan_for_unscored_and_views() -> None:
    h = RunHistory()
    h.on_fit_start(fit_start())
    h.on_scores(check(10, [1.0, 1.0, 1.0, None]))
    h.on_scores(check(20, [0.5, None, 0.8, None]))
    m = h.score_matrix()
    assert m.shape == (2, 4)
    assert np.isnan(m[1, 1]) and np.isnan(m[:, 3]).all() and m[1, 0] == 0.5
    assert np.shares_memory(m, h.scores._buf)
    assert list(h.check_steps()) == [10, 20] and list(h.check_epochs()) == [1.0, 2.0]
    assert h.latest_score(1) == 1.0  # last finite score is kept
    assert h.latest_score(3) is None


def test_unit_states_settling_dropped_pinned() -> None:
    h = RunHistory()
    h.on_fit_start(fit_start(pinned=("u2",)))
    # the head always trains: "kept", never "settling"
    assert h.unit_states() == ["learning", "learning", "pinned", "kept"]
    h.on_scores(check(10, [0.1, 0.5, 0.1, None], [True, False, True, False]))
    assert h.unit_state(0) == "settling" and h.unit_state(1) == "learning"
    assert h.unit_state(2) == "pinned"
    h.on_drop(drop(10, 0))
    assert h.unit_state(0) == "dropped"
    h.set_pinned("u2", False)
    assert h.unit_state(2) == "settling"
    h.set_pinned("u1", True)
    assert h.unit_state(1) == "pinned"
    with pytest.raises(KeyError):
        h.set_pinned("nope", True)


def test_dropped_prefix_and_boundary_over_checks() -> None:
    h = RunHistory()
    h.on_fit_start(fit_start())
    assert h.dropped_prefix_len() == 0
    h.on_scores(check(10, [0.1, 0.5, 0.9, None]))
    h.on_drop(drop(10, 0))
    h.on_scores(check(20, [None, 0.1, 0.9, None]))
    h.on_drop(drop(20, 2))  # not in the prefix: "any" order
    assert h.dropped_prefix_len() == 1
    h.on_drop(drop(20, 1))
    assert h.dropped_prefix_len() == 3
    h.on_scores(check(30, [None, None, None, None]))
    assert list(h.prefix_at_checks()) == [0, 1, 3]
    h.on_drop(drop(30, 1))  # a repeated drop is ignored
    assert len(h.drops) == 3 and [d.name for d in h.drops] == ["u0", "u2", "u1"]
    assert h.drop_of[0].check == 1 and h.drop_of[1].check == 2


def test_unit_scores_stop_at_drop() -> None:
    h = RunHistory()
    h.on_fit_start(fit_start())
    for k, s in enumerate([0.9, 0.5, 0.1]):
        h.on_scores(check(10 * (k + 1), [s, 1.0, 1.0, None]))
    h.on_drop(drop(30, 0, score=None))
    h.on_scores(check(40, [None, 0.9, 1.0, None]))
    x, y = h.unit_scores(0)
    assert list(y) == [0.9, 0.5, 0.1] and list(x) == [1.0, 2.0, 3.0]
    assert h.drops[0].score == pytest.approx(0.1)  # missing score: the last one seen
    assert len(h.unit_scores(1)[1]) == 4


def test_best_accuracy_savings_params() -> None:
    h = RunHistory()
    h.on_fit_start(fit_start())
    assert h.best_val_accuracy() is None and h.latest_savings() is None
    assert h.trainable_params() == 100
    h.on_epoch_end(epoch_end(1, 0.6, 0.0))
    h.on_epoch_end(epoch_end(2, 0.8, 0.25))
    h.on_epoch_end(epoch_end(3, 0.7, 0.5))
    assert h.best_val_accuracy() == pytest.approx(0.8)
    s = h.latest_savings()
    assert s is not None and s.forward_flops_saved_now == 0.5 and s.step == 30
    assert list(h.savings.column(1)) == [0.0, 0.25, 0.5]
    assert h.trainable_params() == 50


def test_progress_eta_and_fractions() -> None:
    h = RunHistory()
    assert h.progress_fraction() == 0.0 and h.eta_s() is None
    h.on_fit_start(fit_start())
    h.on_progress(Progress(10, 1, 5, 10, 2.0, 0.1, 400.0, 10.0, 30.0))
    assert h.progress_fraction() == pytest.approx(10 / 40)
    assert h.epoch_fraction() == pytest.approx(0.5)
    assert h.eta_s() == pytest.approx(30.0)
    h.on_progress(Progress(20, 2, 5, 10, 1.5, 0.1, 400.0, 20.0, math.nan))
    assert h.eta_s() == pytest.approx(20.0)  # no estimate from the engine: elapsed-based
    assert h.latest_images_per_s() == 400.0
    assert h.progress.view().shape == (2, 6) and h.progress.view()[1, 1] == pytest.approx(2.0)
    h.on_fit_end(FitEnd("finished", ""))
    assert h.progress_fraction() == 1.0 and h.eta_s() == 0.0 and not h.running


def test_log_entries() -> None:
    h = RunHistory()
    h.on_fit_start(fit_start())
    h.on_scores(check(10, [0.1, 0.5, 0.9, None]))
    h.on_drop(drop(10, 0, reason="manual"))
    h.on_checkpoint(CheckpointSaved(1, 10, "/tmp/c.pt"))
    h.on_warning("slow disk")
    h.on_error("boom")
    h.on_fit_end(FitEnd("failed", "boom"))
    kinds = [e.kind for e in h.log]
    assert kinds == ["info", "drop", "checkpoint", "warning", "error", "error"]
    assert "by hand" in h.log[1].text and h.log[1].step == 10
    assert h.log[3].epoch == pytest.approx(1.0)


def test_ema_smoothed_1d_2d_and_nan() -> None:
    y = ema_smoothed(np.array([1.0, 0.0, 0.0]), 0.5)
    assert list(y) == [1.0, 0.5, 0.25]
    m = np.array([[np.nan, 1.0], [1.0, 0.0], [0.0, np.nan], [0.0, np.nan]])
    s = ema_smoothed(m, 0.5)
    assert np.isnan(s[0, 0]) and s[1, 0] == 1.0 and s[2, 0] == 0.5 and s[3, 0] == 0.25
    assert s[1, 1] == 0.5 and np.isnan(s[2:, 1]).all()
    assert list(ema_smoothed(np.array([3.0, 1.0]), 1.0)) == [3.0, 1.0]
    with pytest.raises(ValueError):
        ema_smoothed(np.zeros(3), 0.0)


def test_incremental_smoothing_matches_batch_and_alpha_change() -> None:
    rng = np.random.default_rng(1)
    h = RunHistory()
    h.on_fit_start(fit_start(6))
    for k in range(50):
        vals: list[float | None] = list(rng.random(6))
        vals[5] = None
        if k >= 30:
            vals[0] = None
        h.on_scores(check(k, vals))
    np.testing.assert_allclose(h.smoothed_score_matrix(),
                               ema_smoothed(h.score_matrix(), RunHistory.DEFAULT_ALPHA))
    np.testing.assert_allclose(h.smoothed_score_matrix(0.7), ema_smoothed(h.score_matrix(), 0.7))
    h.on_scores(check(51, list(rng.random(6))))
    np.testing.assert_allclose(h.smoothed_score_matrix(), ema_smoothed(h.score_matrix(), 0.7))


def test_fit_start_resets_and_ignores_unknown_pins() -> None:
    h = RunHistory()
    h.on_fit_start(fit_start(pinned=("u1", "ghost")))
    h.on_scores(check(10, [0.1, 0.5, 0.9, None]))
    assert h.pinned == {"u1"}
    h.on_fit_start(fit_start(3))
    assert h.n_checks() == 0 and h.score_matrix().shape == (0, 3) and h.pinned == set()


def test_150_units_10k_checks_is_cheap() -> None:
    n = 150
    us = tuple(UnitInfo(i, f"u{i}", (), 1, 1, 1 / n) for i in range(n))
    h = RunHistory()
    h.on_fit_start(FitStart("big", {}, us, 100, 100, 10_000, "cpu", "freeze", True, n, n, ""))
    rng = np.random.default_rng(0)
    rows = rng.random((10_000, n)).tolist()
    settled, streaks, none = (False,) * n, (0,) * n, (0.0,) * n
    t0 = time.perf_counter()
    for k, row in enumerate(rows):
        h.on_scores(ScoreCheck(k, k / 100, 0.1, none, tuple(row), none, settled, streaks, 0.0))
    per_check = (time.perf_counter() - t0) / len(rows)
    assert h.score_matrix().shape == (10_000, n)
    assert per_check < 1e-3, f"{per_check * 1e6:.0f} us per check"


def test_score_bins_min_max_mean_and_changes() -> None:
    from learndrop.core.monitor import ScoreBins

    b = ScoreBins(2, n_bins=4, start=0.0, span=4.0)
    b.add(0.2, np.array([0.5, np.nan]))
    b.add(0.7, np.array([0.1, 0.9]))
    g = b.generation
    b.add(2.5, np.array([0.3, 0.4]))
    assert b.lo[0].tolist() == [0.1, 0.9] and b.hi[0].tolist() == [0.5, 0.9]
    assert b.mean()[0].tolist() == pytest.approx([0.3, 0.9])
    assert b.x()[0] == pytest.approx(0.45) and np.isnan(b.x()[1])
    assert b.changed_since(g).tolist() == [2] and b.last_bin == 2
    b.add(4.0, np.array([0.2, 0.2]))  # the end of the range is in the last bin
    assert b.merges == 0 and b.last_bin == 3


def test_score_bins_merge_when_run_outgrows_range_and_rebuild_matches() -> None:
    from learndrop.core.monitor import ScoreBins

    rng = np.random.default_rng(3)
    xs = np.sort(rng.random(300)) * 10
    rows = rng.random((300, 3))
    rows[200:, 0] = np.nan
    inc = ScoreBins(3, n_bins=8, start=0.0, span=2.0)
    for x, r in zip(xs, rows):
        inc.add(float(x), r)
    assert inc.span == 16.0 and inc.merges == 3
    assert inc.changed_since(0).size == 8
    bulk = ScoreBins(3, n_bins=8, start=0.0, span=2.0)
    bulk.rebuild(xs, rows)
    for name in ("lo", "hi", "count", "xcount"):
        np.testing.assert_array_equal(getattr(inc, name), getattr(bulk, name))
    np.testing.assert_allclose(inc.mean(), bulk.mean())
    # envelope: every bin's min/max are those of the checks in it
    k = np.floor(xs / 2).astype(int)
    for j in range(8):
        sel = rows[k == j, 1]
        if sel.size:
            assert inc.lo[j, 1] == sel.min() and inc.hi[j, 1] == sel.max()


def test_history_bins_span_the_planned_run() -> None:
    h = RunHistory()
    h.on_fit_start(fit_start())  # 4 epochs
    assert (h.bins.start, h.bins.end) == (0.0, 4.0)
    for k in range(1, 41):
        h.on_scores(check(k, [0.5, 0.4, 0.3, None]))
    assert h.bins.merges == 0 and h.bins.filled().sum() == 40
    assert h.smooth_bins.filled().sum() == 40
    h.smoothed_score_matrix(0.9)
    np.testing.assert_allclose(np.nanmax(h.smooth_bins.hi[:, :3], axis=0),
                               np.nanmax(h.smoothed_score_matrix()[:, :3], axis=0))


def test_user_actions_pin_pause_and_are_logged_when_asked() -> None:
    h = RunHistory()
    h.on_fit_start(fit_start())
    h.on_drop(drop(10, 0))
    asked = time.time() - 3600.0
    h.on_user_action(UserAction("pin", "u0", 12, 1.2, asked))  # takes a dropped unit back
    assert h.unit_state(0) == "pinned" and 0 not in h.drop_of
    h.on_user_action(UserAction("pause", "", 12, 1.2, asked + 5))
    assert h.paused
    h.on_user_action(UserAction("resume", "", 12, 1.2, asked + 9))
    assert not h.paused
    h.on_user_action(UserAction("unpin", "u0", 14, 1.4, asked + 10))
    assert h.unit_state(0) == "learning"
    lines = [e for e in h.log if e.kind == "action"]
    assert [e.text for e in lines] == ["you pinned u0", "you paused", "you resumed",
                                       "you unpinned u0"]
    assert [e.wall_time for e in lines] == [asked, asked + 5, asked + 9, asked + 10]
    assert lines[0].epoch == 1.2 and len(h.actions) == 4


def test_replay_clock_dates_the_log_and_survives_fit_start() -> None:
    h = RunHistory()
    then = 1_700_000_000.0
    h.on_clock(then)
    h.on_fit_start(fit_start())
    h.on_clock(then + 60)
    h.on_drop(drop(10, 0))
    h.on_clock(then + 90)
    h.on_warning("slow disk")
    assert [e.wall_time for e in h.log] == [then, then + 60, then + 90]
    live = RunHistory()
    live.on_fit_start(fit_start())
    assert abs(live.log[0].wall_time - time.time()) < 60  # a live run's events happen now


def test_kept_units_and_pins_that_block_prefix_drops() -> None:
    h = RunHistory()
    start = fit_start(6)
    h.on_fit_start(FitStart(start.run_name, {"drop": {"keep_last": 2, "order": "prefix"}},
                            start.units, 4, 10, 40, "cpu", "freeze", True, 210, 600, "/tmp"))
    h.on_scores(check(10, [0.1] * 5 + [None], [True] * 5 + [False]))
    assert h.unit_states() == ["settling", "settling", "settling", "kept", "kept", "kept"]
    assert h.blocked_by_pin("u0") == ["u1", "u2"]  # u3, u4 always train anyway
    h.on_drop(drop(10, 1))
    assert h.blocked_by_pin("u0") == ["u2"]
    h.policy = dataclasses.replace(h.policy, order="any")
    assert h.blocked_by_pin("u0") == []


def test_complete_epochs_and_checkpoint_position() -> None:
    """A run stopped at 0.9 epochs: no epoch is complete, and its checkpoint (0 complete
    epochs) is logged at its step's position, not at epoch 0."""
    h = RunHistory()
    h.on_fit_start(fit_start())
    h.on_progress(Progress(9, 0, 9, 10, 1.0, 0.1, 100.0, 1.0, 3.0))
    h.on_checkpoint(CheckpointSaved(0, 9, "/tmp/r/checkpoint.pt"))
    assert h.epochs_complete() == 0
    entry = h.log[-1]
    assert entry.epoch == pytest.approx(0.9)
    assert entry.text == "checkpoint after 0 complete epochs: /tmp/r/checkpoint.pt"
    h.on_progress(Progress(23, 2, 3, 10, 1.0, 0.1, 100.0, 2.0, 3.0))
    assert h.epochs_complete() == 2


def test_a_cancelled_run_ends_where_it_took_the_cancel() -> None:
    """Cancelled between two progress reports: the log's end is at the step where the run
    took the cancel, not back at the last report."""
    h = RunHistory()
    start = fit_start()
    h.on_fit_start(start)
    spe = start.steps_per_epoch
    h.on_progress(Progress(step=2 * spe, epoch=1, batch=spe, batches=spe, loss=0.5, lr=0.1,
                           images_per_s=100.0, elapsed_s=1.0, eta_s=1.0))
    taken = 2 * spe + spe // 2
    h.on_user_action(UserAction(action="cancel", unit="", step=taken,
                                epoch=taken / spe, time=time.time()))
    h.on_fit_end(FitEnd(status="cancelled", message=""))
    asked, ended = h.log[-2], h.log[-1]
    assert asked.kind == "action" and ended.text.startswith("run cancelled")
    assert ended.step == asked.step == taken
    assert ended.epoch == pytest.approx(asked.epoch)


def test_stored_info_lines_are_logged() -> None:
    h = RunHistory()
    h.on_fit_start(fit_start())
    h.on_info("run stopped: stopped; checkpoint kept")
    assert (h.log[-1].kind, h.log[-1].text) == ("info", "run stopped: stopped; checkpoint kept")
