"""What ``ld.model`` runs: :class:`Runner` holds the module a call runs (the model itself, a
compiled model, or a wrapper such as DistributedDataParallel) and rebuilds a wrapper after
each change of drop state, so that a DDP reducer only waits for parameters that still
train.

Wrapped models: ``LearnDrop(torch.compile(model))`` finds the units of ``model`` (names without
``_orig_mod.``) and ``ld.model`` runs the compiled module, which recompiles once per drop
event; ``torch.compile(ld.model)`` does the same. ``LearnDrop(DistributedDataParallel(model))``
finds the units of ``model``, and after each change of drop state ``ld.model`` rebuilds the
DDP wrapper around it (same device ids, output device, process group, bucket size,
``find_unused_parameters``, ``gradient_as_bucket_view`` and ``static_graph``; other settings,
communication hooks among them, are not carried over: pass ``wrap=`` to build it yourself),
so the reducer only waits for parameters that still train. Every rank must see the same
drops at the same step: policy drops do (every rank has the same parameters), drops, pins
and restores by hand must be made on every rank. ``DistributedDataParallel(ld.model)``
cannot be rebuilt by the engine and fails at the first step after a drop.

``LearnDrop(model, optimizer, ddp=True)`` (the plain model) does all of that itself and more:
rank 0 decides every drop and its ``ld.request`` calls apply on every rank at the same step,
an evaluation runs without the wrapper, and ``savings()`` counts the gradient bytes
all-reduced per step before and after each drop (see :mod:`._ddp`).
"""

from __future__ import annotations

import torch
from torch import nn

from ._wrapping import Wrap, rewrapper

__all__ = ["Runner"]


class Runner:
    """The module ``ld.model`` runs for one plain ``model``.

    ``given`` is what the user passed (the plain model, or a compiled or DDP-wrapped one);
    ``wrap`` builds a wrapper from the plain model (called again after each change of drop
    state). ``data_parallel``: a data-parallel wrapper that a call which does not train
    (an evaluation) skips, and that is built at the next training call after a change, on
    every rank at the same step.
    """

    def __init__(self, model: nn.Module, given: nn.Module, wrap: Wrap | None,
                 data_parallel: bool = False) -> None:
        self.model = model
        self.data_parallel = data_parallel
        self._rewrap = rewrapper(given, wrap)
        self.module: nn.Module = wrap(model) if wrap is not None else given
        self._version = 0  # the drop state the module was built for

    def trains(self) -> bool:
        return self.model.training and torch.is_grad_enabled()

    def current(self) -> nn.Module:
        """What a call runs now: the module, except that a data-parallel model that does
        not train runs without its wrapper (an evaluation needs no gradient sync, and each
        rank evaluates its own share alone)."""
        if self.data_parallel and not self.trains():
            return self.model
        return self.module

    def sync(self, version: int, training: bool) -> None:
        """Rebuild the wrapper if the drop state changed since it was built (``version``)."""
        if self._rewrap is None or self._version == version:
            return
        if self.data_parallel and not self.trains():
            return  # built by the next training call, on every rank at the same step
        self.module = self._rewrap(self.model)
        self.module.train(training)
        self._version = version

    def release(self) -> None:
        """Let go of the wrapper; the next training call builds it again."""
        self.module = self.model
        self._version = -1

    def train(self, mode: bool) -> None:
        if self.module is not self.model:
            self.module.train(mode)
