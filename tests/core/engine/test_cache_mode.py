"""Cache mode is safe by construction: the engine re-verifies the cache every epoch and falls
back to freeze, loudly, when it cannot be trusted; prefixes that do not run as one chain are
cached only where they do."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from torch import nn

from engine_nets import DATA_X, DATA_Y, Net
from engine_nets import plain_loop as _run
from learndrop.core import Callback, LearnDrop
from learndrop.core.engine import LearnDropWarning

BATCH = 8  # four steps per epoch of the 32 samples


class Warnings(Callback):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def on_warning(self, message: str) -> None:
        self.messages.append(message)


def _flip_some(epoch: int) -> torch.Tensor:
    """The data of one epoch: samples 1, 9, 17 and 25 (one in each batch) are flipped left to
    right in some epochs, each at random; every other sample is the same every epoch."""
    g = torch.Generator().manual_seed(100 + epoch)
    x = DATA_X.clone()
    for i in (1, 9, 17, 25):
        if bool(torch.rand((), generator=g) < 0.5):
            x[i] = x[i].flip(-1)
    return x


def _same(epoch: int) -> torch.Tensor:
    return DATA_X


def test_stale_activations_from_partial_augmentation_fall_back_to_freeze_loudly() -> None:
    seen = Warnings()
    with pytest.warns(LearnDropWarning, match="cached output differs") as caught:
        ld, losses = _run("cache", _flip_some, 10, callbacks=(seen,))
    assert ld.cache_disabled_reason
    assert ld.savings()["cache_disabled_reason"] == ld.cache_disabled_reason
    assert ld.caches.activations.location == "none"  # the stale activations are gone
    assert len([w for w in caught if issubclass(w.category, LearnDropWarning)]) == 1
    assert seen.messages == [ld.cache_disabled_reason]
    # from the fallback on, the run is a freeze run: the same losses as one from the start,
    # up to the float16 rounding of the cached epochs before it
    _, frozen = _run("freeze", _flip_some, 10)
    assert losses[-1] == pytest.approx(frozen[-1], rel=0.05)


def test_unchanging_data_keeps_the_cache_and_is_verified_every_epoch() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", LearnDropWarning)
        ld, _ = _run("cache", _same, 6)
    assert not ld.cache_disabled_reason
    # the first cached batch (epoch 2) and one batch in each later epoch
    assert ld.caches.training.verifications == 5
    assert ld.caches.activations.location == "host"


def test_verification_never_changes_what_the_network_computes() -> None:
    """A verified batch gets the cached values, exactly as a cache hit does."""
    _, verified = _run("cache", _same, 4)
    ld, _ = _run("cache", _same, 1)
    ld.caches.training.next_verify = 10**9  # never again
    _, hits = _run_continue(ld, 3)
    assert verified[4:] == hits


def _run_continue(ld: LearnDrop, epochs: int) -> tuple[LearnDrop, list[float]]:
    opt = ld.optimizer
    assert opt is not None
    losses = []
    for _ in range(epochs):
        for b in range(32 // BATCH):
            ids = torch.arange(b * BATCH, (b + 1) * BATCH)
            loss = nn.functional.cross_entropy(ld.model(DATA_X[ids], sample_ids=ids),
                                               DATA_Y[ids])
            opt.zero_grad()
            loss.backward()
            opt.step()
            ld.step()
            losses.append(loss.item())
        ld.end_epoch()
    return ld, losses


def test_without_sample_ids_cache_mode_warns_once_and_runs_frozen() -> None:
    seen = Warnings()
    with pytest.warns(LearnDropWarning, match="sample indices") as caught:
        ld, losses = _run("cache", _same, 3, with_ids=False, callbacks=(seen,))
    assert len([w for w in caught if "sample indices" in str(w.message)]) == 1
    assert len(seen.messages) == 1
    assert ld.caches.activations.location == "none"
    _, frozen = _run("freeze", _same, 3)
    assert losses == frozen


class PatchNet(nn.Module):
    """A tiny ViT-like network: patches reshaped into tokens and a class token concatenated
    between the stem and the first layer, which then run in sequence."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.layers = nn.Sequential(*[_TokenBlock(dim) for _ in range(3)])
        self.head = nn.Linear(dim, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.class_token.expand(t.shape[0], -1, -1), t], dim=1)
        return self.head(self.layers(t)[:, 0])

    def learndrop_units(self) -> list[tuple[str, list[str]]]:
        return [("stem", ["patch", "class_token"]),
                *[(f"layer{i}", [f"layers.{i}"]) for i in range(3)], ("head", ["head"])]


