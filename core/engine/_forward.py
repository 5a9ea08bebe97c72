"""The forward pass with dropped units: ``ld.model`` and the redirection of dropped units.

Dropped units' forwards are redirected only while ``ld.model`` runs (an instance attribute
``forward`` set on each of their modules, removed afterwards), so copying, pickling or
calling the complete model directly never sees any patching. Per the drop mode a dropped
unit runs without autograd (freeze), returns its cached output (cache) or is bypassed (skip).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..events import call_hook
from ._cache import CacheSpillError
from ._units import Unit

if TYPE_CHECKING:
    from ._strategy import LearnDrop

__all__ = ["DropAwareModule", "drop_aware_forward"]

_MISSING = object()


@dataclass
class _ForwardContext:
    sample_ids: torch.Tensor | None
    cache_hit: bool
    cache_fill: bool
    verify: bool


class DropAwareModule(nn.Module):
    """``ld.model``: calls the wrapped model with dropped units handled per the drop mode."""

    def __init__(self, owner: LearnDrop, model: nn.Module) -> None:
        super().__init__()
        self.inner = model
        object.__setattr__(self, "_owner", owner)

    def forward(self, *args: Any, sample_ids: torch.Tensor | None = None, **kwargs: Any) -> Any:
        return drop_aware_forward(self._owner, self.inner, args, kwargs, sample_ids)

    def train(self, mode: bool = True) -> DropAwareModule:
        super().train(mode)
        self._owner._enforce_eval()
        return self

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)


def drop_aware_forward(ld: LearnDrop, inner: nn.Module, args: tuple, kwargs: dict,
                       sample_ids: torch.Tensor | None) -> Any:
    """Run ``inner`` with ``ld``'s dropped units redirected for the duration of the call."""
    if ld.meter is None:
        first = args[0] if args else next(iter(kwargs.values()))
        ld._measure(first.detach())
    if not ld.dropped:
        ld._last_cost = None
        return inner(*args, **kwargs)
    ld._enforce_eval()
    ctx = _context(ld, sample_ids, inner.training)
    if inner.training:
        ld._last_cost = ld._cost(cache_hit=ctx.cache_hit)
    patched: list[tuple[nn.Module, Any]] = []
    try:
        for name in ld.dropped:
            u = ld.unit(name)
            for m in u.modules:
                previous = m.__dict__.get("forward", _MISSING)
                m.forward = partial(_dropped_forward, ld, u, m, m.forward, ctx)
                patched.append((m, previous))
        return inner(*args, **kwargs)
    finally:
        for m, previous in reversed(patched):
            if previous is _MISSING:
                del m.__dict__["forward"]
            else:
                m.forward = previous


def _context(ld: LearnDrop, sample_ids: torch.Tensor | None, training: bool) -> _ForwardContext:
    use_cache = (ld.policy.mode == "cache" and training and sample_ids is not None
                 and ld.dropped_prefix > 0 and not ld._cache_disabled_reason)
    if not use_cache or sample_ids is None:
        return _ForwardContext(None, False, False, False)
    ids = sample_ids if sample_ids.device.type == "cpu" else sample_ids.cpu()
    ids = ids.long()
    hit = ld._cache.covers(ids)
    verify = hit and not ld._cache.verified
    return _ForwardContext(ids, hit and not verify, not hit, verify)


def _dropped_forward(ld: LearnDrop, u: Unit, m: nn.Module, original: Callable[..., Any],
                     ctx: _ForwardContext, *args: Any, **kwargs: Any) -> Any:
    if ld.policy.mode == "skip" and u.skippable:
        return args[0]
    prefix = ld.dropped_prefix
    in_prefix = u.index < prefix
    boundary = in_prefix and u.index == prefix - 1 and m is u.last_module
    if in_prefix and ctx.cache_hit:
        if boundary:
            assert ctx.sample_ids is not None
            return ld._cache.get(ctx.sample_ids, args[0].dtype if torch.is_tensor(
                args[0]) else torch.float32)
        return args[0]
    needs_grad = any(torch.is_tensor(a) and a.requires_grad for a in args)
    if in_prefix and not needs_grad:
        with torch.no_grad():
            out = original(*args, **kwargs)
    else:
        out = original(*args, **kwargs)
    if boundary and ctx.sample_ids is not None and torch.is_tensor(out):
        if ctx.verify:
            out = _verify_cache(ld, ctx.sample_ids, out)
        elif ctx.cache_fill:
            out = _fill_cache(ld, ctx.sample_ids, out)
    return out


def _fill_cache(ld: LearnDrop, sample_ids: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Cache the prefix's output; a cache that cannot get its memory or its spill file (a
    full disk) falls back to freeze, with a warning."""
    try:
        return ld._cache.put(sample_ids, out, ld.num_samples or 0)
    except CacheSpillError as exc:
        ld._cache_disabled_reason = (f"the activation cache does not fit: "
                                     f"{exc.strerror or exc}; using freeze instead")
        ld._cache.clear()
        call_hook(ld.callbacks, "on_warning", ld._cache_disabled_reason)
        return out


def _verify_cache(ld: LearnDrop, sample_ids: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The first cache hit is computed anyway and compared: a model whose forward does not
    run its units in sequence falls back to freeze, with a warning."""
    cached = ld._cache.get(sample_ids, out.dtype)
    if cached.shape == out.shape and torch.allclose(
            cached, out.to(torch.float16).to(out.dtype), rtol=1e-3, atol=1e-3):
        ld._cache.verified = True
    else:
        ld._cache_disabled_reason = ("cached activations differ from computed ones (does the "
                                     "model's forward run its units in sequence?); using "
                                     "freeze instead")
        ld._cache.clear()
        call_hook(ld.callbacks, "on_warning", ld._cache_disabled_reason)
    return out.to(torch.float16).to(out.dtype)
