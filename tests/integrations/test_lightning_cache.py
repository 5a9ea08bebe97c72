"""Cache mode through Lightning: ``with_sample_ids`` gives each sample its index, the callback
hands the batch's indices to ``ld.model``, and the run is the plain loop's, exactly (the plain
loop's cache tests, run through a Trainer)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch")

from engine_nets import DATA_X, DATA_Y, Chain, LongSkip, Net, plain_loop  # noqa: E402
from learndrop.core import ConfigError, LearnDrop  # noqa: E402
from learndrop.core.engine import LearnDropWarning  # noqa: E402
from learndrop.integrations.lightning import (  # noqa: E402
    LearnDropCallback,
    SampleWithId,
    with_sample_ids,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers"),
    pytest.mark.filterwarnings("ignore:.*smaller than the logging interval"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec"),
]

BATCH = 8  # four steps an epoch of the 32 samples
X8 = torch.randn(32, 8, 8, 8, generator=torch.Generator().manual_seed(3))  # for Chain, LongSkip
SETTINGS: dict[str, Any] = dict(mode="cache", warmup_epochs=0, keep_last=0, threshold=0.0)


class Module(pl.LightningModule):
    """``make()``'s network, trained on batches of ``with_sample_ids`` data."""

    def __init__(self, make: Callable[[], nn.Module]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = make()
        self.losses: list[float] = []
        self.expected: torch.Tensor | None = None  # the complete network on this batch
        self.gaps: list[float] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch.sample
        out = self.net(x)
        if self.expected is not None:
            self.gaps.append(float((out.detach() - self.expected).abs().amax()
                                   / self.expected.abs().amax().clamp_min(1e-6)))
        loss = nn.functional.cross_entropy(out, y)
        self.losses.append(loss.item())
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


class DropFirst(pl.Callback):
    """Drops ``units`` by hand before the first step (the policy has its own tests)."""

    def __init__(self, cb: LearnDropCallback, units: tuple[str, ...]) -> None:
        self.cb, self.units = cb, units

    def on_train_start(self, trainer: pl.Trainer, m: pl.LightningModule) -> None:
        assert self.cb.learndrop is not None
        for name in self.units:
            self.cb.learndrop.drop(name)


class Reference(pl.Callback):
    """Before the callback's batch hook routes the network: the complete network's output on
    the batch, leaving the BatchNorm statistics as they were."""

    def on_train_batch_start(self, trainer: pl.Trainer, m: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        state = {k: v.clone() for k, v in m.net.state_dict().items()}
        with torch.no_grad():
            m.expected = m.net(batch.sample[0])
        m.net.load_state_dict(state)


def _fit(tmp_path: Path, make: Callable[[], nn.Module], data: torch.Tensor,
         drop: tuple[str, ...], epochs: int, reference: bool = False,
         **kw: Any) -> tuple[LearnDrop, Module]:
    module = Module(make)
    cb = LearnDropCallback(**SETTINGS, **kw)
    callbacks = [Reference()] if reference else []
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1,
                         callbacks=[*callbacks, cb, DropFirst(cb, drop)], logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, default_root_dir=str(tmp_path))
    loader = torch.utils.data.DataLoader(
        with_sample_ids(torch.utils.data.TensorDataset(data, DATA_Y)), batch_size=BATCH)
    trainer.fit(module, loader)
    assert cb.learndrop is not None
    return cb.learndrop, module


def _plain(make: Callable[[], nn.Module], data: torch.Tensor, drop: tuple[str, ...],
           epochs: int) -> tuple[LearnDrop, list[float]]:
    """The plain loop of the engine's cache tests, on ``data`` every epoch."""
    return plain_loop(SETTINGS["mode"], lambda _: data, epochs, make=make, drop=drop,
                      batch_size=BATCH)


def test_a_lightning_run_in_cache_mode_is_the_plain_loops_run(tmp_path: Path) -> None:
    plain, losses = _plain(Net, DATA_X, ("stem", "block1"), epochs=4)
    ld, module = _fit(tmp_path, Net, DATA_X, ("stem", "block1"), epochs=4)
    assert module.losses == losses  # the same numbers, step by step
    assert ld.num_samples == 32 and ld.steps_per_epoch == 4
    assert not ld.cache_disabled_reason and ld.caches.activations.location == "host"
    assert ld.caches.training.verifications == plain.caches.training.verifications >= 1
    assert ld.savings()["train_flops_saved_now"] == plain.savings()["train_flops_saved_now"]


@pytest.mark.parametrize("make,why", [
    (Chain, ""),  # served from the cache
    (LongSkip, "not its output computed in full"),  # l1's output is read again: frozen
])
def test_cache_mode_under_lightning_is_exact_or_says_no(tmp_path: Path,
                                                        make: Callable[[], nn.Module],
                                                        why: str) -> None:
    if why:
        with pytest.warns(LearnDropWarning, match=why):
            ld, module = _fit(tmp_path, make, X8, ("l1", "l2"), epochs=3, reference=True)
        assert why in ld.cache_disabled_reason
    else:
        ld, module = _fit(tmp_path, make, X8, ("l1", "l2"), epochs=3, reference=True)
        assert not ld.cache_disabled_reason and ld.caches.training.verifications >= 1
    assert len(module.gaps) == 12
    assert max(module.gaps) < 1e-2, module.gaps  # never a wrong output (float16 rounding)


def test_sample_ids_from_a_function_of_the_batch(tmp_path: Path) -> None:
    class Keyed(Module):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return super().training_step(SampleWithId((batch["x"], batch["y"]), None), 0)

    rows = [{"x": DATA_X[i], "y": DATA_Y[i], "index": i} for i in range(32)]
    module = Keyed(Net)
    cb = LearnDropCallback(**SETTINGS, sample_ids=lambda batch: batch["index"])
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", devices=1,
                         callbacks=[cb, DropFirst(cb, ("stem", "block1"))], logger=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, default_root_dir=str(tmp_path))
    trainer.fit(module, torch.utils.data.DataLoader(rows, batch_size=BATCH))  # type: ignore[arg-type]
    _, losses = _plain(Net, DATA_X, ("stem", "block1"), epochs=3)
    assert module.losses == losses


