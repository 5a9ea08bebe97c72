"""timm models with block-level Learn&Drop units.

timm already knows how each of its models divides into stem, blocks and head: every model
has ``group_matcher(coarse=False)``, the grouping timm uses for layer-wise learning-rate
decay. :func:`timm_units` turns those groups into units (each group's modules gathered into
the fewest whole sub-modules), so a MobileNetV3 is scored block by block
(``blocks.2.1``), a ViT block by block (``blocks.3``), a ConvNeXt per block with each stage's
downsampling in its first block, a RegNet per block (``s3.b2``).

::

    from learndrop.integrations.timm import create_model
    model = create_model("mobilenetv3_small_050", num_classes=10)  # timm.create_model + units
    ld = LearnDrop(model, optimizer)

The command line uses it for ``--model timm:NAME`` (entry point ``timm`` of the
``learndrop.models`` group): ``timm.create_model(NAME, pretrained=False, num_classes=N,
in_chans=C)``, with ``img_size`` set to the data's size for models whose input size is fixed
(ViT, Swin, ...). Pretrained weights are not downloaded; ``--model.weights FILE`` loads a
state dict you have.

Parameters that belong to the model itself rather than to a sub-module join the unit that
timm groups them with: a ViT's class token and position embedding belong to its stem.
"""

from __future__ import annotations

import re
from typing import Any

import timm
import torch
from timm.models import get_pretrained_cfg_value, group_modules, group_parameters
from torch import nn

from learndrop.core import ModelError
from learndrop.core.engine import structural_units
from learndrop.core.errors import first_line
from learndrop.core.models import StaticUnits

__all__ = ["build_model", "create_model", "timm_units"]


def timm_units(model: nn.Module) -> list[tuple[str, list[str]]]:
    """``[(unit name, [module or parameter names]), ...]`` from timm's fine-grained layer
    groups, input to output: ``stem``, one unit per block, ``head`` (whatever timm leaves
    ungrouped)."""
    matcher = getattr(model, "group_matcher", None)
    if not callable(matcher):
        raise ModelError(f"{type(model).__name__} has no group_matcher(), so it is not a timm "
                         f"model: pass units=[...] with module names")
    try:
        spec = matcher(coarse=False)
    except NotImplementedError:
        raise ModelError(f"timm's {type(model).__name__} does not group its layers: pass "
                         f"units=[...] with module names") from None
    group_of: dict[str, int] = group_modules(model, spec, reverse=True)
    groups: dict[int, list[str]] = {g: [] for g in sorted(set(group_of.values()))}
    _collapse(model, "", group_of, groups)
    for name, g in group_parameters(model, spec, reverse=True).items():
        if not any(name.startswith(m + ".") for members in groups.values() for m in members):
            groups[g].append(name)  # a parameter outside every unit's modules (cls_token)
    units: list[tuple[str, list[str]]] = []
    block_patterns = _block_patterns(spec)
    stem = spec.get("stem") if isinstance(spec, dict) else None
    order = [g for g in groups if groups[g]]
    for i, g in enumerate(order):
        leaves = [leaf for leaf, lg in group_of.items() if lg == g]
        if i == len(order) - 1:
            label = "head"
        elif i == 0 and isinstance(stem, str) and any(re.match(stem, n) for n in leaves):
            label = "stem"
        else:
            label = _block_name(leaves, block_patterns) or groups[g][0]
        units.append((label, groups[g]))
    units = _refined(model, units)
    seen: dict[str, int] = {}
    for i, (label, names) in enumerate(units):  # unit names must be unique
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            units[i] = (f"{label}#{seen[label]}", names)
    return units


