"""Units: the groups of modules (and parameters) that are scored and dropped together.

Units are found from the model's structure (see :mod:`._discovery`): a stem, one unit per
block (a residual block, an inverted residual, a dense layer, a transformer encoder layer...),
and the head; a VGG gets one unit per conv+BN+ReLU group. A model may also say for itself
with a ``learndrop_units()`` method, and a user may give an explicit list. A unit may own
parameters directly (a ViT's class token and position embedding belong to its stem).

Each unit knows its parameter count and its forward FLOPs per sample, measured once with
:class:`torch.utils.flop_counter.FlopCounterMode` (2 FLOPs per multiply-accumulate; BatchNorm,
activations and pooling are not counted) on a training-mode forward, the way it runs while
training; measuring changes no weight, buffer, mode flag or random state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ModelError, first_line
from ..events import UnitInfo
from ._discovery import Spec, spec_for, unwrap
from ._residual import is_residual

__all__ = ["Unit", "unit_infos", "discover_units", "measure_units", "structural_units",
           "tensors_in", "idle_message"]

_COMPILED_PREFIX = "_orig_mod."


@dataclass(eq=False)
class Unit:
    """One droppable group of modules and parameters. ``params`` is its parameter count.

    ``module_names``/``modules``: the modules it holds whole; ``param_names``/``own_params``:
    parameters it holds directly (owned by a module outside every unit, such as a class token).
    After :func:`measure_units`: ``forward_flops`` per sample, ``first_module``/``last_module``
    in call order, ``skippable`` (a residual block whose output has its input's shape) and
    ``idle_modules``: its modules with parameters that did not run on the example input (a
    branch not taken), whose FLOPs therefore count 0; ``feeds_next``: its modules run as one
    chain (each gets the previous one's output) and its output is exactly the next unit's
    input, so a dropped prefix ending here may be replaced by its cached output. False where a
    forward reshapes, concatenates or adds between units (a ViT's class token, DenseNet's
    concatenations) and for the head.
    """

    index: int
    name: str
    module_names: tuple[str, ...]
    modules: tuple[nn.Module, ...]
    is_head: bool = False
    params: int = 0
    forward_flops: int = 0
    skippable: bool = False
    first_module: nn.Module | None = field(default=None, repr=False)
    last_module: nn.Module | None = field(default=None, repr=False)
    param_names: tuple[str, ...] = ()
    own_params: tuple[nn.Parameter, ...] = field(default=(), repr=False)
    feeds_next: bool = False
    idle_modules: tuple[str, ...] = ()  # modules with parameters that did not run when measured

    def parameters(self) -> list[nn.Parameter]:
        seen: set[int] = set()
        out: list[nn.Parameter] = []
        for p in (*self.own_params, *(q for m in self.modules for q in m.parameters())):
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
        return out

    def buffers(self) -> list[torch.Tensor]:
        return [b for m in self.modules for b in m.buffers()]


def _parse(names: list[str] | tuple[str, ...]) -> Spec:
    spec: Spec = []
    for entry in names:
        label, _, body = entry.rpartition("=")
        parts = [m.strip().removeprefix(_COMPILED_PREFIX) for m in body.split("+") if m.strip()]
        spec.append((label.strip() or body.strip(), parts))
    return spec


def discover_units(model: nn.Module, names: list[str] | tuple[str, ...] | None = None
                   ) -> list[Unit]:
    """Find the units of ``model``, ordered input to output; the last one is the head.

    ``names``: explicit units, each a module (or parameter) name or several joined with ``+``
    (for example ``"conv1+bn1"``); an entry may be named with ``name=``, as in
    ``"stem=conv1+bn1+relu"``. Without it the model's own ``learndrop_units()`` is used, else
    the structural rule. A ``torch.compile`` wrapper is looked through: names carry no
    ``_orig_mod.``.
    """
    model = unwrap(model)
    spec: Spec
    if names:
        spec = _parse(names)
    elif callable(own := getattr(model, "learndrop_units", None)):
        spec = [(n, list(m)) for n, m in own()]
    else:
        spec = spec_for(model)

    modules = dict(model.named_modules())
    parameters = dict(model.named_parameters())
    units: list[Unit] = []
    owner: dict[str, str] = {}
    for i, (name, member_names) in enumerate(spec):
        if not member_names:
            raise ModelError(f"unit '{name}' lists no modules")
        mods: list[nn.Module] = []
        mod_names: list[str] = []
        params: list[nn.Parameter] = []
        param_names: list[str] = []
        for mn in member_names:
            if mn in modules:
                mods.append(modules[mn])
                mod_names.append(mn)
            elif mn in parameters:
                params.append(parameters[mn])
                param_names.append(mn)
            else:
                raise ModelError(f"unit '{name}': the model has no module or parameter named "
                                 f"'{mn}' (see model.named_modules())")
            for other, other_unit in owner.items():
                if mn == other or mn.startswith(other + ".") or other.startswith(mn + "."):
                    raise ModelError(f"units '{other_unit}' and '{name}' overlap at '{mn}': "
                                     f"each module may belong to one unit only")
            owner[mn] = name
        units.append(Unit(index=i, name=name, module_names=tuple(mod_names),
                          modules=tuple(mods), is_head=(i == len(spec) - 1),
                          param_names=tuple(param_names), own_params=tuple(params)))
    if len({u.name for u in units}) != len(units):
        raise ModelError("unit names must be unique")
    if len(units) < 2:
        raise ModelError("a model needs at least two units (one to drop and the head)")
    for u in units:
        u.params = sum(p.numel() for p in u.parameters())
    return units


def structural_units(model: nn.Module) -> Spec:
    """``[(unit name, [module or parameter names]), ...]`` by the structural rule alone
    (:mod:`._discovery`), whatever units the model or a user names for it."""
    return spec_for(unwrap(model))


# ---- measuring --------------------------------------------------------------------------------
@contextmanager
def _untouched(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Run a block of code that may move buffers, mode flags or random state; put them back."""
    flags = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    devices = [] if device.type == "cpu" else [device.index or 0]
    kind = None if device.type == "cpu" else device.type
    try:
        with torch.random.fork_rng(devices=devices, device_type=kind):
            yield
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        for m, t in flags:
            m.training = t


def _example_batch(example: Any) -> Any:
    """Two samples of every tensor in ``example`` (training-mode BatchNorm needs more than one
    value per channel); tuples, lists and dicts are mapped through."""
    if torch.is_tensor(example):
        if example.dim() == 0:  # not batched: a setting such as a temperature
            return example.detach()
        x = example[:2] if example.shape[0] >= 2 else torch.cat([example[:1], example[:1]])
        return x.detach()
    if isinstance(example, dict):
        return {k: _example_batch(v) for k, v in example.items()}
    if isinstance(example, (tuple, list)):
        return type(example)(_example_batch(v) for v in example)
    return example


def tensors_in(value: Any) -> list[torch.Tensor]:
    """The tensors in ``value`` (through tuples, lists and dicts)."""
    if torch.is_tensor(value):
        return [value]
    items = value.values() if isinstance(value, dict) else (
        value if isinstance(value, (tuple, list)) else ())
    return [t for v in items for t in tensors_in(v)]


@dataclass
class _Calls:
    """What the hooks saw of one unit during the measured forward."""

    flops: int = 0
    modules: list[nn.Module] = field(default_factory=list)
    first_in: Any = None
    last_out: Any = None
    shapes: tuple[Any, Any] = (None, None)
    chained: bool = True
    single_input: torch.Tensor | None = None


def _measure_forward(model: nn.Module, units: list[Unit], args: tuple, kwargs: dict[str, Any],
                     training: bool) -> tuple[int, dict[int, _Calls]]:
    counter = FlopCounterMode(display=False)
    module_unit: dict[int, Unit] = {id(m): u for u in units for m in u.modules}
    calls = {u.index: _Calls() for u in units}
    start: dict[int, int] = {}
    candidates = {u.index for u in units if len(u.modules) == 1 and not u.own_params}

    def pre(mod: nn.Module, args: tuple) -> None:
        start[id(mod)] = counter.get_total_flops()
        u = module_unit[id(mod)]
        c = calls[u.index]
        first = args[0] if args else None
        if not c.modules:
            c.first_in = first
            c.shapes = (tuple(first.shape) if torch.is_tensor(first) else None, None)
            if u.index in candidates and torch.is_tensor(first) and len(args) == 1:
                c.single_input = first.detach().clone()
        elif first is not c.last_out:
            c.chained = False
        c.modules.append(mod)

    def post(mod: nn.Module, args: tuple, out: object) -> None:
        c = calls[module_unit[id(mod)].index]
        c.flops += counter.get_total_flops() - start.pop(id(mod))
        c.last_out = out
        c.shapes = (c.shapes[0], tuple(out.shape) if torch.is_tensor(out) else None)

    handles = []
    owned: list[tuple[Unit, str, nn.Module]] = []  # each module with parameters of its own
    for u in units:
        for name, m in zip(u.module_names, u.modules, strict=True):
            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post))
            owned += [(u, sub_name, sub) for sub_name, sub in m.named_modules(prefix=name)
                      if next(sub.parameters(recurse=False), None) is not None]
    used = _StorageUse()
    try:
        model.train(training)
        with counter, used:
            model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    for u in units:  # a module counts as run when any operation read one of its parameters
        u.idle_modules = tuple(
            name for owner, name, sub in owned if owner is u and not any(
                _storage(p) in used.storages for p in sub.parameters(recurse=False)))
    return counter.get_total_flops(), calls