class _TokenBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.up = nn.Linear(dim, 4 * dim)
        self.down = nn.Linear(4 * dim, dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return t + self.down(torch.tanh(self.up(t)))


def test_a_prefix_with_a_reshape_between_units_is_cached_only_where_units_chain() -> None:
    seen = Warnings()
    with pytest.warns(LearnDropWarning, match="run frozen"):
        ld, losses = _run("cache", _same, 4, make=PatchNet, callbacks=(seen,),
                          drop=("stem", "layer0", "layer1"))
    # the stem runs frozen; the two layers (more FLOPs than the stem) are cached
    assert ld.drops.cached == range(1, 3)
    assert len(seen.messages) == 1 and "'stem'" in seen.messages[0]
    assert not ld.cache_disabled_reason and ld.caches.training.verifications >= 2
    _, frozen = _run("freeze", _same, 4, make=PatchNet, drop=("stem", "layer0", "layer1"))
    assert losses == pytest.approx(frozen, rel=1e-2)


def test_cache_mode_under_autocast() -> None:
    ld, losses = _run("cache", _same, 3, autocast=True)
    assert not ld.cache_disabled_reason and ld.caches.activations.location == "host"
    _, frozen = _run("freeze", _same, 3, autocast=True)
    assert losses == pytest.approx(frozen, rel=1e-2)


def test_a_spill_failure_falls_back_to_freeze(monkeypatch: pytest.MonkeyPatch) -> None:
    from learndrop.core.engine import _cache

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_cache.ActivationCache, "_allocate", full)
    seen = Warnings()
    with pytest.warns(LearnDropWarning, match="does not fit"):
        ld, losses = _run("cache", _same, 2, callbacks=(seen,))
    assert "No space left" in ld.cache_disabled_reason
    _, frozen = _run("freeze", _same, 2)
    assert losses == frozen


def _huge() -> nn.Module:
    net = Net()
    with torch.no_grad():
        net.stem[0].weight.mul_(1e6)  # the prefix's output is beyond float16's range
    return net


def test_a_prefix_output_beyond_float16_is_not_cached() -> None:
    with pytest.warns(LearnDropWarning, match="float16's range"):
        ld, losses = _run("cache", _same, 2, make=_huge)
    assert ld.caches.activations.location == "none" and ld.cache_disabled_reason
    _, frozen = _run("freeze", _same, 2, make=_huge)
    assert losses == frozen
    assert all(torch.isfinite(torch.tensor(losses)))


# ---- the evaluation cache ----------------------------------------------------------------------
class _Counted(nn.Module):
    """Counts how often the wrapped module really runs."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def _evaluate(ld: LearnDrop, x: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """An evaluation pass through ``ld.model`` with each sample's position as its id."""
    ld.model.eval()
    with torch.no_grad():
        out = torch.cat([ld.model(x[i:i + batch], sample_ids=torch.arange(i, i + batch))
                         for i in range(0, x.shape[0], batch)])
    ld.model.train()
    return out


def _eval_setup(budget_mb: int = 64) -> tuple[Net, LearnDrop, _Counted]:
    torch.manual_seed(0)
    net = Net()
    counted = _Counted(net.block1)
    net.block1 = counted  # type: ignore[assignment]
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    ld = LearnDrop(net, opt, mode="cache", warmup_epochs=0, keep_last=0, threshold=0.0,
                   example_input=DATA_X[:2], num_samples=32, eval_samples=32,
                   cache_budget_mb=budget_mb)
    for s in range(4):  # some training, so the batch norms' running statistics are not 0/1
        ids = torch.arange(s * 8, s * 8 + 8)
        loss = nn.functional.cross_entropy(ld.model(DATA_X[ids], sample_ids=ids), DATA_Y[ids])
        opt.zero_grad()
        loss.backward()
        opt.step()
        ld.step()
    ld.drop("stem")
    ld.drop("block1")
    return net, ld, counted


def _complete(net: Net, x: torch.Tensor) -> torch.Tensor:
    net.eval()
    with torch.no_grad():
        out = net(x)
    net.train()
    return out


def test_evaluation_reuses_the_prefix_output_and_equals_the_complete_model() -> None:
    net, ld, counted = _eval_setup()
    val = torch.randn(32, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    expected = _complete(net, val)
    before = counted.calls
    first = _evaluate(ld, val)  # computes and keeps the prefix output
    assert counted.calls - before == 4
    # reads it: only the first batch (sample 0) is recomputed, and once more by the check of
    # the whole output (computed in full against served from the cache)
    again = _evaluate(ld, val)
    assert counted.calls - before == 6
    assert torch.equal(first, expected) and torch.equal(again, expected)
    ld.drop("block2")  # the prefix changed: computed again once
    expected = _complete(net, val)
    before = counted.calls
    assert torch.equal(_evaluate(ld, val), expected)
    assert torch.equal(_evaluate(ld, val), expected)
    assert counted.calls - before == 6


def test_evaluation_data_that_changes_turns_the_evaluation_cache_off() -> None:
    net, ld, counted = _eval_setup()
    val = torch.randn(32, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    _evaluate(ld, val)
    other = val.flip(-1)  # random transforms on the evaluation set
    assert torch.equal(_evaluate(ld, other), _complete(net, other))
    assert "changed between evaluations" in ld.caches.evaluation.disabled_reason
    expected = _complete(net, val)
    before = counted.calls
    assert torch.equal(_evaluate(ld, val), expected)
    assert counted.calls - before == 4  # evaluated in full from then on


def test_an_evaluation_set_over_the_budget_is_evaluated_in_full() -> None:
    net, ld, counted = _eval_setup(budget_mb=1)
    val = torch.randn(2048, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    out = _evaluate(ld, val, batch=256)  # 2048 x 8 x 8 x 8 floats: 4 MiB, over 1 MiB
    assert torch.equal(out, _complete(net, val))
    assert "does not fit" in ld.caches.evaluation.disabled_reason
    assert ld.caches.evaluation.cache.nbytes == 0
