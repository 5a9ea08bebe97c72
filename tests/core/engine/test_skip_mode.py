"""Skip mode bypasses only units whose ``skippable`` is true: residual blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine_nets import DATA_X, Block, ConvBnRelu, Net, batch
from learndrop.core import LearnDrop


def _ld(model: nn.Module) -> tuple[torch.optim.Optimizer, LearnDrop]:
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return opt, LearnDrop(model, opt, mode="skip", warmup_epochs=0, keep_last=0,
                          threshold=0.0, example_input=DATA_X[:2])


def _called_units(ld: LearnDrop, x: torch.Tensor) -> set[str]:
    """The units whose layers ran in one training forward of ``ld.model`` (hooks on the
    leaf layers: a bypassed unit's own module is still called, its forward is not)."""
    seen: set[str] = set()
    handles = [leaf.register_forward_pre_hook(lambda mod, args, name=u.name: seen.add(name))
               for u in ld.units for m in u.modules for leaf in m.modules()
               if next(leaf.children(), None) is None]
    try:
        ld.model.train()
        ld.model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def _residual(flag: bool) -> Block:
    b = Block(8)
    b.learndrop_residual = flag  # type: ignore[assignment]
    return b


def _plain(flag: bool) -> ConvBnRelu:
    b = ConvBnRelu(8)
    b.learndrop_residual = flag  # type: ignore[assignment]
    return b


@pytest.mark.parametrize("middle,skippable", [
    (None, True),  # a residual block
    (ConvBnRelu(8), False),  # conv-BN-ReLU with matching shapes: not residual
    (_residual(False), False),  # a residual block its author says must not be skipped
    (_plain(True), True),  # the author's word also goes the other way
])
def test_skip_mode_bypasses_only_skippable_units(middle: nn.Module | None,
                                                 skippable: bool) -> None:
    torch.manual_seed(0)
    model = Net(middle=middle)
    opt, ld = _ld(model)
    assert ld.unit("block2").skippable is skippable
    assert ld.unit("block1").skippable and not ld.unit("stem").skippable
    for name in ("stem", "block1", "block2", "block3"):
        ld.drop(name)
    x, y, _ = batch(0)
    ran = _called_units(ld, x)
    for u in ld.units:
        assert (u.name not in ran) == u.skippable, f"{u.name}: skippable={u.skippable}"
    # the output is the network with exactly the skippable units taken out
    with torch.no_grad():
        h = model.stem(x)
        for u in ("block1", "block2", "block3"):
            if not ld.unit(u).skippable:
                h = getattr(model, u)(h)
        expected = model.head(h)
        assert torch.allclose(ld.model(x), expected)
    loss = nn.functional.cross_entropy(ld.model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert model.head[2].weight.grad is not None


def test_a_plain_block_never_skipped_in_a_whole_run() -> None:
    torch.manual_seed(0)
    model = Net(middle=ConvBnRelu(8))
    opt, ld = _ld(model)
    calls: list[int] = []
    model.block2.conv.register_forward_hook(lambda m, i, o: calls.append(1))
    for s in range(6):
        if s == 2:
            for name in ("stem", "block1", "block2", "block3"):
                ld.drop(name)
        x, y, ids = batch(s)
        loss = nn.functional.cross_entropy(ld.model(x, sample_ids=ids), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ld.step()
    assert len(calls) == 6  # every step, dropped or not
    f = {u.name: u.forward_flops for u in ld.units}
    saved = ld.savings()["forward_flops_saved_now"]
    assert saved == pytest.approx((f["block1"] + f["block3"]) / ld.total_forward_flops)