def idle_message(units: list[Unit]) -> str | None:
    """What to tell the user when parts of measured units did not run on the example input
    (their FLOPs count 0), else None."""
    idle = [f"'{u.name}' (" + ("all of it" if u.first_module is None
                               else ", ".join(u.idle_modules)) + ")"
            for u in units if u.idle_modules]
    if not idle:
        return None
    return (f"some units did not run on the example input (a branch not taken): "
            f"{', '.join(idle)}; their FLOPs count 0, so the savings figures leave them "
            f"out: pass an example_input that runs them")


def _storage(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # a tensor without one storage (sparse)
        return id(t)


class _StorageUse(TorchDispatchMode):
    """The storages of every tensor an operation reads (a parameter used through a view, an
    index or a method of its module counts, not only through the module's forward)."""

    def __init__(self) -> None:
        super().__init__()
        self.storages: set[int] = set()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        for a in (*args, *(kwargs or {}).values()):
            for t in a if isinstance(a, (list, tuple)) else (a,):
                if torch.is_tensor(t):
                    self.storages.add(_storage(t))
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def measure_units(model: nn.Module, units: list[Unit], example: Any,
                  kwargs: dict[str, Any] | None = None) -> int:
    """Measure each unit's forward FLOPs per sample, call order, chaining and whether it may
    be skipped; returns the model's total forward FLOPs per sample.

    ``example`` is the model's input (one batch, or one sample with a batch dimension), or a
    tuple of its positional inputs; ``kwargs`` its keyword inputs. Every tensor in them
    (also inside lists and dicts) is cut to two samples.

    Runs one training-mode forward of two samples (the way the model runs while training;
    some layers, such as attention, take other paths in eval mode), then one eval-mode call of
    each candidate block to see whether it is residual. Weights, buffers (BatchNorm running
    statistics), each module's mode and the random state are as they were afterwards.
    """
    model = unwrap(model)
    if torch.is_tensor(example) and example.dim() < 2:
        raise ModelError("the example input must have a batch dimension")
    args = example if isinstance(example, tuple) else (example,)
    args, kw = _example_batch((args, dict(kwargs or {})))
    tensors = tensors_in((args, kw))
    if not tensors:
        raise ModelError("the example input holds no tensor to measure the model with")
    device, n = tensors[0].device, 2
    error: Exception | None = None
    for training in (True, False):  # eval mode only where a training-mode forward fails
        try:
            with _untouched(model, device):
                total, calls = _measure_forward(model, units, args, kw, training)
            error = None
            break
        except Exception as exc:  # noqa: BLE001 - any failure means the model does not fit
            error = error or exc
    if error is not None:
        shapes = ", ".join(str(tuple(t.shape[1:])) for t in tensors)
        raise ModelError(f"the model does not accept inputs of shape {shapes}: "
                         f"{first_line(error)}") from None
    for k, u in enumerate(units):
        c = calls[u.index]
        u.forward_flops = int(c.flops // n)
        u.first_module = c.modules[0] if c.modules else None
        u.last_module = c.modules[-1] if c.modules else None
        nxt = calls[units[k + 1].index] if k + 1 < len(units) else None
        u.feeds_next = bool(nxt is not None and c.modules and c.chained
                            and torch.is_tensor(c.last_out) and nxt.first_in is c.last_out)
        shp_in, shp_out = c.shapes
        u.skippable = False
        if (not u.is_head and c.single_input is not None and shp_in is not None
                and shp_in == shp_out):
            with _untouched(u.modules[0], device):  # only the block runs
                u.skippable = is_residual(u.modules[0], c.single_input)
    return int(total // n)


def unit_infos(units: list[Unit], total_forward_flops: int) -> tuple[UnitInfo, ...]:
    """Every unit as the events describe it: name, modules, parameters, FLOPs and their
    share of the forward pass, head, skippable."""
    total = max(total_forward_flops, 1)
    return tuple(UnitInfo(index=u.index, name=u.name, modules=u.module_names,
                          params=u.params, forward_flops=u.forward_flops,
                          flops_share=u.forward_flops / total, is_head=u.is_head,
                          skippable=u.skippable) for u in units)
