"""The engine's parts, each built alone: the scorer, the drop state, the accounting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine_nets import DATA_X, Net
from learndrop.core.engine import DropPolicy, Scorer, StepCost, discover_units, step_cost
from learndrop.core.engine._accounting import Accounting
from learndrop.core.engine._drop_state import DropState


def _net() -> tuple[Net, list]:
    torch.manual_seed(0)
    model = Net()
    return model, discover_units(model)


def _nudge(unit_params: list[nn.Parameter], by: float) -> None:
    with torch.no_grad():
        for p in unit_params:
            p.add_(by * torch.ones_like(p))


# ---- Scorer ---------------------------------------------------------------------------------
def _groups(model: Net, head_first: bool) -> list[dict]:
    head = list(model.head.parameters())
    body = [p for n, p in model.named_parameters() if not n.startswith("head.")]
    groups = [{"params": head, "lr": 0.5}, {"params": body, "lr": 0.1}]
    return groups if head_first else groups[::-1]


@pytest.mark.parametrize("head_first", [True, False])
def test_each_unit_is_divided_by_its_own_learning_rate(head_first: bool) -> None:
    model, units = _net()
    opt = torch.optim.SGD(_groups(model, head_first), lr=0.1)
    scorer = Scorer(units, DropPolicy())
    body = [u for u in units if not u.is_head]
    scorer.follow(body)
    before = {u.index: torch.cat([p.detach().reshape(-1) for p in u.parameters()]).norm()
              for u in body}
    _nudge(units[1].parameters(), 0.01)
    scorer.add_step(opt)
    event = scorer.check(body, opt, step=1, epoch=1.0)
    moved = 0.01 * sum(p.numel() for p in units[1].parameters()) ** 0.5 / before[1]
    assert event.changes[1] == pytest.approx(float(moved) / 0.1, rel=1e-4)  # its rate: 0.1
    assert event.changes[0] == 0.0 and event.lr == (0.5 if head_first else 0.1)


def test_the_order_of_the_groups_never_changes_a_score() -> None:
    got = []
    for head_first in (True, False):
        model, units = _net()
        opt = torch.optim.SGD(_groups(model, head_first), lr=0.1)
        scorer = Scorer(units, DropPolicy())
        scorer.follow(units[:-1])
        head = next(g for g in opt.param_groups if len(g["params"]) == 2)  # weight, bias
        for step in range(1, 6):
            head["lr"] *= 0.5  # only the head's rate decays
            for u in units[:-1]:  # each body unit moves less and less: settling
                _nudge(u.parameters(), 0.01 * 0.8 ** step)
            scorer.add_step(opt)
            scorer.check(units[:-1], opt, step=step, epoch=float(step))
        got.append([s.score for s in scorer.states])
    assert got[0] == got[1]
    assert all(s is not None and s < 0.5 for s in got[0][:-1])  # settling, in either order


def test_a_unit_spanning_two_groups_takes_their_parameter_weighted_rate() -> None:
    model, units = _net()
    stem = list(model.stem.parameters())
    rest = [p for n, p in model.named_parameters() if not n.startswith("stem.")]
    opt = torch.optim.SGD([{"params": stem[:1], "lr": 0.2}, {"params": stem[1:], "lr": 0.1},
                           {"params": rest, "lr": 0.3}])
    n0, n1 = stem[0].numel(), sum(p.numel() for p in stem[1:])
    rates = Scorer.unit_rates(units[:1], opt, [0.2, 0.1, 0.3])
    assert rates[0] == pytest.approx((0.2 * n0 + 0.1 * n1) / (n0 + n1))


def test_a_restarted_unit_measures_from_then_and_its_streak_starts_over() -> None:
    model, units = _net()
    scorer = Scorer(units, DropPolicy(threshold=1.0, trend_tolerance=10.0, window=2,
                                          settle="tolerance"))
    scorer.follow(units[:-1])
    for step in range(1, 5):
        _nudge(units[0].parameters(), 0.01)
        scorer.check(units[:-1], None, step=step, epoch=float(step))
    assert scorer.states[0].streak == 2
    scorer.stop(units[0])
    _nudge(units[0].parameters(), 5.0)  # moved while dropped: not counted
    scorer.start(units[0])
    assert scorer.states[0].streak == 0
    _nudge(units[0].parameters(), 0.01)
    event = scorer.check(units[:-1], None, step=5, epoch=5.0)
    assert event.changes[0] == pytest.approx(scorer.states[0].change)
    assert event.changes[0] < 0.1  # from the restart, not from before the drop


def test_the_scorer_state_round_trips() -> None:
    model, units = _net()
    scorer = Scorer(units, DropPolicy())
    scorer.follow(units[:-1])
    for step in range(1, 4):
        _nudge(units[1].parameters(), 0.01 * step)
        scorer.check(units[:-1], None, step=step, epoch=float(step))
    again = Scorer(units, DropPolicy())
    again.load_state_dict(scorer.state_dict(), torch.device("cpu"))
    assert again.states == scorer.states and again.check_count == 3
    assert again.latest == scorer.latest


# ---- DropState ------------------------------------------------------------------------------
def test_a_drop_freezes_and_leaves_the_optimizer_and_a_restore_puts_it_back() -> None:
    model, units = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = [list(g["params"]) for g in opt.param_groups]
    drops = DropState(model, units, opt)
    drops.drop(units[0], "manual", 3, 1.5, opt)
    assert drops.is_dropped(units[0]) and drops.order == [units[0].name]
    assert not any(p.requires_grad for p in units[0].parameters())
    assert not {id(p) for p in units[0].parameters()} & {
        id(p) for g in opt.param_groups for p in g["params"]}
    assert all(not m.training for m in units[0].modules)
    assert drops.layout(range(0)) and drops.prefix_len == 1 and not drops.layout(range(0))
    assert drops.log() == [{"unit": units[0].name, "step": 3, "epoch": 1.5,
                            "reason": "manual"}]
    drops.restore(units[0], opt, training=True)
    assert [list(g["params"]) for g in opt.param_groups] == before
    assert all(p.requires_grad for p in units[0].parameters()) and drops.order == []
    assert drops.version == 2


def test_roles_say_what_each_dropped_module_does() -> None:
    model, units = _net()
    drops = DropState(model, units, None)
    for u in units[:2]:
        drops.drop(u, "policy", 1, 1.0, None)
    drops.layout(range(0))
    roles = drops.roles("freeze")
    assert {u.name for u, _ in roles.values()} == {units[0].name, units[1].name}
    assert {r.value for _, r in roles.values()} == {"prefix"}


def test_a_state_without_matching_slots_is_refused() -> None:
    model, units = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    saved = DropState(model, units, opt).state_dict()
    swapped = torch.optim.SGD(list(model.parameters())[::-1], lr=0.1)
    assert DropState(model, units, swapped).check_slots(saved["optimizer_slots"], swapped)
    assert DropState(model, units, opt).check_slots(saved["optimizer_slots"], opt) == ""


# ---- Accounting -----------------------------------------------------------------------------
def test_step_cost_follows_the_table() -> None:
    flops = [10.0, 20.0, 30.0, 40.0]
    full = step_cost(flops, [False] * 4, other_flops=5.0)
    assert full == StepCost(105.0, 315.0)
    frozen = step_cost(flops, [True, True, False, False], prefix=2, other_flops=5.0)
    assert frozen.train == 315.0 - 2 * 30.0
    cached = step_cost(flops, [True, True, False, False], prefix=2, cached=range(2),
                       cache_hit=True, mode="cache")
    assert cached == StepCost(70.0, 210.0)
    outside = step_cost(flops, [False, True, False, False], prefix=0)
    assert outside.train == 300.0 - 20.0
    skipped = step_cost(flops, [False, True, False, False], skipped=[False, True], mode="skip")
    assert skipped == StepCost(80.0, 240.0)


def test_accounting_measures_and_counts_steps() -> None:
    model, units = _net()
    acc = Accounting(torch.device("cpu"))
    assert not acc.measured
    acc.measure(model, units, DATA_X[:2])
    assert acc.measured and acc.total_forward_flops >= sum(u.forward_flops for u in units)
    drops = DropState(model, units, None)
    drops.drop(units[0], "manual", 0, 0.0, None)
    drops.layout(range(0))
    acc.step_cost = acc.cost(units, drops, "freeze", cache_hit=False)
    for _ in range(3):
        acc.begin_step()
        acc.end_step()
    report = acc.report(3, model, total_steps=10)
    assert report.step == 3 and report.train_flops_saved_now > 0
    assert report.train_flops_saved_total == pytest.approx(report.train_flops_saved_now)
