"""Learn&Drop as a PyTorch Lightning callback: one line in ``Trainer(callbacks=[...])``.

::

    trainer = Trainer(callbacks=[LearnDropCallback(threshold=0.7, patience=2)])
    trainer.fit(module, train_loader, val_loader)
    print(trainer.callbacks[0].learndrop.dropped)

When fitting starts the callback builds a :class:`~learndrop.core.LearnDrop` for the module's
network with the optimizer from ``configure_optimizers`` (one optimizer, any number of
parameter groups, any learning-rate scheduler) and exposes it as ``.learndrop``. The network is
``module=`` (a sub-module's name, e.g. ``"backbone"``) or, by default, the LightningModule
itself, or its only child that has parameters (followed down through single-child wrappers),
so a torchvision ResNet held as ``self.net`` gets the units it gets on its own: one per
residual block, not one per stage.

What a dropped unit skips here, as in the plain API (``mode="freeze"``): its parameters are
frozen (no weight gradients), leave the optimizer (their state is freed, so neither weight
decay nor momentum touches them), its BatchNorm stays in eval (running statistics stop
moving; held across Lightning's own ``train()``/``eval()`` switches), and while the dropped
units form a prefix they run under ``no_grad``: no activations are kept for them and
backward stops before them. Their forward still runs. ``mode="skip"`` also bypasses dropped
residual blocks by their shortcut.

``mode="cache"`` needs each sample's index: wrap the training set with
:func:`with_sample_ids` (its batches are ``SampleWithId(batch, ids)``, so ``training_step``
reads ``batch.sample``), or pass ``sample_ids=`` a function that finds them in a batch. The
callback hands them to ``ld.model`` with the batch's network call; a training batch without
them is an error. The cache serves exactly what the plain loop's does.

How: for the length of each training batch, calls of the network go through ``ld.model``,
the engine's drop-aware wrapper (it measures FLOPs on its first call, redirects dropped
units' forwards and records each step's cost for the savings figures). The network's own
forward hooks therefore run twice per call during training batches; validation, testing and
prediction call the complete network as it is.

Logged through ``pl_module.log``: ``learndrop/units_dropped`` and
``learndrop/train_flops_saved_now`` (the fraction of the full network's training FLOPs saved
per step now) every training batch, and ``learndrop/score/<unit>`` at every score check. The
callback's state (drops, scores, snapshots) is part of Lightning checkpoints, so
``fit(..., ckpt_path=...)`` repeats the same drops and the optimizer state loads onto the
same parameter groups.

Several devices and machines: Lightning's DDP strategies (``strategy="ddp"``,
``"ddp_spawn"``, ...; gloo on CPUs, NCCL on GPUs, any number of nodes). Rank 0 decides every
drop and every rank drops the same units at the same step; Lightning's DDP wrapper is built
anew after each change of drop state, so dropped parameters leave the all-reduce buckets
without ``find_unused_parameters`` (see :mod:`._lightning_parallel`), and
``learndrop/allreduce_bytes_per_step`` is logged at every step. A checkpoint resumes with the
same drops on every rank. FSDP, DeepSpeed and other sharding strategies are refused. One
optimizer, automatic or manual optimization.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from learndrop.core import Callback as EngineCallback
from learndrop.core import ConfigError, DropPolicy, LearnDrop, ScoreCheck

from ._lightning_parallel import DDPWrapper, data_parallel
from ._sample_ids import SampleWithId, with_sample_ids

__all__ = ["LearnDropCallback", "with_sample_ids", "SampleWithId"]

#: LearnDrop's arguments that the callback fills in itself
_MANAGED = frozenset({"model", "optimizer", "example_input", "num_samples", "steps_per_epoch",
                      "total_steps", "cache_budget_mb", "cache_dir", "ddp", "wrap"})
_MISSING = object()


class LearnDropCallback(Callback):
    """Scores the network's units while Lightning trains it and drops the settled ones.

    Args:
        module: the network's name inside the LightningModule (``"backbone"``,
            ``"model.encoder"``); by default the LightningModule itself, or its only child
            with parameters.
        log_scores: log each unit's learning score at every check.
        sample_ids: for ``mode="cache"``, a function that returns a training batch's sample
            indices (by default they come from :func:`with_sample_ids`); with
            ``strategy="ddp_spawn"`` one defined at a module's top level, which the spawned
            processes can unpickle.
        **options: any keyword of :class:`~learndrop.core.LearnDrop` (``policy``,
            ``threshold``, ``patience``, ``warmup_epochs``, ``mode``, ``units``, ...).
    """

    def __init__(self, *, module: str | None = None, log_scores: bool = True,
                 sample_ids: Callable[[Any], Any] | None = None, **options: Any) -> None:
        accepted = [n for n in inspect.signature(LearnDrop).parameters
                    if n not in _MANAGED and n != "settings"] + list(DropPolicy.names())
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ConfigError(f"LearnDropCallback got unknown option(s) {', '.join(unknown)}: "
                              f"it accepts module, log_scores, sample_ids, "
                              f"{', '.join(accepted)}")
        if sample_ids is not None and not callable(sample_ids):
            raise ConfigError(f"LearnDropCallback(sample_ids=...) must be a function of a "
                              f"training batch, not {type(sample_ids).__name__}")
        self.module = module
        self.sample_ids = sample_ids
        self.log_scores = bool(log_scores)
        self.options = dict(options)
        self.learndrop: LearnDrop | None = None
        self._network: nn.Module | None = None
        self._route: _Route | None = None
        self._events = _Events()
        self._restored: dict[str, Any] | None = None
        self._seen_steps = 0
        self._ended_epoch = -1
        self._warned_unrouted = False
        self._ddp: DDPWrapper | None = None

    # ---- Lightning hooks ----------------------------------------------------------------------
    @property
    def state_key(self) -> str:
        return self._generate_state_key(module=self.module)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        data_parallel(trainer.strategy)  # refuses the strategies it cannot train with
        self._find_network(pl_module)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        network = self._find_network(pl_module)
        optimizers = trainer.optimizers
        if len(optimizers) > 1:
            raise ConfigError(f"LearnDropCallback works with one optimizer, but "
                              f"configure_optimizers returned {len(optimizers)}")
        # A second fit() with the same callback carries the drops over to the new optimizer.
        state = self._restored
        if self.learndrop is not None and network is self._network:
            state = state or self.learndrop.state_dict()
            for name in reversed(list(self.learndrop.dropped)):  # back through ``state``
                self.learndrop.restore(name)
        self._restored = None
        steps_per_epoch, total_steps = _step_counts(trainer)
        ddp = data_parallel(trainer.strategy)
        policy = self.options.get("policy") or DropPolicy()
        auto = self.options.get("mode", policy.mode) == "auto"  # cache given sample_ids=
        numbered = not auto or self.sample_ids is not None
        ld = LearnDrop(network, optimizers[0] if optimizers else None,
                       steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                       num_samples=_num_samples(trainer) if numbered else None,
                       ddp="outside" if ddp else None, **self.options)
        if state is not None:
            ld.load_state_dict(state)  # before Lightning loads the optimizer's state
            # Lightning warns about modules in eval mode when training starts; the restored
            # drops' modules go back to eval in on_train_start, before any training step.
            for name in ld.dropped:
                for m in ld.unit(name).modules:
                    m.train()
        ld.add_callback(self._events)
        self.learndrop, self._network = ld, network
        self._route = _Route(network, ld)
        self._ended_epoch = -1
        self._ddp = DDPWrapper(trainer.strategy, pl_module) if ddp else None  # type: ignore[arg-type]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._seen_steps = trainer.global_step
        self._keep_dropped_in_eval()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._keep_dropped_in_eval()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        self._keep_dropped_in_eval()
        if self._ddp is not None:
            self._ddp.sync()  # every rank at the same batch: the drops agree
        if self._route is not None:
            self._route.sample_ids = self._batch_ids(batch)
            self._route.install()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        ld, route = self.learndrop, self._route
        if ld is None or route is None:
            return
        route.remove()
        if route.calls == 0 and not self._warned_unrouted:
            self._warned_unrouted = True
            rank_zero_warn(f"LearnDropCallback: training_step did not call the network "
                           f"({type(route.network).__name__}), so dropped units still run "
                           f"their forward and no FLOPs are measured; pass module= naming "
                           f"the network that training_step calls")
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        while self._seen_steps < trainer.global_step:  # one engine step per optimizer step
            self._seen_steps += 1
            ld.step(loss if isinstance(loss, torch.Tensor) else None)
        if batch_idx + 1 >= trainer.num_training_batches:  # score before validation runs
            self._end_epoch(trainer)
        self._log(pl_module, on_step=True)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.learndrop is not None and self._ended_epoch != trainer.current_epoch:
            self._end_epoch(trainer)  # an epoch cut short (max_steps, an iterable loader)
            self._log(pl_module, on_step=False)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        if self._route is not None:
            self._route.remove()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._route is not None:
            self._route.remove()

    def state_dict(self) -> dict[str, Any]:
        if self.learndrop is not None:
            return {"learndrop": self.learndrop.state_dict()}
        return {"learndrop": self._restored} if self._restored is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning restores callbacks before it builds the optimizer; the drops are applied
        # in on_fit_start, before it loads the optimizer's state.
        self._restored = state_dict.get("learndrop")

    # ---- internals ----------------------------------------------------------------------------
    def _batch_ids(self, batch: Any) -> Any:
        """The batch's sample indices, where cache mode needs them."""
        if self.learndrop is None or self.learndrop.policy.mode != "cache":
            return None
        if self.sample_ids is not None:
            ids = self.sample_ids(batch)
        else:
            ids = batch.sample_id if isinstance(batch, SampleWithId) else None
        if ids is None:
            raise ConfigError("mode='cache' needs each sample's index with every training "
                              "batch: wrap the training set with with_sample_ids(dataset) "
                              "(then read batch.sample in training_step), or pass "
                              "LearnDropCallback(sample_ids=<function of a batch>)")
        return ids

    def _find_network(self, pl_module: pl.LightningModule) -> nn.Module:
        if self.module is not None:
            try:
                return pl_module.get_submodule(self.module)
            except AttributeError:
                children = ", ".join(n for n, _ in pl_module.named_children()) or "none"
                raise ConfigError(f"LearnDropCallback(module={self.module!r}): the "
                                  f"LightningModule has no such sub-module (its children: "
                                  f"{children})") from None
        network: nn.Module = pl_module
        while (not callable(getattr(network, "learndrop_units", None))
               and not any(True for _ in network.parameters(recurse=False))):
            owners = [m for m in network.children() if any(True for _ in m.parameters())]
            if len(owners) != 1:
                break
            network = owners[0]
        return network

    def _keep_dropped_in_eval(self) -> None:
        ld = self.learndrop
        if ld is None:
            return
        for name in ld.dropped:
            for m in ld.unit(name).modules:
                if m.training:
                    m.eval()

    def _end_epoch(self, trainer: pl.Trainer) -> None:
        assert self.learndrop is not None
        self._ended_epoch = trainer.current_epoch
        self.learndrop.end_epoch()
        self._keep_dropped_in_eval()

    def _log(self, pl_module: pl.LightningModule, *, on_step: bool) -> None:
        ld = self.learndrop
        assert ld is not None
        values = {"learndrop/units_dropped": float(len(ld.dropped)),
                  "learndrop/train_flops_saved_now":
                      float(ld.savings_report().train_flops_saved_now)}
        check = self._events.take_check()
        if self._ddp is not None:
            values["learndrop/allreduce_bytes_per_step"] = float(self._ddp.bytes_per_step)
        if check is not None and self.log_scores:
            for unit, score in zip(ld.units, check.scores):
                if score is not None:
                    values[f"learndrop/score/{unit.name}"] = float(score)
        pl_module.log_dict(values, on_step=on_step, on_epoch=not on_step, batch_size=1)


