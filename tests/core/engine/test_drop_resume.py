"""Drop, restore and pin put parameters back where they were, and a resume after any sequence
of them continues bit-identically to an uninterrupted run."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from engine_nets import Net, batch
from learndrop.core import ConfigError, LearnDrop, ModelError

Optimizer = torch.optim.Optimizer
OPTIMIZERS: dict[str, Callable[[list[dict[str, Any]]], Optimizer]] = {
    "sgd": lambda groups: torch.optim.SGD(groups, lr=0.05, momentum=0.9, weight_decay=1e-3),
    "adam": lambda groups: torch.optim.Adam(groups, lr=1e-2, weight_decay=1e-3),
}
LD_SETTINGS: dict[str, Any] = dict(threshold=0.4, patience=1, warmup_epochs=0, keep_last=0,
                                   check_every=3, window=2, trend_tolerance=10.0,
                                   settle="tolerance")


def _make(kind: str) -> tuple[Net, Optimizer, LearnDrop]:
    """A network whose optimizer has two groups in an order of its own, a parameter the user
    froze (still in the optimizer) and one that is not in the optimizer at all."""
    torch.manual_seed(0)
    model = Net()
    model.stem[1].weight.requires_grad_(False)  # frozen by the user
    left_out = model.block3.bn.bias  # never given to the optimizer
    head = list(model.head.parameters())
    rest = [p for p in model.parameters()
            if p is not left_out and all(p is not q for q in head)]
    groups = [{"params": head + rest[::2]}, {"params": rest[1::2], "lr": 0.02}]
    opt = OPTIMIZERS[kind](groups)
    ld = LearnDrop(model, opt, example_input=torch.randn(2, 3, 8, 8), **LD_SETTINGS)
    return model, opt, ld


def _layout(opt: Optimizer, model: nn.Module) -> list[list[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return [[names[id(p)] for p in g["params"]] for g in opt.param_groups]


def _step(model: nn.Module, opt: Optimizer, ld: LearnDrop, step: int) -> None:
    x, y, ids = batch(step, 8)
    loss = nn.functional.cross_entropy(ld.model(x, sample_ids=ids), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    ld.step()
    if (step + 1) % 4 == 0:
        ld.end_epoch()


def _act(ld: LearnDrop, action: str, name: str) -> None:
    try:
        getattr(ld, action)(name)
    except ConfigError:  # dropping a pinned unit: refused, the same way in both runs
        pass


def _plan(seed: int, steps: int) -> dict[int, list[tuple[str, str]]]:
    rng = random.Random(seed)
    names = ["stem", "block1", "block2", "block3"]
    first = rng.choice(names[1:])  # every sequence restores one unit before the save
    plan: dict[int, list[tuple[str, str]]] = {1: [("drop", first)], 2: [("pin", first)]}
    for s in range(3, steps):
        if rng.random() < 0.5:
            plan[s] = [(rng.choice(["drop", "drop", "restore", "pin", "unpin"]),
                        rng.choice(names)) for _ in range(rng.randint(1, 2))]
    return plan


def _save(model: nn.Module, opt: Optimizer, ld: LearnDrop) -> dict[str, Any]:
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                "learndrop": ld.state_dict()}, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _by_name(opt: Optimizer, model: nn.Module) -> dict[str, dict[str, Any]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: s for p, s in opt.state.items()}


def _assert_same_state(a: tuple[Net, Optimizer, LearnDrop],
                       b: tuple[Net, Optimizer, LearnDrop]) -> None:
    (ma, oa, la), (mb, ob, lb) = a, b
    for (na, pa), (nb, pb) in zip(ma.state_dict().items(), mb.state_dict().items()):
        assert na == nb and torch.equal(pa, pb), f"{na} differs"
    assert _layout(oa, ma) == _layout(ob, mb)
    sa, sb = _by_name(oa, ma), _by_name(ob, mb)
    assert sa.keys() == sb.keys()
    for name in sa:
        for key in sa[name]:
            assert torch.equal(torch.as_tensor(sa[name][key]), torch.as_tensor(sb[name][key])), (
                f"optimizer state {key} of {name} differs")
    assert [g["lr"] for g in oa.param_groups] == [g["lr"] for g in ob.param_groups]
    assert la.dropped == lb.dropped and la.scores == lb.scores
    assert [la.is_pinned(u.name) for u in la.units] == [lb.is_pinned(u.name) for u in lb.units]
    assert [p.requires_grad for p in ma.parameters()] == [p.requires_grad for p in mb.parameters()]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("seed", range(4))
def test_resume_after_any_drops_pins_and_restores_is_bit_identical(kind: str, seed: int) -> None:
    steps = 24
    plan = _plan(seed, steps)
    stop = random.Random(seed + 100).randint(4, steps - 4)

    full = _make(kind)
    saved: dict[str, Any] | None = None
    for s in range(steps):
        for action, name in plan.get(s, []):
            _act(full[2], action, name)
        if s == stop:
            saved = _save(*full)
        _step(*full, s)
    assert saved is not None

    model, opt, ld = _make(kind)
    model.load_state_dict(saved["model"])
    ld.load_state_dict(saved["learndrop"])
    opt.load_state_dict(saved["optimizer"])  # by position: the groups must match again
    for s in range(stop, steps):
        if s != stop:  # the actions at the stop step came before the save
            for action, name in plan.get(s, []):
                _act(ld, action, name)
        _step(model, opt, ld, s)
    _assert_same_state(full, (model, opt, ld))


def test_restore_puts_each_parameter_back_in_its_group_and_position() -> None:
    for kind in OPTIMIZERS:
        model, opt, ld = _make(kind)
        before = _layout(opt, model)
        for s in range(3):
            _step(model, opt, ld, s)
        ld.drop("stem")
        ld.drop("block1")
        ld.drop("block3")
        assert all(not n.startswith(("stem.", "block1.", "block3."))
                   for g in _layout(opt, model) for n in g)
        ld.restore("block1")
        ld.pin("stem")  # pinning a dropped unit restores it
        ld.restore("block3")
        assert _layout(opt, model) == before


def test_pin_never_unfreezes_what_the_user_froze_nor_adds_to_the_optimizer() -> None:
    model, opt, ld = _make("sgd")
    frozen, left_out = model.stem[1].weight, model.block3.bn.bias
    ld.drop("stem")
    ld.drop("block1")
    ld.drop("block2")
    ld.drop("block3")
    assert not frozen.requires_grad and not left_out.requires_grad
    ld.pin("stem")
    ld.restore("block3")
    assert not frozen.requires_grad, "a parameter the user froze was unfrozen"
    assert model.stem[0].weight.requires_grad
    assert left_out.requires_grad  # it trained before the drop (outside the optimizer)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(left_out) not in in_opt, "a parameter the optimizer never had was added to it"
    assert id(frozen) in in_opt  # it was there before: it is back


def test_resume_with_an_optimizer_built_otherwise_is_refused() -> None:
    model, opt, ld = _make("sgd")
    ld.drop("stem")
    state = ld.state_dict()
    torch.manual_seed(0)
    model2 = Net()
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.05)  # one group, model order
    ld2 = LearnDrop(model2, opt2, **LD_SETTINGS)
    with pytest.raises(ModelError, match="optimizer does not match"):
        ld2.load_state_dict(state)


def test_loading_a_state_into_a_learndrop_with_drops_starts_from_the_full_layout() -> None:
    model, opt, ld = _make("adam")
    before = _layout(opt, model)
    ld.drop("block2")
    state = ld.state_dict()
    ld.drop("stem")
    ld.load_state_dict(state)
    assert ld.dropped == ["block2"]
    assert _layout(opt, model) == [[n for n in g if not n.startswith("block2.")] for g in before]


def _flat_state(state: dict[str, Any], version: int) -> dict[str, Any]:
    """The same state as versions 1 and 2 wrote it: one flat dict (version 1 without the
    optimizer slots), the first optimizer group's learning rate sum only."""
    scoring, progress = state["scoring"], state["progress"]
    flat = {"version": version, "units": state["units"], "mode": state["mode"],
            "dropped": state["drops"]["dropped"], "pinned": state["drops"]["pinned"],
            "scores": scoring["scores"], "snapshots": scoring["snapshots"],
            "gradients": scoring["gradients"], "check_count": scoring["check_count"],
            "lr_sum": scoring["lr_sums"][0] if scoring["lr_sums"] else 0.0,
            "lr_n": scoring["lr_steps"], "meter": state["accounting"],
            "ddp": state["ddp"], **progress}
    if version >= 2:
        flat["optimizer_slots"] = state["drops"]["optimizer_slots"]
    return flat


