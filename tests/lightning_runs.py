"""Lightning data-parallel runs for the tests: a script, run as Lightning users run theirs.

    python tests/lightning_runs.py OUT --strategy ddp|ddp_spawn [--epochs N] [--resume CKPT]
        [--mode freeze|cache]

``Trainer(strategy=..., devices=2, accelerator="cpu")``: for ``ddp`` Lightning starts this
script once more as rank 1, for ``ddp_spawn`` it spawns two processes. Each rank writes what
the tests compare to ``OUT/rank{rank}.pt``; rank 0's checkpoint is ``OUT/last.ckpt``.

The run: a small CNN scored at every step, whose every unit settles from its third check on,
four steps an epoch per rank. Rank 0 alone pins block1 (requested before step 2, applied at
step 2), then unpins it and asks for block2 to drop (applied at step 5); rank 1's own request
(stem) is ignored. So stem drops at step 3 (the prefix stops at the pinned block1), and at
step 5 block2 (by hand), block1 and block3 (the policy); the head always trains. In cache
mode the training set comes through ``with_sample_ids``, each rank's share fixed
(``FixedShardSampler``, Lightning's own sampler turned off) so that its cache covers it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from learndrop.core import Callback as EngineCallback
from learndrop.core.training import FixedShardSampler
from learndrop.integrations.lightning import LearnDropCallback, SampleWithId, with_sample_ids

STEPS_PER_EPOCH = 4
BATCH = 8


def _block(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class Net(nn.Module):
    """Four convolution blocks and a head, one unit each (a class at module level: the
    ``ddp_spawn`` processes unpickle it)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.block1, self.block2, self.block3 = (
            _block(3, 8), _block(8, 8), _block(8, 8), _block(8, 8))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block3(self.block2(self.block1(self.stem(x)))))

    def learndrop_units(self) -> list[tuple[str, list[str]]]:
        return [(n, [n]) for n in ("stem", "block1", "block2", "block3", "head")]


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = Net()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch.sample if isinstance(batch, SampleWithId) else batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


class Cached(Tiny):
    """Trains on ``data`` with each sample's index, every rank on its own fixed share."""

    def __init__(self, data: torch.utils.data.Dataset) -> None:
        super().__init__()
        self.data = with_sample_ids(data)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        shard = FixedShardSampler(len(self.data), self.global_rank, self.trainer.world_size,
                                  seed=0)
        return torch.utils.data.DataLoader(self.data, batch_size=BATCH, sampler=shard)


class Record(pl.Callback):
    """What each rank saw: drops (unit, step, reason), at every step the bytes Lightning's
    DDP wrapper registers and whether it is a new wrapper, rank 0's and rank 1's requests."""

    def __init__(self, ld_cb: LearnDropCallback, out: Path) -> None:
        self.ld_cb, self.out = ld_cb, out
        self.drops: list[tuple[str, int, str]] = []
        self.ddp_bytes: list[tuple[int, int, bool]] = []
        self.warnings: list[str] = []
        self.restored: list[str] = []
        self._wrapper: Any = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        ld = self.ld_cb.learndrop
        assert ld is not None
        self.restored = list(ld.dropped)
        record = self

        class Events(EngineCallback):
            def on_drop(self, event: Any) -> None:
                record.drops.append((event.unit, event.step, event.reason))

            def on_warning(self, message: str) -> None:
                record.warnings.append(message)

        ld.add_callback(Events())

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        # runs after LearnDropCallback's hook, which rebuilt the wrapper if it had to
        ld, step = self.ld_cb.learndrop, trainer.global_step
        assert ld is not None
        if trainer.global_rank == 0 and step == 1:
            ld.request("pin", "block1")
        if trainer.global_rank == 0 and step == 4:
            ld.request("unpin", "block1")
            ld.request("drop", "block2")
        if trainer.global_rank == 1 and step == 4:
            ld.request("drop", "stem")  # ignored: only rank 0's requests apply
        model = trainer.strategy.model
        data = model._get_ddp_logging_data() if hasattr(model, "reducer") else {}
        self.ddp_bytes.append((step, int(data.get("total_parameter_size_bytes", 0)),
                               model is not self._wrapper))
        self._wrapper = model

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        ld = self.ld_cb.learndrop
        assert ld is not None
        torch.save({"drops": self.drops, "ddp_bytes": self.ddp_bytes,
                    "warnings": self.warnings, "restored": self.restored,
                    "dropped": list(ld.dropped), "steps": ld.step_count,
                    "world_size": trainer.world_size,
                    "savings": ld.savings(),
                    "verifications": ld.caches.training.verifications,
                    "logged": {k: float(v) for k, v in trainer.logged_metrics.items()},
                    "params": {k: v.detach().clone() for k, v in pl_module.named_parameters()}},
                   self.out / f"rank{trainer.global_rank}.pt")
        # in the training processes: with ddp_spawn the launching process has no drops
        trainer.save_checkpoint(self.out / "last.ckpt")  # every rank calls it, rank 0 writes


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--strategy", default="ddp")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--resume", default=None)
    p.add_argument("--mode", default="freeze")
    args = p.parse_args()
    out = Path(args.out)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(7)
    n = 2 * STEPS_PER_EPOCH * BATCH  # two ranks
    data = torch.utils.data.TensorDataset(torch.randn(n, 3, 8, 8, generator=g),
                                          torch.randint(0, 4, (n,), generator=g))
    cache = args.mode == "cache"
    cb = LearnDropCallback(mode=args.mode, threshold=1.0, patience=1, warmup_epochs=0, keep_last=0,
                           check_every=1, window=2, trend_tolerance=10.0,
                           settle="tolerance")
    trainer = pl.Trainer(
        strategy=args.strategy, accelerator="cpu", devices=2, max_epochs=args.epochs,
        callbacks=[cb, Record(cb, out)], logger=pl.loggers.CSVLogger(str(out)),
        log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, num_sanity_val_steps=0, default_root_dir=str(out),
        use_distributed_sampler=not cache)
    if cache:
        trainer.fit(Cached(data), ckpt_path=args.resume)
    else:
        trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=BATCH),
                    ckpt_path=args.resume)


if __name__ == "__main__":
    main()
