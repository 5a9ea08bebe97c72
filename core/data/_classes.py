"""A subset of a data set's classes (``data.classes``): parsing and selecting."""

from __future__ import annotations

import torch

from ..errors import DataError

__all__ = ["CLASS_SUBSET_SETS", "parse_classes", "select_classes", "classes_problem"]

#: the data sets ``data.classes`` works with (held in memory with their labels)
CLASS_SUBSET_SETS = ("mnist", "fashionmnist", "cifar10", "cifar100")


def _parse(spec: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"5,7,9"`` -> [5, 7, 9]; ``"0-2,8"`` -> [0, 1, 2, 8]."""
    out: list[int] = []
    for part in spec.replace(" ", "").split(","):
        if not part:
            raise ValueError("an empty entry")
        first, sep, last = part.partition("-")
        if not first.isdigit() or (sep and not last.isdigit()):
            raise ValueError(f"'{part}' is not a class number or a range like 0-4")
        lo, hi = int(first), int(last) if sep else int(first)
        if hi < lo:
            raise ValueError(f"the range '{part}' runs backwards")
        out += range(lo, hi + 1)
    if len(set(out)) != len(out):
        raise ValueError("a class is listed twice")
    if len(out) < 2:
        raise ValueError("it names fewer than two classes")
    return out


def classes_problem(spec: str, dataset: str) -> str | None:
    """Why ``data.classes`` cannot be used as given, or ``None``."""
    if not spec:
        return None
    if dataset not in CLASS_SUBSET_SETS:
        return (f"data.classes works with {', '.join(CLASS_SUBSET_SETS)}, not {dataset}; "
                f"leave it empty")
    try:
        _parse(spec)
    except ValueError as exc:
        return f"data.classes '{spec}' cannot be used: {exc} (write e.g. 0-4 or 1,3,5)"
    return None


def parse_classes(spec: str, num_classes: int) -> tuple[int, ...]:
    """The class numbers ``spec`` names, each checked against ``num_classes``."""
    try:
        keep = _parse(spec)
    except ValueError as exc:
        raise DataError(f"data.classes '{spec}' cannot be used: {exc}") from None
    if max(keep) >= num_classes:
        raise DataError(f"data.classes '{spec}' names class {max(keep)}, but the data set has "
                        f"classes 0 to {num_classes - 1}")
    return tuple(keep)


def select_classes(images: torch.Tensor, labels: torch.Tensor, keep: tuple[int, ...]
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples of classes ``keep``, relabelled 0, 1, ... in the order of ``keep``."""
    table = torch.full((int(labels.max()) + 1 if labels.numel() else 1,), -1,
                       dtype=torch.long)
    for new, old in enumerate(keep):
        if old < table.numel():
            table[old] = new
    mapped = table[labels.long()]
    mask = mapped >= 0
    return images[mask], mapped[mask]
