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

import threading
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ._units import Unit

if TYPE_CHECKING:
    from ._cache_mode import CacheCall

__all__ = ["DropAwareModule", "Role", "Redirect", "CallPlan", "install_redirects",
           "remove_redirects"]

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
    if call.hit:
        return modes.read(call) if r.role is Role.BOUNDARY else args[0]
    out = _frozen(r.original, args, kwargs)
    if r.role is Role.BOUNDARY and torch.is_tensor(out):
        out = modes.store(call, out)
    return out


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
def _prepare(plan: Callable[..., CallPlan], training: bool, args: tuple, kwargs: dict,
             sample_ids: torch.Tensor | None) -> nn.Module:
    """The bookkeeping of one ``ld.model`` call, outside any compiled graph."""
    first = args[0] if args else next(iter(kwargs.values()), None)
    runner, call, cache = plan(training, first, sample_ids)
    _active.call, _active.cache = call, cache
    if not hasattr(_active, "owner"):  # this thread's first call: a value a guard can read
        _active.owner = None
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
        runner = _prepare(self._plan, self.training, args, kwargs, sample_ids)
        previous = _active.owner
        _active.owner = self._owner
        try:
            return runner(*args, **kwargs)
        finally:
            _active.owner = previous

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
