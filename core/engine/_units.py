"""Units: the groups of modules that are scored and dropped together.

For a ResNet a unit is the stem, one residual block, or the head; for a VGG one conv+BN+ReLU
group; for any other ``nn.Module`` its top-level children that own parameters. A model may
also say for itself with a ``learndrop_units()`` method, and a user may give an explicit list.
Each unit knows its parameter count and its forward FLOPs per sample, measured once with
:class:`torch.utils.flop_counter.FlopCounterMode` (2 FLOPs per multiply-accumulate; BatchNorm,
activations and pooling are not counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ModelError, first_line

__all__ = ["Unit", "discover_units", "measure_units"]


@dataclass(eq=False)
class Unit:
    """One droppable group of modules. ``params`` is its parameter count."""

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

    def parameters(self) -> list[nn.Parameter]:
        seen: set[int] = set()
        out: list[nn.Parameter] = []
        for m in self.modules:
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def buffers(self) -> list[torch.Tensor]:
        return [b for m in self.modules for b in m.buffers()]


def _resnet_units(model: nn.Module) -> list[tuple[str, list[str]]] | None:
    names = dict(model.named_children())
    if not all(k in names for k in ("conv1", "layer1", "fc")):
        return None
    stem: list[str] = [n for n in ("conv1", "bn1", "relu", "maxpool") if n in names]
    units: list[tuple[str, list[str]]] = [("stem", stem)]
    for stage in sorted(n for n in names if n.startswith("layer")):
        for block, _ in names[stage].named_children():
            units.append((f"{stage}.{block}", [f"{stage}.{block}"]))
    units.append(("head", [n for n in ("avgpool", "fc") if n in names]))
    return units


def _vgg_units(model: nn.Module) -> list[tuple[str, list[str]]] | None:
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential) or not hasattr(model, "classifier"):
        return None
    units: list[tuple[str, list[str]]] = []
    current: list[str] = []
    for name, mod in features.named_children():
        if isinstance(mod, nn.Conv2d) and current:
            units.append((f"conv{len(units) + 1}", current))
            current = []
        current.append(f"features.{name}")
    if current:
        units.append((f"conv{len(units) + 1}", current))
    head = [n for n in ("avgpool", "classifier") if hasattr(model, n)]
    units.append(("head", head))
    return units


def _generic_units(model: nn.Module) -> list[tuple[str, list[str]]]:
    root, prefix = model, ""
    while True:
        owners = [(n, m) for n, m in root.named_children() if any(True for _ in m.parameters())]
        if len(owners) == 1 and any(True for _ in owners[0][1].children()):
            root = owners[0][1]
            prefix = f"{prefix}{owners[0][0]}."
            continue
        break
    if len(owners) < 2:
        raise ModelError("cannot find units in this model automatically (it has fewer than two "
                         "sub-modules with parameters): pass units=[...] with module names")
    return [(f"{prefix}{n}", [f"{prefix}{n}"]) for n, _ in owners]


def discover_units(model: nn.Module, names: list[str] | tuple[str, ...] | None = None
                   ) -> list[Unit]:
    """Find the units of ``model``, ordered input to output; the last one is the head.

    ``names``: explicit units, each a module name or several joined with ``+`` (for example
    ``"conv1+bn1"``); an entry may be named with ``name=``, as in ``"stem=conv1+bn1+relu"``.
    """
    spec: list[tuple[str, list[str]]] | None
    if names:
        spec = []
        for entry in names:
            label, _, body = entry.rpartition("=")
            parts = [m.strip() for m in body.split("+") if m.strip()]
            spec.append((label.strip() or body.strip(), parts))
    elif callable(own := getattr(model, "learndrop_units", None)):
        spec = [(n, list(m)) for n, m in own()]
    else:
        spec = _resnet_units(model) or _vgg_units(model) or _generic_units(model)

    modules = dict(model.named_modules())
    units: list[Unit] = []
    owner: dict[str, str] = {}
    for i, (name, mod_names) in enumerate(spec):
        if not mod_names:
            raise ModelError(f"unit '{name}' lists no modules")
        mods: list[nn.Module] = []
        for mn in mod_names:
            if mn not in modules:
                raise ModelError(f"unit '{name}': the model has no module named '{mn}' "
                                 f"(see model.named_modules())")
            for other, other_unit in owner.items():
                if mn == other or mn.startswith(other + ".") or other.startswith(mn + "."):
                    raise ModelError(f"units '{other_unit}' and '{name}' overlap at '{mn}': "
                                     f"each module may belong to one unit only")
            owner[mn] = name
            mods.append(modules[mn])
        units.append(Unit(index=i, name=name, module_names=tuple(mod_names),
                          modules=tuple(mods), is_head=(i == len(spec) - 1)))
    if len({u.name for u in units}) != len(units):
        raise ModelError("unit names must be unique")
    if len(units) < 2:
        raise ModelError("a model needs at least two units (one to drop and the head)")
    for u in units:
        u.params = sum(p.numel() for p in u.parameters())
    return units


def _is_residual_block(module: nn.Module) -> bool:
    if getattr(module, "learndrop_residual", False):
        return True
    cls = type(module).__name__.lower()
    return cls.endswith("block") or cls.endswith("bottleneck")


@torch.no_grad()
def measure_units(model: nn.Module, units: list[Unit], example: torch.Tensor) -> int:
    """Measure each unit's forward FLOPs per sample and call order; returns the model's
    total forward FLOPs per sample. Runs one forward pass in eval mode (no state changes)."""
    if example.dim() < 2:
        raise ModelError("the example input must have a batch dimension")
    x = example[:2] if example.shape[0] >= 2 else example
    n = x.shape[0]
    counter = FlopCounterMode(display=False)
    module_unit: dict[int, Unit] = {id(m): u for u in units for m in u.modules}
    start: dict[int, int] = {}
    flops: dict[int, int] = {u.index: 0 for u in units}
    order: dict[int, list[nn.Module]] = {u.index: [] for u in units}
    shapes: dict[int, tuple[tuple[int, ...] | None, tuple[int, ...] | None]] = {}

    def pre(mod: nn.Module, args: tuple) -> None:
        start[id(mod)] = counter.get_total_flops()
        u = module_unit[id(mod)]
        if not order[u.index]:
            shape = tuple(args[0].shape) if args and torch.is_tensor(args[0]) else None
            shapes[u.index] = (shape, None)
        order[u.index].append(mod)

    def post(mod: nn.Module, args: tuple, out: object) -> None:
        u = module_unit[id(mod)]
        flops[u.index] += counter.get_total_flops() - start.pop(id(mod))
        shape = tuple(out.shape) if torch.is_tensor(out) else None
        shapes[u.index] = (shapes.get(u.index, (None, None))[0], shape)

    handles = []
    for u in units:
        for m in u.modules:
            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post))
    was_training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with counter:
            model(x)
    except Exception as exc:  # noqa: BLE001 - any failure means the model does not fit the data
        raise ModelError(f"the model does not accept inputs of shape {tuple(x.shape[1:])}: "
                         f"{first_line(exc)}") from None
    finally:
        for h in handles:
            h.remove()
        for m, t in was_training.items():
            m.training = t
    total = counter.get_total_flops()
    for u in units:
        u.forward_flops = int(flops[u.index] // n)
        seq = order[u.index]
        u.first_module = seq[0] if seq else None
        u.last_module = seq[-1] if seq else None
        shp_in, shp_out = shapes.get(u.index, (None, None))
        u.skippable = (not u.is_head and len(u.modules) == 1 and _is_residual_block(u.modules[0])
                       and shp_in is not None and shp_in == shp_out)
    return int(total // n)