class _Events(EngineCallback):
    """Keeps the engine's latest score check until the callback logs it."""

    def __init__(self) -> None:
        self._check: ScoreCheck | None = None

    def on_scores(self, event: ScoreCheck) -> None:
        self._check = event

    def take_check(self) -> ScoreCheck | None:
        check, self._check = self._check, None
        return check


class _Route:
    """Sends calls of ``network`` through ``ld.model`` while installed.

    ``ld.model`` calls the network again; that inner call runs the network's own forward
    (with the engine's redirects of dropped units in place). The redirect is one function
    object for the whole fit, so a compiled graph sees the same one every batch.
    """

    def __init__(self, network: nn.Module, ld: LearnDrop) -> None:
        self.network = network
        self.ld = ld
        self.calls = 0
        self.sample_ids: Any = None  # this batch's, for cache mode
        self._inside = False
        self._saved: Any = _MISSING
        self._own: Any = None
        self._installed = False

        def forward(*args: Any, **kwargs: Any) -> Any:
            if self._inside:
                return self._own(*args, **kwargs)
            self._inside = True
            self.calls += 1
            try:
                if self.sample_ids is not None and "sample_ids" not in kwargs:
                    return self.ld.model(*args, sample_ids=self.sample_ids, **kwargs)
                return self.ld.model(*args, **kwargs)
            finally:
                self._inside = False

        self._forward = forward

    def install(self) -> None:
        if self._installed:
            return
        net = self.network
        self._saved = net.__dict__.get("forward", _MISSING)
        self._own = net.forward
        net.forward = self._forward  # type: ignore[method-assign]
        self._installed = True

    def remove(self) -> None:
        if not self._installed:
            return
        if self._saved is _MISSING:
            del self.network.__dict__["forward"]
        else:
            self.network.forward = self._saved  # type: ignore[method-assign]
        self._saved, self._own, self._installed = _MISSING, None, False


def _num_samples(trainer: pl.Trainer) -> int | None:
    """The training set's size (what sample indices run up to), where it has one."""
    dataset = getattr(trainer.train_dataloader, "dataset", None)
    try:
        return len(dataset)  # type: ignore[arg-type]
    except TypeError:
        return None


def _step_counts(trainer: pl.Trainer) -> tuple[int | None, int | None]:
    """Optimizer steps per epoch and in all, where Lightning knows them."""
    total = trainer.estimated_stepping_batches  # sets up the training data if needed
    batches = trainer.num_training_batches
    per_epoch = None
    if isinstance(batches, int) or (isinstance(batches, float) and math.isfinite(batches)):
        per_epoch = max(math.ceil(int(batches) / max(trainer.accumulate_grad_batches, 1)), 1)
    total_steps = int(total) if math.isfinite(total) else None
    return per_epoch, total_steps