def _refined(model: nn.Module, units: list[tuple[str, list[str]]]
             ) -> list[tuple[str, list[str]]]:
    """timm's block groups (not the stem or the head), each split into the structural rule's
    units where those lie inside it and cover it exactly: timm groups some families by stage
    (CoAtNet, MaxViT), while their blocks are plain to see in the structure."""
    names = [n for n, _ in model.named_parameters()]

    def covered(members: list[str]) -> frozenset[str]:
        return frozenset(p for p in names
                         if any(p == m or p.startswith(m + ".") for m in members))

    structural = [(label, members, covered(members)) for label, members in
                  structural_units(model)]
    out: list[tuple[str, list[str]]] = []
    for k, (label, members) in enumerate(units):
        group = covered(members)
        inside = [(s_label, s_members) for s_label, s_members, s_params in structural
                  if s_params and s_params <= group]
        parts = frozenset().union(*(covered(m) for _, m in inside)) if inside else frozenset()
        if 0 < k < len(units) - 1 and len(inside) >= 2 and parts == group:
            out.extend(inside)
        else:
            out.append((label, members))
    return out


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """``timm.create_model(name, **kwargs)`` that knows its units (``learndrop_units()``).

    Blocks that add their input back (timm's ``has_skip``: MobileNet and EfficientNet
    blocks) are marked residual, so ``mode="skip"`` may bypass them.
    """
    model = timm.create_model(name, **kwargs)
    setattr(model, "learndrop_units", StaticUnits(timm_units(model)))  # noqa: B010
    for m in model.modules():
        if getattr(m, "has_skip", False) is True:
            setattr(m, "learndrop_residual", True)  # noqa: B010
    return model


def build_model(name: str, *, num_classes: int, in_channels: int, image_size: int,
                width: float) -> nn.Module:
    """The ``timm`` model source of the model catalogue (``--model timm:NAME``); timm has no
    common width multiplier, so ``width`` is ignored."""
    del width
    if not timm.is_model(name):
        raise ModelError(f"timm has no model {name!r}: see timm.list_models(), for example "
                         f"resnet18, mobilenetv3_small_050 or vit_tiny_patch16_224")
    kwargs: dict[str, Any] = dict(pretrained=False, num_classes=num_classes,
                                  in_chans=in_channels)
    if get_pretrained_cfg_value(name, "fixed_input_size"):
        kwargs["img_size"] = image_size
    try:
        return create_model(name, **kwargs)
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        if _out_of_memory(exc):  # the model is too large, not wrong for the images
            raise
        raise ModelError(f"timm cannot build {name} for {image_size}x{image_size} images with "
                         f"{in_channels} channel(s): {first_line(exc)}") from None


def _out_of_memory(exc: BaseException) -> bool:
    """Out of memory, as the GPU's allocator or the CPU's (a plain RuntimeError) says it."""
    text = str(exc)
    return isinstance(exc, torch.OutOfMemoryError) or "DefaultCPUAllocator" in text or (
        "out of memory" in text.lower())


def _collapse(module: nn.Module, prefix: str, group_of: dict[str, int],
              groups: dict[int, list[str]]) -> None:
    """Each child whose parameters all lie in one group joins that group whole (a container of
    a single block as that block); a child that spans several groups is split into its own
    children."""
    for name, child in module.named_children():
        full = f"{prefix}{name}"
        inside = {g for leaf, g in group_of.items() if leaf == full or leaf.startswith(full + ".")}
        if len(inside) == 1:
            while isinstance(child, (nn.Sequential, nn.ModuleList)):
                owners = [(n, c) for n, c in child.named_children()
                          if any(True for _ in c.parameters())]
                if len(owners) != 1:
                    break
                full, child = f"{full}.{owners[0][0]}", owners[0][1]
            groups[inside.pop()].append(full)
        elif inside:
            _collapse(child, f"{full}.", group_of, groups)


def _block_patterns(spec: Any) -> list[re.Pattern[str]]:
    """The matcher's per-block patterns (those that number blocks, not merge extras)."""
    blocks = spec.get("blocks") if isinstance(spec, dict) else None
    if isinstance(blocks, str):
        return [re.compile(blocks)]
    if isinstance(blocks, (list, tuple)):
        return [re.compile(p) for p, suffix in blocks if suffix is None]
    return []


def _block_name(leaves: list[str], patterns: list[re.Pattern[str]]) -> str | None:
    """The block a group's modules belong to, as timm's matcher numbers it (``layer1.0``)."""
    for n in leaves:
        for p in patterns:
            m = p.match(n)
            if m:
                return m.group(0)
    return None