def test_a_state_in_parts_has_one_section_per_part() -> None:
    _, _, ld = _make("sgd")
    ld.drop("block1")
    state = ld.state_dict()
    assert state["version"] == 3
    assert {"drops", "scoring", "accounting", "progress", "ddp"} <= set(state)
    assert state["drops"]["dropped"][0][0] == "block1"


@pytest.mark.parametrize("version", [1, 2])
def test_a_flat_state_of_an_older_version_still_loads(version: int) -> None:
    model, opt, ld = _make("sgd")
    x = torch.randn(4, 3, 8, 8)
    for _ in range(3):
        opt.zero_grad()
        ld.model(x).sum().backward()
        opt.step()
        ld.step()
    ld.end_epoch()
    ld.drop("block1")
    state = _flat_state(ld.state_dict(), version)
    model2, opt2, ld2 = _make("sgd")
    ld2.load_state_dict(state)
    opt2.load_state_dict(opt.state_dict())
    assert ld2.dropped == ["block1"] and _layout(opt2, model2) == _layout(opt, model)
    assert ld2.step_count == 3 and ld2.check_count == ld.check_count
    assert ld2.score_states == ld.score_states


def test_a_state_saved_before_the_slots_were_recorded_still_loads() -> None:
    model, opt, ld = _make("sgd")
    ld.drop("block1")
    state = _flat_state(ld.state_dict(), 1)
    model2, opt2, ld2 = _make("sgd")
    ld2.load_state_dict(state)
    opt2.load_state_dict(opt.state_dict())
    assert ld2.dropped == ["block1"] and _layout(opt2, model2) == _layout(opt, model)