def test_cache_mode_without_sample_ids_is_one_clear_error(tmp_path: Path) -> None:
    module = Module(Net)
    cb = LearnDropCallback(**SETTINGS)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, callbacks=[cb],
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, default_root_dir=str(tmp_path))
    plain = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(DATA_X, DATA_Y),
                                        batch_size=BATCH)
    with pytest.raises(ConfigError, match=r"wrap the training set with with_sample_ids"):
        trainer.fit(module, plain)

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self) -> Any:
            return iter(zip(DATA_X, DATA_Y))

    with pytest.raises(ConfigError, match="map-style data set"):
        with_sample_ids(Stream())


def test_mode_auto_caches_with_sample_ids_and_freezes_without(tmp_path: Path) -> None:
    """The default mode: cache where each batch's sample indices are given (sample_ids=),
    freeze otherwise (no error asking for them)."""
    auto = {**SETTINGS, "mode": "auto"}
    rows = [{"x": DATA_X[i], "y": DATA_Y[i], "index": i} for i in range(32)]

    class Keyed(Module):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return super().training_step(SampleWithId((batch["x"], batch["y"]), None), 0)

    for cb, mode in ((LearnDropCallback(**auto), "freeze"),
                     (LearnDropCallback(**auto, sample_ids=lambda b: b["index"]), "cache")):
        trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, callbacks=[cb],
                             logger=False, enable_progress_bar=False,
                             enable_model_summary=False, enable_checkpointing=False,
                             default_root_dir=str(tmp_path))
        trainer.fit(Keyed(Net), torch.utils.data.DataLoader(rows, batch_size=BATCH))  # type: ignore[arg-type]
        assert cb.learndrop is not None and cb.learndrop.policy.mode == mode
