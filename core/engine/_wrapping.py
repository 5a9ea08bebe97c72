"""Wrappers around the model: ``torch.compile`` and ``DistributedDataParallel``.

Units are found on the plain model inside any wrapper (``_orig_mod`` of a compiled module,
``module`` of a DDP one), so their names never carry ``_orig_mod.`` or ``module.``; ``ld.model``
still runs the model as it was given. A compiled model needs nothing more: the drop state is
part of what its guards check, so it recompiles after a drop. DDP does: it registers the
parameters that need gradients when it is built and expects a gradient for each of them in
every step, so after each change of drop state the wrapper is rebuilt around the same model
(on every rank at the same step; policy drops are, as every rank sees the same parameters).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import ConfigError

__all__ = ["Wrap", "unwrap", "rewrapper"]

#: builds the module ``ld.model`` runs from the plain model (with its drop state applied)
Wrap = Callable[[nn.Module], nn.Module]


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside ``torch.compile`` and ``DistributedDataParallel`` wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None)  # torch.compile's OptimizedModule
        if isinstance(inner, nn.Module):
            model = inner
        elif isinstance(model, DistributedDataParallel):
            model = model.module
        else:
            return model


def _contains_ddp(model: nn.Module) -> bool:
    while True:
        if isinstance(model, DistributedDataParallel):
            return True
        inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return False
        model = inner


def _same_ddp(old: DistributedDataParallel) -> Wrap:
    """A new DDP with the settings ``old`` keeps as attributes."""
    settings = dict(device_ids=old.device_ids, output_device=old.output_device, dim=old.dim,
                    process_group=old.process_group,
                    bucket_cap_mb=old.bucket_bytes_cap / 2**20,
                    find_unused_parameters=old.find_unused_parameters,
                    gradient_as_bucket_view=old.gradient_as_bucket_view,
                    static_graph=old.static_graph)
    inner = old.module

    def wrap(_: nn.Module) -> nn.Module:
        return DistributedDataParallel(inner, **settings)  # type: ignore[arg-type]

    return wrap


def rewrapper(given: nn.Module, wrap: Wrap | None) -> Wrap | None:
    """How to rebuild what ``ld.model`` runs after a change of drop state (None: it never
    needs rebuilding)."""
    if wrap is not None:
        return wrap
    if isinstance(given, DistributedDataParallel):
        return _same_ddp(given)
    if _contains_ddp(given):
        raise ConfigError("a DistributedDataParallel inside torch.compile cannot be rebuilt "
                          "after a drop: pass the plain model and wrap=lambda m: "
                          "torch.compile(DistributedDataParallel(m, ...))")
    return None
