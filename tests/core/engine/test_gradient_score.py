"""``score="gradient"``: the change of each unit's gradient norm as the learning signal, next
to the default parameter change; the same score, trend and patience rules apply to it."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from engine_nets import DATA_X, DATA_Y, Net
from factories import tiny_flags
from learndrop.core import ConfigError, LearnDrop
from learndrop.core.engine import DropPolicy, GradientNorms

SETTINGS: dict[str, Any] = dict(score="gradient", threshold=1.0, patience=1, warmup_epochs=0,
                                keep_last=0, window=2, trend_tolerance=10.0, check_every=3,
                                settle="tolerance",
                                example_input=torch.randn(2, 3, 8, 8))


def _step(model: nn.Module, opt: torch.optim.Optimizer, ld: LearnDrop, s: int) -> None:
    b = slice((s % 2) * 16, (s % 2) * 16 + 16)
    loss = nn.functional.cross_entropy(ld.model(DATA_X[b]), DATA_Y[b])
    opt.zero_grad()
    loss.backward()
    opt.step()
    ld.step()


def _make(**kw: Any) -> tuple[Net, torch.optim.Optimizer, LearnDrop]:
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return model, opt, LearnDrop(model, opt, **{**SETTINGS, **kw})


def test_gradient_norms_give_the_relative_change_of_each_units_mean_norm() -> None:
    a = [nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(1))]
    b = [nn.Parameter(torch.zeros(3))]
    norms = GradientNorms()
    norms.track([(0, a), (1, b), (2, [])])  # a unit without parameters is not followed

    def grads(ga: list[list[float]], gb: list[float]) -> None:
        for p, g in zip(a, ga):
            p.grad = torch.tensor(g)
        b[0].grad = torch.tensor(gb)
        norms.add()

    grads([[3.0, 0.0], [4.0]], [0.0, 0.0, 2.0])  # unit norms 5 and 2
    grads([[0.0, 0.0], [1.0]], [0.0, 6.0, 0.0])  # 1 and 6: means 3 and 4
    assert norms.changes([0, 1, 2]) == [None, None, None]  # a first interval anchors
    grads([[0.0, 0.0], [6.0]], [1.0, 0.0, 0.0])  # 6 and 1
    grads([[0.0, 0.0], [math.inf]], [math.nan, 0.0, 0.0])  # skipped by the scaler
    changes = norms.changes([0, 1])
    assert changes == [pytest.approx(1.0), pytest.approx(0.75)]  # |6-3|/3, |1-4|/4
    assert norms.changes([0, 1]) == [None, None]  # no step since: nothing to compare


def test_gradient_score_is_computed_from_the_gradients_of_each_interval() -> None:
    model, opt, ld = _make(threshold=0.0)  # scores only: nothing drops
    units = [u for u in ld.units if not u.is_head]
    means: list[list[float]] = []
    sums = [0.0] * len(units)
    for s in range(9):  # three intervals of three steps
        b = slice((s % 2) * 16, (s % 2) * 16 + 16)
        loss = nn.functional.cross_entropy(ld.model(DATA_X[b]), DATA_Y[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        for i, u in enumerate(units):
            sums[i] += float(torch.cat([p.grad.reshape(-1) for p in u.parameters()]).norm())
        if s % 3 == 2:
            means.append([v / 3 for v in sums])
            sums = [0.0] * len(units)
        ld.step()
    assert ld.check_count == 3
    for i, u in enumerate(units):
        expected = abs(means[2][i] - means[1][i]) / means[1][i]
        assert ld.scorer.states[u.index].change == pytest.approx(expected, rel=1e-4)
        assert ld.scorer.states[u.index].updates == 2  # the first interval has no change yet
    assert ld.score_overhead > 0  # the per-step norms count as scoring time


def test_gradient_score_drops_by_the_same_rules_and_follows_the_units_left() -> None:
    model, opt, ld = _make(pinned=["block3"])
    for s in range(11):
        _step(model, opt, ld, s)
    assert ld.dropped == []  # checks 1-3: an anchor interval, the score's anchor, no trend
    _step(model, opt, ld, 11)
    assert ld.dropped == ["stem", "block1", "block2"]  # threshold 1: settled with a trend
    grads = ld.scorer.gradients
    assert grads is not None and grads._keys == [ld.unit("block3").index]
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()
              if n.split(".")[0] in ld.dropped}
    for s in range(12, 15):
        _step(model, opt, ld, s)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


def test_gradient_score_resumes_exactly_mid_interval() -> None:
    full = _make()
    for s in range(7):  # 7 steps: stopped inside the third interval
        _step(*full, s)
    buf = io.BytesIO()
    torch.save({"model": full[0].state_dict(), "optimizer": full[1].state_dict(),
                "learndrop": full[2].state_dict()}, buf)
    for s in range(7, 15):
        _step(*full, s)

    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    model, opt, ld = _make()
    model.load_state_dict(saved["model"])
    ld.load_state_dict(saved["learndrop"])
    opt.load_state_dict(saved["optimizer"])
    for s in range(7, 15):
        _step(model, opt, ld, s)
    assert ld.dropped == full[2].dropped and ld.scores == full[2].scores
    for (n, a), b in zip(full[0].state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), f"{n} differs"


def test_score_setting_is_checked_like_every_other() -> None:
    assert DropPolicy().score == "change"
    with pytest.raises(ConfigError, match="drop.score") as info:
        DropPolicy(score="loss").check()  # type: ignore[arg-type]
    assert "gradient" in str(info.value)
    torch.manual_seed(0)
    model = Net()
    with pytest.raises(ConfigError, match="drop.score"):
        LearnDrop(model, torch.optim.SGD(model.parameters(), lr=0.1), score="curvature")


def test_a_run_with_the_gradient_signal_from_the_command_line(run_cli: Any,
                                                               tmp_path: Path) -> None:
    code, out, err = run_cli(["train", "--score", "gradient",
                              *tiny_flags(**{"train.epochs": 5}), "--output-dir",
                              str(tmp_path / "runs"), "--store", str(tmp_path / "runs.db"),
                              "--json", "--quiet"])
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["dropped"]  # threshold 1 in the tiny run: units drop once they have a trend
    assert 0 < summary["score_overhead"] < 0.05
