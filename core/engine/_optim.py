"""Where each parameter sits in its optimizer, by name, so a drop can be undone exactly.

A drop takes a unit's parameters out of their optimizer groups; restoring (or pinning) the
unit puts each one back into its own group at its original position among the parameters
that are still there. The groups' contents are thus always "the original layout minus the
dropped parameters", whatever sequence of drops and restores led there, which is what makes
``optimizer.load_state_dict`` (which matches parameters by position) map a saved state onto
the right parameters after a resume. Parameters are matched by name, never by ``id()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

__all__ = ["OptimizerSlots"]


class OptimizerSlots:
    """Each named parameter's optimizer group and its index in that group's original list.

    A parameter that was never in the optimizer has no slot, so it is never added to it.
    """

    def __init__(self, slots: Mapping[str, tuple[int, int]] | None = None) -> None:
        self.slots: dict[str, tuple[int, int]] = dict(slots or {})

    @classmethod
    def record(cls, optimizer: torch.optim.Optimizer | None,
               named: Iterable[tuple[str, nn.Parameter]]) -> OptimizerSlots:
        if optimizer is None:
            return cls()
        where = {id(p): (gi, i) for gi, group in enumerate(optimizer.param_groups)
                 for i, p in enumerate(group["params"])}
        return cls({name: where[id(p)] for name, p in named if id(p) in where})

    def remove(self, optimizer: torch.optim.Optimizer, params: list[nn.Parameter]) -> None:
        """Take ``params`` out of every group and free their optimizer state."""
        ids = {id(p) for p in params}
        for group in optimizer.param_groups:
            group["params"] = [p for p in group["params"] if id(p) not in ids]
        for p in params:
            optimizer.state.pop(p, None)

    def insert(self, optimizer: torch.optim.Optimizer, named: dict[str, nn.Parameter],
               names: Iterable[str]) -> None:
        """Put the parameters called ``names`` back at their slots (those without one stay
        out). Parameters a group got after its slots were recorded keep their order, after
        the recorded ones."""
        touched: set[int] = set()
        for name in names:
            slot = self.slots.get(name)
            if slot is None:
                continue
            gi, _ = slot
            group = optimizer.param_groups[gi]["params"]
            p = named[name]
            if not any(q is p for q in group):
                group.append(p)
                touched.add(gi)
        if not touched:
            return
        index = {id(named[n]): i for n, (g, i) in self.slots.items() if n in named}
        for gi in touched:
            group = optimizer.param_groups[gi]
            known = [p for p in group["params"] if id(p) in index]
            later = [p for p in group["params"] if id(p) not in index]
            group["params"] = sorted(known, key=lambda p: index[id(p)]) + later

    def check(self, optimizer: torch.optim.Optimizer | None, named: dict[str, nn.Parameter]
              ) -> str:
        """Why these slots cannot belong to ``optimizer`` and the model (empty if they can)."""
        if not self.slots:
            return ""
        if optimizer is None:
            return "the saved state has optimizer slots but this run has no optimizer"
        for name, (gi, _) in self.slots.items():
            if name not in named:
                return f"the model has no parameter named '{name}'"
            if gi >= len(optimizer.param_groups):
                return (f"parameter '{name}' was in optimizer group {gi}, but the optimizer "
                        f"has {len(optimizer.param_groups)} group(s)")
        return ""

    def state_dict(self) -> dict[str, list[int]]:
        return {name: [gi, i] for name, (gi, i) in self.slots.items()}

    @classmethod
    def from_state(cls, state: Mapping[str, Iterable[int]]) -> OptimizerSlots:
        out: dict[str, tuple[int, int]] = {}
        for name, slot in state.items():
            gi, i = (int(v) for v in slot)
            out[str(name)] = (gi, i)
        return cls(out)
