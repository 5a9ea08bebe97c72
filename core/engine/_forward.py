"""The forward pass with dropped units: ``ld.model`` and the redirection of dropped units.

When the drop state changes (a drop, a restore, a pin; also once the units are measured),
each module of a dropped unit whose work changes gets a replacement ``forward``: an instance
attribute set then and removed when the unit trains again, never per call. The replacement
does the drop mode's work only while ``ld.model`` runs in the same thread (a thread-local
flag that ``ld.model``'s forward sets and resets); anywhere else (the complete model called
directly, from this thread or another one while ``ld.model`` runs) it calls the module's
own forward, so the complete model's outputs never change. What a dropped module does
inside ``ld.model``:

- in the dropped prefix (``freeze``): runs under ``torch.no_grad()``;
- ``skip``, a unit whose ``skippable`` is true: returns its input (the unit's work is
  bypassed); any other dropped unit is handled as in freeze;
- ``cache``: the cached part of the prefix returns its input, and its last module returns
  the cached output, when every sample of the batch is cached (see :mod:`._cache_mode`);
- a dropped unit after the prefix: nothing is redirected (its parameters are frozen, its
  input gradient still flows).

Because the replacements stay in place between drop events, ``torch.compile(ld.model)`` (or a
compiled model given to :class:`LearnDrop`) recompiles once per drop event, not per call.
In cache mode the cached part of the prefix runs outside the compiled graph.

A copy or pickle of the model made while units are dropped gets each replacement as the
module's plain forward: the copy is the complete model.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ._units import Unit, tensors_in

if TYPE_CHECKING:
    from ._cache_mode import CacheCall

__all__ = ["DropAwareModule", "Role", "Redirect", "CallPlan", "install_redirects",
           "remove_redirects", "output_difference", "relative_gap"]

_MISSING = object()


# per thread: ``owner``, the LearnDrop whose ld.model runs now (None outside), ``call``, its
# cache plan for the call, and ``cache``, the cache that plan is for (training or evaluation);
# all are set by every ld.model call before anything reads them
_active = threading.local()


class Role(Enum):
    """What a dropped module does inside ``ld.model``."""

    PREFIX = "prefix"  # in the dropped prefix: no autograd graph
    SKIP = "skip"  # bypassed: returns its input
    CACHED = "cached"  # in the cached part of the prefix, before its last module
    BOUNDARY = "boundary"  # the cached part's last module: its output is what is cached


def _class_forward(module: nn.Module) -> Callable[..., Any]:
    return type(module).forward.__get__(module)


def _same(value: Any) -> Any:
    return value


class Redirect:
    """The forward of one dropped module, installed while its unit is dropped."""

    def __init__(self, owner: object, unit: Unit, module: nn.Module, role: Role) -> None:
        self.owner = owner
        self.unit = unit
        self.module = module
        self.role = role
        self.previous = module.__dict__.get("forward", _MISSING)
        self.original: Callable[..., Any] = (_class_forward(module) if self.previous is _MISSING
                                             else self.previous)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if getattr(_active, "owner", None) is not self.owner:
            return self.original(*args, **kwargs)  # not inside ld.model: the complete model
        role = self.role
        if role is Role.SKIP and args and torch.is_tensor(args[0]):
            return args[0]
        if role is Role.CACHED or role is Role.BOUNDARY:
            return _cached_forward(self, args, kwargs)
        return _frozen(self.original, args, kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        """A copy or pickle gets the module's own forward back: the complete model."""
        if self.previous is _MISSING:
            return (_class_forward, (self.module,))
        return (_same, (self.previous,))


