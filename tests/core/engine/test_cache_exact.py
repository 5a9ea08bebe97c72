"""Cache mode is exact or says no: the whole model's output served from the cache is checked
against the output computed in full before any cached batch is served (and at every
verification), and no module is handed the caller's tensor. Models whose forward reads a
cached unit's output elsewhere run frozen, with one warning saying why."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine_nets import Chain, Head, LongSkip, conv8, train_with_gaps
from learndrop.core import Callback, LearnDrop
from learndrop.core.engine import LearnDropWarning

X = torch.randn(32, 8, 8, 8, generator=torch.Generator().manual_seed(3))
Y = torch.randint(0, 4, (32,), generator=torch.Generator().manual_seed(4))
BATCH = 8


class InPlace(nn.Module):
    """In-place ReLUs in the parent's forward, between units."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.l1, self.l2, self.head = conv8(), conv8(), conv8(), Head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.stem(x), inplace=True)
        h = F.relu(self.l1(h), inplace=True)
        return self.head(self.l2(h))


class Shared(nn.Module):
    """One block called twice with the same weights."""

    def __init__(self) -> None:
        super().__init__()
        self.block, self.mid, self.last, self.head = conv8(), conv8(), conv8(), Head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.last(self.block(self.mid(self.block(x)))))


class UNet(nn.Module):
    """An encoder whose first stage's output the decoder reads again (a U-Net's skip)."""

    def __init__(self) -> None:
        super().__init__()
        self.e1 = conv8()
        self.e2 = nn.Sequential(nn.MaxPool2d(2), conv8())
        self.d1 = nn.Sequential(nn.Conv2d(16, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.head = Head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.e1(x)
        b = F.interpolate(self.e2(a), scale_factor=2.0)
        return self.head(self.d1(torch.cat([b, a], 1)))


class Warnings(Callback):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def on_warning(self, message: str) -> None:
        self.messages.append(message)


class Offset(Chain):
    """Chain whose second unit's output sits near 100 while the next unit's BatchNorm, over
    batches of 8, looks at its small deviations: float16 rounding of the cached boundary
    (steps of 1/16 at 100) moves the output by far more than float16's own precision."""

    def __init__(self) -> None:
        super().__init__()
        with torch.no_grad():
            self.l2[1].weight.fill_(0.01)  # BatchNorm's scale and shift: 100 + 0.01 z
            self.l2[1].bias.fill_(100.0)
        # a pointwise convolution: the constant 100 is removed by its BatchNorm exactly
        self.l3 = nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8))


def _train(make: Callable[[], nn.Module], drop: tuple[str, ...], epochs: int = 3,
           data: torch.Tensor = X, out_of: Callable[[Any], torch.Tensor] = lambda o: o,
           units: list[str] | None = None, **settings: Any
           ) -> tuple[LearnDrop, list[float], Warnings]:
    """Train in cache mode; at every step, ld.model's output must be the complete model's
    (called directly on the same batch, before the step) within float16 rounding."""
    torch.manual_seed(0)
    net = make()
    opt = torch.optim.SGD(net.parameters(), lr=0.02)
    seen = Warnings()
    ld = LearnDrop(net, opt, mode="cache", warmup_epochs=0, keep_last=0, threshold=0.0,
                   example_input=data[:2], num_samples=len(data), callbacks=[seen],
                   units=units, **settings)
    for name in drop:
        ld.drop(name)
    gaps = train_with_gaps(ld, net, opt, data, Y, epochs, batch_size=BATCH, out_of=out_of)
    return ld, gaps, seen


@pytest.mark.parametrize("make,drop,why", [
    (LongSkip, ("l1", "l2"), "not its output computed in full"),
    (UNet, ("e1", "e2"), "not its output computed in full"),
    (Shared, ("block", "mid"), "calls the cached unit 'block' more than once"),
])
def test_a_forward_that_reads_a_cached_output_elsewhere_runs_frozen(
        make: Callable[[], nn.Module], drop: tuple[str, ...], why: str) -> None:
    with pytest.warns(LearnDropWarning, match=why):
        ld, gaps, seen = _train(make, drop)
    assert max(gaps) < 1e-2, gaps  # never a wrong output (float16 rounding at most)
    assert why in ld.cache_disabled_reason
    assert sum("switched to freeze" in m or "runs frozen, as in freeze mode" in m
               for m in seen.messages) == 1  # one warning saying why, no misleading one


def test_in_place_operations_between_units_leave_the_callers_data_alone() -> None:
    data = X.clone()
    ld, gaps, _ = _train(InPlace, ("stem", "l1"), data=data)
    assert torch.equal(data, X)  # the data set is untouched
    assert max(gaps) < 1e-2 and not ld.cache_disabled_reason
    assert ld.caches.training.verifications >= 1


def test_a_chain_of_units_is_still_served_from_the_cache() -> None:
    calls = []
    ld, gaps, _ = _train(Chain, ("l1", "l2"))
    hook = ld.base_model.l1[0].register_forward_hook(lambda *_: calls.append(1))
    ld.model(X[:BATCH], sample_ids=torch.arange(BATCH))
    hook.remove()
    assert not ld.cache_disabled_reason and max(gaps) < 1e-2
    assert ld.savings()["cache_check_overhead"] > 0
    assert calls == []  # a hit: l1's convolution did not run


@pytest.mark.slow
def test_torchvision_lraspp_is_refused_not_crashed() -> None:
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    data = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(5))

    def make() -> nn.Module:
        return lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=2)

    torch.manual_seed(0)
    units = [u.name for u in LearnDrop(make()).units]
    with pytest.warns(LearnDropWarning):
        ld, gaps, seen = _train(make, tuple(units[:6]), epochs=2, data=data,
                                out_of=lambda o: o["out"])
    assert max(gaps) < 1e-2, gaps
    assert ld.cache_disabled_reason


def test_float16_rounding_that_the_model_amplifies_is_measured_and_said() -> None:
    with pytest.warns(LearnDropWarning, match="drop.cache_precision=full"):
        ld, gaps, seen = _train(Offset, ("l1", "l2"))
    assert not ld.cache_disabled_reason  # served, from the rounded values, and said so
    assert ld.caches.training.rounding_gap > 0.01 and max(gaps) > 0.01
    assert sum("cache_precision=full" in m for m in seen.messages) == 1


def test_full_precision_serves_outputs_exact_to_the_bit() -> None:
    calls = []
    ld, gaps, seen = _train(Offset, ("l1", "l2"), cache_precision="full")
    hook = ld.base_model.l1[0].register_forward_hook(lambda *_: calls.append(1))
    ld.model(X[:BATCH], sample_ids=torch.arange(BATCH))
    hook.remove()
    assert calls == [] and not ld.cache_disabled_reason  # served from the cache
    assert max(gaps) == 0.0 and ld.caches.training.rounding_gap == 0.0
    assert not seen.messages
