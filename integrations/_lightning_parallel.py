"""The Lightning callback's data-parallel side: which strategies it trains with, and the DDP
wrapper kept in step with the drops.

Lightning's DDP strategies (``"ddp"``, ``"ddp_spawn"``, ``"ddp_fork"``, ``"ddp_notebook"``, a
``DDPStrategy(...)``) wrap the whole LightningModule in one ``DistributedDataParallel``
(``trainer.strategy.model``). Its reducer registers the parameters that need a gradient when
it is built and waits for a gradient of each in every step; a dropped unit's parameters get
none. So the wrapper is built anew (the strategy's own ``configure_ddp``: the same device
ids, keyword arguments and communication hooks) at the first training batch of a fit and at
the first one after each change of drop state, on every rank at the same batch: dropped
parameters leave the buckets, with no ``find_unused_parameters`` traversal. The drops
themselves agree because rank 0 decides (``LearnDrop(..., ddp="outside")``).

FSDP and DeepSpeed shard the parameters, gradients and optimizer state between the ranks
by their own layout; they are refused.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy, ParallelStrategy
from torch import nn

from learndrop.core import ConfigError

__all__ = ["data_parallel", "DDPWrapper"]


def data_parallel(strategy: Any) -> bool:
    """Whether ``strategy`` trains data-parallel with DDP (True), or on one device (False);
    a :class:`~learndrop.core.ConfigError` line for any other multi-device strategy."""
    if isinstance(strategy, DDPStrategy) and not isinstance(strategy, DeepSpeedStrategy):
        return True
    if isinstance(strategy, ParallelStrategy):
        raise ConfigError(f"LearnDropCallback does not train with {type(strategy).__name__}, "
                          f"which shards the parameters its own way: use strategy='ddp' (or "
                          f"'ddp_spawn'), where dropped units leave the gradient all-reduce, "
                          f"or one device")
    return False


def _trainable(module: nn.Module) -> tuple[str, ...]:
    """The names of the parameters a DDP wrapper of ``module`` registers: those that need a
    gradient, each once, less the ones DDP is told to ignore."""
    ignored = set(getattr(module, "_ddp_params_and_buffers_to_ignore", ()) or ())
    return tuple(name for name, p in module.named_parameters()
                 if p.requires_grad and name not in ignored)


class DDPWrapper:
    """Keeps ``trainer.strategy.model`` (Lightning's DDP wrapper around ``module``) in step
    with the parameters that train."""

    def __init__(self, strategy: DDPStrategy, module: pl.LightningModule) -> None:
        self.strategy = strategy
        self.module = module
        self.registered: tuple[str, ...] | None = None  # what the wrapper built last holds
        self.rebuilds = 0
        self.bytes_per_step = 0

    def sync(self) -> None:
        """Build the wrapper anew if the parameters that train are not those it holds (the
        first call of a fit always does: who knows what changed since Lightning built it)."""
        now = _trainable(self.module)
        if now == self.registered:
            return
        self.strategy.model = self.module  # the old wrapper and its reducer go first
        if now:  # DDP refuses a module with nothing to train; the head always trains
            self.strategy.configure_ddp()
        self.registered = now
        self.rebuilds += 1
        params = dict(self.module.named_parameters())
        self.bytes_per_step = sum(params[n].numel() * params[n].element_size() for n in now)
