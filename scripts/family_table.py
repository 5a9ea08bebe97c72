"""The supported torchvision families as a Markdown table, from the code itself.

For each family in :data:`learndrop.core.models.TORCHVISION_FAMILIES` it builds the family's
smallest torchvision model at its smallest image size (random weights, CPU), lets the engine
find and measure its units, and writes one row: the models, how the units are formed (the
unit sequence with runs of one block class counted), which blocks may be skipped, whether a
dropped prefix may be cached, and the image sizes. Takes a minute or two on a laptop CPU.

Usage::

    python scripts/family_table.py [--only resnet,vit] [--out table.md]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import torch
import torchvision.models as tvm
from torch import nn

from learndrop.core.engine import Unit, discover_units, measure_units
from learndrop.core.models import (
    TORCHVISION_FAMILIES,
    TorchvisionFamily,
    build_torchvision,
    list_models,
    model_info,
    torchvision_family,
)


def _kind(unit: Unit) -> str:
    """What a unit is: its block class, or its name and members for stem, head and groups."""
    members = [*unit.param_names, *unit.module_names]
    if len(unit.modules) == 1 and not unit.param_names and (
            unit.name not in ("stem", "head")
            or type(unit.modules[0]) not in (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        return type(unit.modules[0]).__name__
    if unit.name in ("stem", "head"):
        return f"{unit.name} [{', '.join(members)}]"
    return "+".join(type(m).__name__ for m in unit.modules)


def _sequence(units: list[Unit]) -> str:
    """The units input to output, consecutive units of one kind counted (``16x Bottleneck``)."""
    runs: list[list[object]] = []
    for u in units:
        kind = _kind(u)
        if runs and runs[-1][0] == kind:
            runs[-1][1] = int(runs[-1][1]) + 1  # type: ignore[call-overload]
        else:
            runs.append([kind, 1])
    return " · ".join(f"{n}x {k}" if n != 1 else str(k) for k, n in runs)


def _skippable(units: list[Unit]) -> str:
    blocks = Counter(type(u.modules[0]).__name__ for u in units
                     if len(u.modules) == 1 and not u.is_head and not u.param_names)
    skip = Counter(type(u.modules[0]).__name__ for u in units if u.skippable)
    if not skip:
        return "none"
    return ", ".join(f"{skip[c]} of {blocks[c]} {c}" for c in skip)


def _cacheable(units: list[Unit]) -> str:
    """How many leading units form a prefix whose output may be cached."""
    n = 0
    for u in units[:-1]:
        if not u.feeds_next:
            break
        n += 1
    if n == len(units) - 1:
        return "any prefix"
    return "none" if n == 0 else f"up to {units[n - 1].name}"


def _models(family: TorchvisionFamily) -> str:
    """The family's torchvision names; a name the registry adapts itself is marked."""
    out = []
    for n in list_models():
        if model_info(n).source == "torchvision" and torchvision_family(n) is family:
            out.append(n)
        elif n in tvm.list_models(module=tvm) and torchvision_family(n) is family:
            out.append(f"{n}\u2020")
    return ", ".join(out)


def row(family: TorchvisionFamily) -> str:
    size = family.fixed_image_size or family.min_image_size
    torch.manual_seed(0)
    model: nn.Module = build_torchvision(family.reference, num_classes=10, in_channels=3)
    units = discover_units(model)
    measure_units(model, units, torch.randn(2, 3, size, size))
    sizes = (f"exactly {family.fixed_image_size} px" if family.fixed_image_size
             else f"{family.min_image_size} px or more")
    return (f"| {family.title} | {_models(family)} | {family.reference}: {len(units)} units: "
            f"{_sequence(units)} | {_skippable(units)} | {_cacheable(units)} | {sizes} "
            f"({family.size_rule}) |")


HEADER = ("| Family | Models (torchvision names) | Units of the smallest model | Skippable "
          "blocks | Cacheable prefix | Images |\n|---|---|---|---|---|---|")
FOOTER = ("\n\u2020 the registry's own entry under this name: adapted to small images "
          "(`learndrop models` lists them).\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated family keys (default: all)")
    p.add_argument("--out", type=Path, help="write the table here (default: standard output)")
    args = p.parse_args(argv)
    keys = set(args.only.split(",")) if args.only else None
    rows = [HEADER]
    for family in TORCHVISION_FAMILIES:
        if keys is None or family.key in keys:
            rows.append(row(family))
            print(f"{family.key} done", file=sys.stderr)
    text = "\n".join(rows) + "\n" + FOOTER
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