def _frozen(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    if any(torch.is_tensor(a) and a.requires_grad for a in args):
        return fn(*args, **kwargs)  # an input that needs its gradient (rare in a prefix)
    with torch.no_grad():
        return fn(*args, **kwargs)


@torch.compiler.disable
def _cached_forward(r: Redirect, args: tuple, kwargs: dict) -> Any:
    call: CacheCall | None = getattr(_active, "call", None)
    if call is None:  # the cache is not used for this call: as in freeze
        return _frozen(r.original, args, kwargs)
    modes = _active.cache  # the training cache, or the evaluation one
    if modes.disabled_reason:  # turned off during this forward
        return _frozen(r.original, args, kwargs)
    if r.role is Role.BOUNDARY:
        if _active.boundary_seen:
            modes.refuse(
                f"cache mode: the model calls the cached unit '{r.unit.name}' more than once "
                f"in one forward (a shared block), so its output cannot be read from a "
                f"cache; the dropped prefix runs frozen, as in freeze mode, for the rest of "
                f"the run")
            return _frozen(r.original, args, kwargs)
        _active.boundary_seen = True
    if call.check:  # computed in full, the boundary as cached (the whole-output check)
        out = _frozen(r.original, args, kwargs)
        if call.unrounded or r.role is not Role.BOUNDARY or not torch.is_tensor(out):
            return out
        return modes.peek(call)
    if call.hit:
        if r.role is Role.BOUNDARY:
            return modes.read(call)
        # a cached module's work is skipped: it hands on a copy of its input, never the
        # caller's tensor, which an in-place operation after it would otherwise change
        return args[0].clone() if torch.is_tensor(args[0]) else args[0]
    out = _frozen(r.original, args, kwargs)
    if r.role is Role.BOUNDARY and torch.is_tensor(out):
        out = modes.store(call, out)
    return out


# ---- whole-output verification ------------------------------------------------------------
#: how far the output served from the cache may be from the computed one: both read the same
#: cached boundary, so only kernels that are not bit-reproducible (some GPU ones) differ
OUT_RTOL = 1e-3
OUT_ATOL = 1e-4


def _quiet_pass(model: nn.Module, args: tuple, kwargs: dict, call: CacheCall) -> Any:
    """One forward without gradients under the cache plan ``call`` whose random draws and
    buffer updates (BatchNorm statistics) are undone; what it raises is returned."""
    buffers = list(model.buffers())
    saved = [b.detach().clone() for b in buffers]
    devices = sorted({t.device.index or 0 for t in [*buffers, *model.parameters()]
                      if t.device.type == "cuda"})
    _active.call, _active.boundary_seen = call, False
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            return model(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a forward that cannot run on the cache says so
        return exc
    finally:
        with torch.no_grad():
            for b, value in zip(buffers, saved):
                b.copy_(value)


def _check_whole_output(model: nn.Module, cache: Any, call: CacheCall, args: tuple,
                        kwargs: dict) -> None:
    """Before a batch is verified (so before any batch is served from the cache): the model's
    output served from the cache must be its output computed in full (the cached boundary
    read in both), else the cache is refused. Two passes without gradients that change
    nothing the run computes; their time is added to ``cache.check_time_s``."""
    t0 = time.perf_counter()
    served = _quiet_pass(model, args, kwargs,
                         dataclasses.replace(call, hit=True, fill=False, verify=False))
    computed = _quiet_pass(model, args, kwargs,
                           dataclasses.replace(call, hit=False, fill=False, verify=False,
                                               check=True))
    exact = None
    if getattr(cache, "rounds", False) and not isinstance(computed, Exception):
        exact = _quiet_pass(model, args, kwargs,
                            dataclasses.replace(call, hit=False, fill=False, verify=False,
                                                check=True, unrounded=True))
    cache.check_time_s += time.perf_counter() - t0
    if isinstance(computed, Exception) or cache.disabled_reason:
        return  # the computed pass fails as the model itself would, or a pass turned it off
    problem = (f"it fails ({_first_line(served)})" if isinstance(served, Exception)
               else output_difference(served, computed))
    if problem:
        cache.refuse(
            f"cache mode: the model's output with the dropped prefix read from the cache is "
            f"not its output computed in full ({problem}): its forward uses a cached unit's "
            f"output elsewhere than in the next unit (a long skip, a U-Net's encoder, a "
            f"second input); the dropped prefix runs frozen, as in freeze mode, for the rest "
            f"of the run")
    elif exact is not None and not isinstance(exact, Exception):
        # counted once the verification that follows finds the cache up to date
        cache.pending_rounding = relative_gap(computed, exact)


def relative_gap(value: Any, reference: Any) -> float:
    """The largest difference between two outputs of the model, relative to the largest
    magnitude of ``reference`` (0 when they agree exactly)."""
    gap = 0.0
    for x, y in zip(tensors_in(value), tensors_in(reference), strict=False):
        if x.shape != y.shape or not y.is_floating_point():
            continue
        diff = float((x.detach().float() - y.detach().float()).abs().amax()) if x.numel() else 0.0
        scale = float(y.detach().float().abs().amax()) if y.numel() else 0.0
        gap = max(gap, diff / max(scale, 1e-12))
    return gap


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no message'}"


def output_difference(served: Any, computed: Any) -> str:
    """'' when two outputs of the model agree (within :data:`OUT_RTOL` of the computed
    one's scale), else what differs."""
    a, b = tensors_in(served), tensors_in(computed)
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return "its outputs have other shapes"
    for x, y in zip(a, b):
        x, y = x.detach().float(), y.detach().float()
        scale = float(y.abs().amax()) if y.numel() else 0.0
        if not torch.allclose(x, y, rtol=OUT_RTOL, atol=OUT_ATOL * max(scale, 1.0)):
            return f"its output differs by up to {float((x - y).abs().amax()):.3g}"
    return ""


def _uninstall(m: nn.Module, r: Redirect) -> None:
    if m.__dict__.get("forward") is r:
        if r.previous is _MISSING:
            del m.__dict__["forward"]
        else:
            m.__dict__["forward"] = r.previous


def remove_redirects(redirects: dict[nn.Module, Redirect], keep: set[nn.Module]) -> None:
    """Take the replacement forward off every module not in ``keep``."""
    for m in [m for m in redirects if m not in keep]:
        _uninstall(m, redirects.pop(m))


def install_redirects(owner: object, redirects: dict[nn.Module, Redirect],
                      roles: dict[nn.Module, tuple[Unit, Role]]) -> None:
    """Make the installed replacements match ``roles``; an unchanged one stays as it is (so
    a compiled model's guards still hold for it)."""
    remove_redirects(redirects, set(roles))
    for m, (unit, role) in roles.items():
        r = redirects.get(m)
        if r is not None and r.role is role and m.__dict__.get("forward") is r:
            continue
        if r is not None:
            _uninstall(m, redirects.pop(m))
        r = Redirect(owner, unit, m, role)
        m.__dict__["forward"] = r
        redirects[m] = r


#: what one ``ld.model`` call runs: (the module to call, its cache plan, that plan's cache)
CallPlan = tuple[nn.Module, "CacheCall | None", Any]


@torch.compiler.disable
def _prepare(plan: Callable[..., CallPlan], model: nn.Module, owner: object, training: bool,
             args: tuple, kwargs: dict, sample_ids: Any) -> nn.Module:
    """The bookkeeping of one ``ld.model`` call, outside any compiled graph; before a
    verified batch, the whole-output check (:func:`_check_whole_output`)."""
    runner, call, cache = plan(training, args, kwargs, sample_ids)
    _active.call, _active.cache = call, cache
    _active.boundary_seen = False  # the cached output is one per forward
    if not hasattr(_active, "owner"):  # this thread's first call: a value a guard can read
        _active.owner = None
    if call is not None and call.verify:
        previous = _active.owner
        _active.owner = owner
        try:
            _check_whole_output(model, cache, call, args, kwargs)
        finally:
            _active.owner = previous
            _active.call, _active.boundary_seen = call, False
    return runner


class DropAwareModule(nn.Module):
    """``ld.model``: runs the model with dropped units handled per the drop mode.

    Holds the plain model as ``inner`` (so ``.to()``, ``.parameters()`` and the like reach
    it) but its ``state_dict`` has the model's own keys, without an ``inner.`` prefix, and
    ``load_state_dict`` takes them: the two load into each other. Attributes it lacks are
    looked up on the model (``ld.model.fc`` is ``model.fc``).
    """

    def __init__(self, owner: object, model: nn.Module, plan: Callable[..., CallPlan],
                 on_train: Callable[[bool], None]) -> None:
        super().__init__()
        self.inner = model
        # plain attributes, not submodules: the owner, what a call runs, what train() does
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_plan", plan)
        object.__setattr__(self, "_on_train", on_train)
        self._register_load_state_dict_pre_hook(_add_inner_prefix)

    def forward(self, *args: Any, sample_ids: torch.Tensor | None = None, **kwargs: Any) -> Any:
        outer = getattr(_active, "call", None), getattr(_active, "cache", None)
        runner = _prepare(self._plan, self.inner, self._owner, self.training, args, kwargs,
                          sample_ids)
        previous = _active.owner
        _active.owner = self._owner
        try:
            return runner(*args, **kwargs)
        finally:
            # the thread keeps no cache past the call: a thread-local that still held one
            # when a Qt worker thread ended would free its tensors while the thread's Python
            # state is torn down (a crash in PySide6)
            _active.owner = previous
            _active.call, _active.cache = outer

    def train(self, mode: bool = True) -> DropAwareModule:
        super().train(mode)
        self._on_train(mode)
        return self

    def state_dict(self, *args: Any, destination: Any = None, prefix: str = "",
                   keep_vars: bool = False) -> Any:
        return self.inner.state_dict(*args, destination=destination, prefix=prefix,
                                     keep_vars=keep_vars)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False
                        ) -> Any:
        return self.inner.load_state_dict(state_dict, strict=strict, assign=assign)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)


def _add_inner_prefix(state: dict[str, Any], prefix: str, local_metadata: dict[str, Any],
                      strict: bool, missing: list[str], unexpected: list[str],
                      errors: list[str]) -> None:
    """``ld.model`` loaded as part of a bigger module (``torch.compile(ld.model)``, say): its
    keys come without ``inner.``, as its ``state_dict`` wrote them."""
    inner = prefix + "inner."
    for key in [k for k in state if k.startswith(prefix) and not k.startswith(inner)]:
        state[inner + key[len(prefix):]] = state.pop(key)
