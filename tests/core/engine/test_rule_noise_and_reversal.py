"""The scale-free settle test, checks inside an epoch, fractional warm-ups and reversible
drops: the pure functions, the live engine, and a replay of a run that restored a drop."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from engine_nets import Net, batch
from learndrop.core.engine import (
    DropPolicy,
    LearnDrop,
    LossSpan,
    RecordedAction,
    RecordedCheck,
    RuleUnit,
    ScoreState,
    advance,
    is_settled,
    loss_rose,
    may_drop,
    replay,
    restore_hold,
    slope,
    slope_error,
)
from learndrop.core.engine._reversal import LossWatch
from learndrop.core.engine._rule import check_due, is_flat, t_quantile
from learndrop.core.events import Callback, FitStart, RestoreEvent
from learndrop.core.monitor import recorded_run, what_if
from learndrop.core.monitor._whatif import policy_of

NOISE = DropPolicy(settle="noise", threshold=0.7, window=5, confidence=0.9)


@pytest.mark.parametrize("p, dof, expected", [(0.95, 1, 6.3138), (0.95, 2, 2.9200),
                                              (0.975, 2, 4.3027), (0.975, 10, 2.2281),
                                              (0.9, 30, 1.3104)])
def test_t_quantiles_match_the_tables(p: float, dof: int, expected: float) -> None:
    assert t_quantile(p, dof) == pytest.approx(expected, abs=2e-4)


def test_the_slope_error_is_least_squares_standard_error() -> None:
    rng = np.random.default_rng(0)
    y = list(0.5 - 0.03 * np.arange(7) + rng.normal(0, 0.02, 7))
    b = slope(y)
    assert b is not None
    x = np.arange(7.0)
    fit = np.polyfit(x, y, 1)
    resid = np.array(y) - np.polyval(fit, x)
    expected = math.sqrt(resid @ resid / 5 / ((x - x.mean()) ** 2).sum())
    assert b == pytest.approx(fit[0]) and slope_error(y) == pytest.approx(expected)
    assert slope_error([0.3, 0.2]) is None and slope_error([0.5, 0.4, 0.3]) == pytest.approx(0)


def test_a_noisy_plateau_settles_and_a_clean_fall_does_not() -> None:
    plateau = [0.50, 0.42, 0.55, 0.47, 0.44]
    falling = [0.60, 0.55, 0.50, 0.45, 0.40]  # 0.05 a check, no scatter: still learning
    for values, flat in ((plateau, True), (falling, False)):
        b, se = slope(values), slope_error(values)
        assert is_flat(b, se, NOISE, len(values)) is flat
        assert is_settled(values[-1], b, NOISE, se, len(values)) is flat
    # the fixed tolerance calls the fall flat: it is 0.05 a check, under 0.1
    assert is_flat(slope(falling), None, NOISE.with_values(settle="tolerance"), 5)
    # too few scores to know the noise: not flat
    assert not is_flat(-0.01, None, NOISE, 2)


def test_the_noise_test_does_not_depend_on_the_scores_scale() -> None:
    rng = random.Random(1)
    for _ in range(200):
        values = [0.5 + rng.gauss(0, 0.05) - 0.01 * k * rng.random() for k in range(5)]
        scaled = [v * 0.3 for v in values]
        assert is_flat(slope(values), slope_error(values), NOISE, 5) == is_flat(
            slope(scaled), slope_error(scaled), NOISE, 5)


def test_advance_keeps_the_trend_error_and_round_trips() -> None:
    state = ScoreState()
    for c in (1.0, 0.6, 0.5, 0.55, 0.45):
        state = advance(state, c, NOISE)
    assert state.trend_se == pytest.approx(slope_error(state.recent))
    assert ScoreState.from_dict(state.to_dict()) == state


def test_checks_inside_an_epoch_are_evenly_spaced() -> None:
    policy = DropPolicy(checks_per_epoch=4)
    due = [k for k in range(1, 11) if check_due(policy, k, 10, 100 + k)]
    assert due == [3, 5, 8]  # the fourth is the epoch's end
    assert not any(check_due(policy, k, None, k) for k in range(1, 11))  # size unknown
    every = DropPolicy(check_every=4, checks_per_epoch=4)
    assert [s for s in range(1, 13) if check_due(every, s, 10, s)] == [4, 8, 12]


def test_a_warm_up_may_end_inside_an_epoch() -> None:
    policy = DropPolicy(warmup_epochs=0.5)
    assert not may_drop(policy, 0.25) and may_drop(policy, 0.5)
    assert not may_drop(policy.with_values(enabled=False), 3.0)


def test_a_loss_rise_beyond_its_noise_is_told_from_noise() -> None:
    before = LossSpan.of(total=10 * 0.5, squares=10 * (0.5 ** 2 + 0.01), steps=10)
    assert before is not None
    assert before.mean == pytest.approx(0.5)
    assert before.error == pytest.approx(math.sqrt(0.01 * 10 / 9 / 10))
    assert loss_rose(before, LossSpan(0.70, 0.03, 10), 0.9)
    assert not loss_rose(before, LossSpan(0.52, 0.03, 10), 0.9)
    assert not loss_rose(before, LossSpan(0.30, 0.03, 10), 0.9)  # a fall is no harm
    assert LossSpan.of(float("nan"), 1.0, 4) is None and LossSpan.of(0.0, 0.0, 0) is None


def test_the_watch_restores_only_the_last_drop_and_only_for_a_while() -> None:
    policy = DropPolicy(reversible=True)
    watch = LossWatch()
    for _ in range(8):
        watch.add(torch.tensor(1.0))
    watch.add(torch.tensor(1.2))
    watch.take()
    watch.dropped([0, 1])
    assert watch.judge(LossSpan(1.0, 0.05, 9), policy).units == ()  # no rise: one check used
    verdict = watch.judge(LossSpan(1.6, 0.05, 9), policy)
    assert verdict.units == (0, 1) and verdict.after == pytest.approx(1.6)
    assert watch.watched is None
    watch.take()
    watch.dropped([2])  # no loss given since: nothing to watch by
    assert watch.watched is None


class _Restores(Callback):
    """Keeps each restore with the unit's streak and drop state when it was announced."""

    def __init__(self) -> None:
        self.restores: list[RestoreEvent] = []
        self.seen: list[tuple[int, bool]] = []
        self.ld: LearnDrop | None = None

    def on_restore(self, event: RestoreEvent) -> None:
        self.restores.append(event)
        if self.ld is not None:
            self.seen.append((self.ld.score_states[event.index].streak,
                              self.ld.is_dropped(event.unit)))


