"""Units: the named groups of modules that the engine scores and drops."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import nn

__all__ = ["StaticUnits", "Units", "attach_units", "scaled"]

Units = list[tuple[str, list[str]]]


class StaticUnits:
    """A picklable callable returning a fixed unit list (for classes we do not own)."""

    def __init__(self, units: Iterable[tuple[str, Sequence[str]]]) -> None:
        self._units: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
            (name, tuple(modules)) for name, modules in units)

    def __call__(self) -> Units:
        return [(name, list(modules)) for name, modules in self._units]

    def __repr__(self) -> str:
        return f"StaticUnits({[name for name, _ in self._units]})"


def attach_units(model: nn.Module, units: Iterable[tuple[str, Sequence[str]]]) -> nn.Module:
    """Give ``model`` a ``learndrop_units`` attribute that survives copy and pickle."""
    setattr(model, "learndrop_units", StaticUnits(units))  # noqa: B010
    return model


def scaled(channels: int, width: float) -> int:
    """Channel count times the width multiplier, at least one."""
    return max(1, round(channels * width))
