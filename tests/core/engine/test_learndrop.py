"""LearnDrop on tiny CPU models: exactness of drops, real skipping, order, accounting."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from learndrop.core import ConfigError, LearnDrop, ModelError


class CountingBlock(nn.Module):
    """A residual block that counts how often its own forward really runs."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(ch)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.relu(x + self.bn(self.conv(x)))


class TinyNet(nn.Module):
    def __init__(self, ch: int = 8, classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, ch, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(ch), nn.ReLU())
        self.block1 = CountingBlock(ch)
        self.block2 = CountingBlock(ch)
        self.block3 = CountingBlock(ch)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block3(self.block2(self.block1(self.stem(x)))))


def _setup(mode: str = "freeze", **kw: object) -> tuple[TinyNet, torch.optim.Optimizer,
                                                         LearnDrop]:
    torch.manual_seed(0)
    model = TinyNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    opts = dict(mode=mode, threshold=0.0, patience=1, warmup_epochs=0, keep_last=0,
                example_input=torch.randn(2, 3, 8, 8), num_samples=32)
    opts.update(kw)
    ld = LearnDrop(model, opt, **opts)  # type: ignore[arg-type]
    return model, opt, ld


DATA_X = torch.randn(32, 3, 8, 8, generator=torch.Generator().manual_seed(1))
DATA_Y = torch.randint(0, 4, (32,), generator=torch.Generator().manual_seed(2))