def _train(ld: LearnDrop, net: nn.Module, opt: torch.optim.Optimizer, epochs: int,
           loss_after: float | None) -> None:
    """Train; once anything has dropped, hand ld.step a loss of ``loss_after`` (a stand-in
    for a drop that hurt) instead of the real one."""
    for epoch in range(epochs):
        for b in range(4):
            x, y, _ = batch(epoch * 4 + b)
            loss = nn.functional.cross_entropy(ld.model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            told = loss.detach()
            if ld.dropped and loss_after is not None:
                told = torch.tensor(loss_after) + 0.01 * torch.randn(())
            ld.step(told)
        ld.end_epoch()


def _engine(**settings: object) -> tuple[LearnDrop, nn.Module, torch.optim.Optimizer,
                                        _Restores]:
    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    seen = _Restores()
    policy = DropPolicy(threshold=1.0, patience=1, warmup_epochs=0, window=2,
                        trend_tolerance=10.0, settle="tolerance", keep_last=0, reversible=True,
                        checks_per_epoch=4)
    ld = LearnDrop(net, opt, policy=policy.with_values(**settings), callbacks=[seen],
                   example_input=batch(0)[0][:2], steps_per_epoch=4)
    seen.ld = ld
    return ld, net, opt, seen


def test_a_drop_whose_loss_rises_is_restored_and_held_back() -> None:
    ld, net, opt, seen = _engine()
    _train(ld, net, opt, 3, loss_after=50.0)
    assert seen.restores, "the loss rose tenfold after the drop and nothing was restored"
    first = seen.restores[0]
    assert first.loss_after > first.loss_before + 1 and first.reason == "loss"
    # training again, held back: its streak starts at -patience (two settled checks to go)
    assert seen.seen[0] == (restore_hold(ld.policy), False) == (-1, False)
    events = [e for e in ld.drop_log() if e["unit"] == first.unit]
    assert events, "the restored unit had been dropped by the policy"


def test_a_drop_the_loss_accepts_stays_and_no_loss_means_no_restore() -> None:
    ld, net, opt, seen = _engine()
    _train(ld, net, opt, 3, loss_after=None)
    assert ld.dropped and not seen.restores
    quiet, net2, opt2, seen2 = _engine()
    with pytest.warns(UserWarning, match="ld.step\\(loss\\)"):
        for _ in range(2):
            for b in range(4):
                x, y, _ = batch(b)
                loss = nn.functional.cross_entropy(quiet.model(x), y)
                opt2.zero_grad()
                loss.backward()
                opt2.step()
                quiet.step()
            quiet.end_epoch()
    assert not seen2.restores


def test_the_watch_survives_a_resume() -> None:
    ld, net, opt, _ = _engine()
    _train(ld, net, opt, 1, loss_after=None)
    state = ld.state_dict()
    assert state["progress"]["loss_watch"]["watched"] is not None
    again, _, _, _ = _engine()
    again.load_state_dict(state)
    assert again.losses.watched == ld.losses.watched


UNITS = [RuleUnit("a"), RuleUnit("b"), RuleUnit("c"), RuleUnit("head", is_head=True)]


def _checks(rows: list[list[float | None]]) -> list[RecordedCheck]:
    return [RecordedCheck(step=i + 1, epoch=float(i + 1), epochs_done=float(i + 1),
                          changes=tuple(r)) for i, r in enumerate(rows)]


def test_a_replay_restores_and_holds_a_reverted_unit_only_when_reversible() -> None:
    easy = DropPolicy(threshold=1.0, patience=1, warmup_epochs=0, window=2,
                      trend_tolerance=10.0, settle="tolerance", keep_last=1, reversible=True)
    rows: list[list[float | None]] = [[1.0, 1.0, 1.0, None]] * 3 + [
        [None, None, 1.0, None]] + [[1.0, None, 1.0, None]] * 3
    revert = [RecordedAction(4, "revert", 0)]
    got = replay(easy, UNITS, _checks(rows), revert)
    # dropped at check 2 (the first with a trend), restored before check 3 and held back:
    # its streak starts at -1, so it drops again at check 5, not at check 4
    assert [(d.unit, d.check) for d in got.drops if d.unit == 0] == [(0, 2), (0, 5)]
    plain = replay(easy.with_values(reversible=False), UNITS, _checks(rows), revert)
    assert [(d.unit, d.check) for d in plain.drops if d.unit == 0] == [(0, 2)]


def test_a_recorded_run_with_a_restore_replays_exactly() -> None:
    ld, net, opt, _ = _engine()
    events: list[object] = []

    class Keep(Callback):
        def on_scores(self, event: object) -> None:
            events.append(event)

        def on_drop(self, event: object) -> None:
            events.append(event)

        def on_restore(self, event: object) -> None:
            events.append(event)

    start = FitStart(run_name="r", config={"drop": _policy_dict(ld.policy)},
                     units=ld.unit_infos(), epochs=4, steps_per_epoch=4, total_steps=16,
                     device="cpu", mode="freeze", drop_enabled=True, total_params=0,
                     forward_flops=ld.total_forward_flops, output_dir="")
    events.append(start)
    ld.add_callback(Keep())
    _train(ld, net, opt, 4, loss_after=50.0)
    run = recorded_run(events)
    assert any(a.action == "revert" for a in run.actions)
    result = what_if(run)
    assert result.first_difference is None
    assert [u.drop_epoch for u in result.units] == [u.recorded_drop_epoch
                                                    for u in result.units]


def _policy_dict(policy: DropPolicy) -> dict[str, object]:
    import dataclasses
    return dataclasses.asdict(policy)


def test_runs_recorded_before_these_settings_replay_with_what_they_ran() -> None:
    old = policy_of({"drop": {"threshold": 0.7, "warmup_epochs": 1}})
    assert old.settle == "tolerance" and old.checks_per_epoch == 1 and not old.reversible
    new = policy_of({"drop": _policy_dict(DropPolicy())})
    assert new == DropPolicy()