def _train(model: nn.Module, opt: torch.optim.Optimizer, ld: LearnDrop, steps: int) -> None:
    for s in range(steps):
        model.train()  # what many loops do every epoch: must not wake dropped BN layers
        b = slice((s % 2) * 16, (s % 2) * 16 + 16)
        ids = torch.arange(32)[b]
        loss = nn.functional.cross_entropy(ld.model(DATA_X[b], sample_ids=ids), DATA_Y[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        ld.step()


def test_units_found_in_order_with_head_last() -> None:
    _, _, ld = _setup()
    assert [u.name for u in ld.units] == ["stem", "block1", "block2", "block3", "head"]
    assert ld.units[-1].is_head
    assert [u.skippable for u in ld.units] == [False, True, True, True, False]
    assert sum(u.params for u in ld.units) == sum(p.numel() for p in ld.base_model.parameters())


@pytest.mark.parametrize("mode", ["freeze", "cache"])
def test_dropped_units_never_change_again(mode: str) -> None:
    model, opt, ld = _setup(mode)
    keys_before = {k: v.shape for k, v in model.state_dict().items()}
    _train(model, opt, ld, 3)
    ld.drop("stem")
    ld.drop("block1")
    frozen = {k: v.clone() for k, v in model.state_dict().items()
              if k.startswith(("stem.", "block1."))}
    assert any("running_mean" in k for k in frozen)
    live = model.block2.conv.weight.detach().clone()
    _train(model, opt, ld, 6)
    after = model.state_dict()
    for k, v in frozen.items():
        assert torch.equal(v, after[k]), f"{k} changed after its unit was dropped"
    assert not torch.equal(after["block2.conv.weight"], live)  # the rest still learns
    dropped_params = {id(p) for u in ld.units[:2] for p in u.parameters()}
    assert all(id(p) not in dropped_params for g in opt.param_groups for p in g["params"])
    assert all(id(p) not in dropped_params for p in opt.state)
    assert {k: v.shape for k, v in model.state_dict().items()} == keys_before
    assert ld.dropped == ["stem", "block1"]
    # the complete model, called directly or copied, is the full network
    plain = TinyNet()
    plain.load_state_dict(model.state_dict())
    for net in (model, plain):
        net.eval()
    with torch.no_grad():
        assert torch.equal(model(DATA_X[:4]), plain(DATA_X[:4]))
        assert torch.equal(copy.deepcopy(model)(DATA_X[:4]), plain(DATA_X[:4]))


def test_cache_mode_reuses_the_exact_prefix_output() -> None:
    model, opt, ld = _setup("cache")
    ld.drop("stem")
    ld.drop("block1")
    _train(model, opt, ld, 2)  # fills the cache for all 32 samples
    calls = model.block1.calls
    _train(model, opt, ld, 4)  # two epochs of two steps: one batch of each is verified
    # a verified batch runs the prefix three times: for the whole-output check (as cached,
    # then without float16's rounding), then verified
    assert model.block1.calls <= calls + 6, "cached prefix still ran"
    assert 3 * ld.caches.training.verifications == model.block1.calls - calls >= 3
    with torch.no_grad():
        model.eval()
        computed = model.block1(model.stem(DATA_X))
    cached = ld.caches.activations.get(torch.arange(32), torch.float32)
    assert torch.equal(cached, computed.to(torch.float16).float())
    assert ld.savings()["forward_flops_saved_now"] > 0


def test_cache_mode_refuses_order_any() -> None:
    with pytest.raises(ConfigError, match="order=prefix"):
        _setup("cache", order="any")


def test_skip_mode_really_skips_the_block() -> None:
    model, opt, ld = _setup("skip")
    _train(model, opt, ld, 2)
    ld.drop("stem")
    ld.drop("block1")
    before = model.block1.calls
    _train(model, opt, ld, 3)
    assert model.block1.calls == before, "a skipped block's forward was called"
    model.eval()
    with torch.no_grad():
        model(DATA_X[:2])  # the complete model still has the block
    assert model.block1.calls == before + 1
    assert ld.savings()["forward_flops_saved_now"] > 0


def test_freeze_prefix_runs_without_autograd_graph() -> None:
    model, opt, ld = _setup("freeze")
    ld.drop("stem")
    seen: list[bool] = []
    model.stem[0].register_forward_hook(lambda m, i, o: seen.append(o.requires_grad))
    ld.model.train()
    ld.model(DATA_X[:4])
    assert seen == [False]


def test_prefix_order_waits_for_the_earliest_unit() -> None:
    model, opt, ld = _setup("freeze", threshold=1.0, window=2, trend_tolerance=10.0,
                            settle="tolerance", check_every=1, pinned=["stem"])
    _train(model, opt, ld, 6)
    assert ld.dropped == [], "units behind a pinned earliest unit must not drop in prefix order"
    model2, opt2, ld2 = _setup("freeze", threshold=1.0, window=2, trend_tolerance=10.0,
                            settle="tolerance", check_every=1, pinned=["stem"], order="any")
    _train(model2, opt2, ld2, 6)
    assert "stem" not in ld2.dropped and ld2.dropped


def test_policy_drops_form_a_prefix_and_keep_last_protects() -> None:
    model, opt, ld = _setup("freeze", threshold=1.0, window=2, trend_tolerance=10.0,
                            settle="tolerance", check_every=1, keep_last=1)
    _train(model, opt, ld, 8)
    names = [u.name for u in ld.units]
    assert ld.dropped == names[:len(ld.dropped)]
    assert "block3" not in ld.dropped and "head" not in ld.dropped
    assert ld.dropped_prefix == len(ld.dropped)


def test_head_and_unknown_units_are_refused() -> None:
    _, _, ld = _setup()
    with pytest.raises(ConfigError, match="head"):
        ld.drop("head")
    with pytest.raises(ModelError, match="no unit named"):
        ld.drop("nope")


def _conv_flops(cin: int, cout: int, k: int, h: int, w: int) -> int:
    return 2 * cin * cout * k * k * h * w


def test_flops_match_an_independent_count() -> None:
    _, _, ld = _setup()
    ch, h = 8, 8
    expected = {"stem": _conv_flops(3, ch, 3, h, h), "block1": _conv_flops(ch, ch, 3, h, h),
                "block2": _conv_flops(ch, ch, 3, h, h), "block3": _conv_flops(ch, ch, 3, h, h),
                "head": 2 * ch * 4}
    assert {u.name: u.forward_flops for u in ld.units} == expected
    with FlopCounterMode(display=False) as fc:
        TinyNet()(torch.randn(1, 3, 8, 8))
    assert ld.total_forward_flops == fc.get_total_flops()


@pytest.mark.parametrize("mode,fwd_factor,train_factor", [
    ("freeze", 0.0, 2.0), ("cache", 1.0, 3.0), ("skip", None, None)])
def test_savings_follow_the_cost_model(mode: str, fwd_factor: float | None,
                                       train_factor: float | None) -> None:
    model, opt, ld = _setup(mode)
    _train(model, opt, ld, 2)
    ld.drop("stem")
    ld.drop("block1")
    _train(model, opt, ld, 4)
    total = ld.total_forward_flops
    f = {u.name: u.forward_flops for u in ld.units}
    s = ld.savings()
    if mode == "skip":  # stem frozen (prefix: F), block1 skipped (0)
        fwd = f["block1"] / total
        train = (2 * f["stem"] + 3 * f["block1"]) / (3 * total)
    else:
        fwd = fwd_factor * (f["stem"] + f["block1"]) / total  # type: ignore[operator]
        train = train_factor * (f["stem"] + f["block1"]) / (3 * total)  # type: ignore[operator]
    assert s["forward_flops_saved_now"] == pytest.approx(fwd)
    assert s["train_flops_saved_now"] == pytest.approx(train)
    assert 0 < s["train_flops_saved_total"] < s["train_flops_saved_now"]
    assert s["trainable_params_now"] == sum(u.params for u in ld.units[2:])


def test_non_prefix_drop_costs_input_gradient() -> None:
    model, opt, ld = _setup("freeze", order="any")
    ld.drop("block2")
    _train(model, opt, ld, 2)
    f = ld.units[2].forward_flops
    assert ld.savings()["train_flops_saved_now"] == pytest.approx(f / (3 * ld.total_forward_flops))


def test_state_dict_restores_drops_and_optimizer_groups() -> None:
    model, opt, ld = _setup("freeze", threshold=1.0, window=2, trend_tolerance=10.0,
                            settle="tolerance", check_every=1)
    _train(model, opt, ld, 5)
    assert ld.dropped
    state = ld.state_dict()
    opt_state = opt.state_dict()
    weights = copy.deepcopy(model.state_dict())
    torch.manual_seed(0)
    model2 = TinyNet()
    model2.load_state_dict(weights)
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    ld2 = LearnDrop(model2, opt2, mode="freeze", threshold=1.0, patience=1, warmup_epochs=0,
                    keep_last=0, window=2, trend_tolerance=10.0,
                            settle="tolerance", check_every=1)
    ld2.load_state_dict(state)
    opt2.load_state_dict(opt_state)  # only works when the groups match again
    assert ld2.dropped == ld.dropped
    assert ld2.scores == ld.scores
    assert all(not p.requires_grad for n in ld2.dropped for p in ld2.unit(n).parameters())


def test_scores_are_normalised_and_lr_invariant() -> None:
    _, _, ld = _setup("freeze", check_every=1, threshold=0.5)
    model, opt = ld.base_model, ld.optimizer
    assert opt is not None
    _train(model, opt, ld, 3)
    assert ld.scores and all(0.0 < v <= 1.0 for v in ld.scores.values())
    # the same updates at a 10x smaller learning rate give the same normalised change
    for lr in (0.05, 0.005):
        torch.manual_seed(0)
        m = TinyNet()
        o = torch.optim.SGD(m.parameters(), lr=lr)
        d = LearnDrop(m, o, check_every=1, example_input=torch.randn(2, 3, 8, 8))
        loss = nn.functional.cross_entropy(d.model(DATA_X), DATA_Y)
        o.zero_grad()
        loss.backward()
        o.step()
        d.step()
        if lr == 0.05:
            first = d.scorer.states[1].change
        else:
            assert d.scorer.states[1].change == pytest.approx(first, rel=1e-3)




def test_a_change_of_drop_state_reports_its_savings_at_once() -> None:
    from learndrop.core import Callback
    from learndrop.core.events import SavingsReport

    class Seen(Callback):
        def __init__(self) -> None:
            self.reports: list[SavingsReport] = []
            self.drops: list[int] = []

        def on_drop(self, event: object) -> None:
            self.drops.append(len(self.reports))

        def on_savings(self, event: SavingsReport) -> None:
            self.reports.append(event)

    seen = Seen()
    model, opt, ld = _setup("freeze", threshold=1.0, window=2, trend_tolerance=10.0,
                            settle="tolerance", check_every=1, callbacks=[seen])
    _train(model, opt, ld, 1)
    assert not ld.dropped and seen.reports == []  # nothing changed: nothing to report
    _train(model, opt, ld, 5)
    assert ld.dropped
    # one report per step that changed the drop state, after that step's drops, with the
    # new state's savings: what ld.savings() says at that moment
    assert len(seen.reports) == len({r.step for r in seen.reports}) >= 1
    assert seen.drops[0] == 0 and seen.reports[0].train_flops_saved_now > 0
    assert seen.reports[-1].train_flops_saved_now == pytest.approx(
        ld.savings()["train_flops_saved_now"])
    ld.restore(ld.dropped[-1])
    ld.end_epoch()  # a restore between steps is reported at the next step or epoch end
    assert seen.reports[-1].train_flops_saved_now < seen.reports[-2].train_flops_saved_now
