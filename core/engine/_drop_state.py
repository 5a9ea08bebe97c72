"""Which units are dropped, and what that does to the parameters, the optimizer and the
forward: :class:`DropState`.

A drop freezes the unit's parameters (each one's ``requires_grad`` is kept to be given back),
takes them out of the optimizer (:class:`~._optim.OptimizerSlots` remembers where each one
sat, by name) and puts the unit's modules in eval mode; a restore undoes each step. After
either, the dropped prefix and the part of it the cache replaces are worked out again
(:meth:`DropState.layout`), and :meth:`DropState.roles` says what each dropped module does
inside ``ld.model`` (see :mod:`._forward`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ._forward import Redirect, Role
from ._optim import OptimizerSlots
from ._rule import RuleUnit, UnitStatus
from ._units import Unit

__all__ = ["DropState", "UnitDrop"]


@dataclass
class UnitDrop:
    """One unit's drop state."""

    dropped: bool = False
    pinned: bool = False
    drop_step: int | None = None
    drop_epoch: float | None = None
    reason: str = ""
    trainable: tuple[bool, ...] = ()  # each parameter's requires_grad before the drop


class DropState:
    """The drop state of every unit of one model, and the optimizer slots that let a drop be
    undone exactly."""

    def __init__(self, model: nn.Module, units: Sequence[Unit],
                 optimizer: torch.optim.Optimizer | None) -> None:
        self.units = list(units)
        self.by_name = {u.name: u for u in self.units}
        self.of: list[UnitDrop] = [UnitDrop() for _ in self.units]
        self.order: list[str] = []  # the dropped units, in the order they dropped
        self.named = dict(model.named_parameters())
        self._name_of = {id(p): n for n, p in self.named.items()}
        self.slots = OptimizerSlots.record(optimizer, self.named.items())
        self.prefix_len = 0
        self.cached = range(0)  # the dropped units the cache replaces (cache mode)
        self.version = 0  # counts changes, so that wrappers know when to rebuild
        self.redirects: dict[nn.Module, Redirect] = {}

    # ---- facts ------------------------------------------------------------------------------
    def is_dropped(self, unit: Unit) -> bool:
        return self.of[unit.index].dropped

    def is_pinned(self, unit: Unit) -> bool:
        return self.of[unit.index].pinned

    def training(self) -> list[Unit]:
        """The units still scored: neither the head nor dropped, with parameters."""
        return [u for u in self.units
                if not u.is_head and not self.of[u.index].dropped and u.params > 0]

    def rule_units(self) -> list[RuleUnit]:
        return [RuleUnit(u.name, u.is_head, u.params > 0) for u in self.units]

    def statuses(self, streaks: Sequence[int]) -> list[UnitStatus]:
        """Each unit's status as the rule reads it."""
        return [UnitStatus(st.dropped, st.pinned, k) for st, k in zip(self.of, streaks)]

    def log(self) -> list[dict[str, Any]]:
        """Drops in order: unit, step, epoch, reason."""
        out = []
        for name in self.order:
            st = self.of[self.by_name[name].index]
            out.append({"unit": name, "step": st.drop_step, "epoch": st.drop_epoch,
                        "reason": st.reason})
        return out

    # ---- changes ----------------------------------------------------------------------------
    def drop(self, u: Unit, reason: str, step: int, epoch: float,
             optimizer: torch.optim.Optimizer | None) -> None:
        """Drop ``u`` now: freeze it, free its optimizer state, put its modules in eval
        mode."""
        st = self.of[u.index]
        st.dropped, st.reason, st.drop_step, st.drop_epoch = True, reason, step, epoch
        params = u.parameters()
        st.trainable = tuple(p.requires_grad for p in params)
        for p in params:
            p.requires_grad_(False)
            p.grad = None
        if optimizer is not None:
            self.slots.remove(optimizer, params)
        for m in u.modules:
            m.eval()
        self.order.append(u.name)
        self.version += 1

    def restore(self, u: Unit, optimizer: torch.optim.Optimizer | None, training: bool
                ) -> None:
        """Undo the drop of ``u``: each parameter gets back its ``requires_grad`` and its
        place in the optimizer (its optimizer state starts fresh)."""
        st = self.of[u.index]
        params = u.parameters()
        trainable = st.trainable or (True,) * len(params)
        st.dropped, st.drop_step, st.drop_epoch, st.reason = False, None, None, ""
        st.trainable = ()
        for p, t in zip(params, trainable):
            p.requires_grad_(t)
        if optimizer is not None:
            self.slots.insert(optimizer, self.named,
                              [self._name_of[id(p)] for p in params if id(p) in self._name_of])
        for m in u.modules:
            m.train(training)
        self.order.remove(u.name)
        self.version += 1

    def pin(self, u: Unit, pinned: bool = True) -> None:
        self.of[u.index].pinned = pinned

    def enforce_eval(self) -> None:
        """Dropped modules stay in eval mode (their BatchNorm statistics stop moving)."""
        for name in self.order:
            for m in self.by_name[name].modules:
                if m.training:
                    m.eval()

    # ---- the layout of the forward ----------------------------------------------------------
    def leading(self) -> int:
        """How many leading units are dropped."""
        n = 0
        for st in self.of:
            if not st.dropped:
                break
            n += 1
        return n

    def layout(self, cached: range) -> bool:
        """Set the dropped prefix (from the drop state) and the part ``cached`` that the
        cache replaces; whether either changed."""
        prefix = self.leading()
        if (prefix, cached) == (self.prefix_len, self.cached):
            return False
        self.prefix_len, self.cached = prefix, cached
        return True

    def cacheable(self, warn: Callable[[str], None]) -> range:
        """The units of the dropped prefix whose work the cache replaces.

        On a cache hit the cached units' modules return their input, and the last one
        returns the cached output, so the cached units must run in sequence: each passes
        its output straight to the next (``feeds_next``), and the last one's output is its
        last module's (it feeds the next unit too, or is a single module). Units before
        them run frozen (their output passes through unchanged), and so do units after them
        (on the cached output). Of the runs that qualify, the one with the most FLOPs;
        ``warn`` hears which dropped units run frozen and why.
        """
        prefix = self.leading()
        units = self.units
        best, best_flops = range(0), -1
        for end in range(prefix):
            u = units[end]
            if u.last_module is None or not (u.feeds_next or len(u.modules) == 1):
                continue
            start = end
            while start > 0 and units[start - 1].feeds_next:
                start -= 1
            flops = sum(units[i].forward_flops for i in range(start, end + 1))
            if flops >= best_flops:
                best, best_flops = range(start, end + 1), flops
        if len(best) < prefix:
            frozen = [repr(u.name) for u in units[:prefix] if u.index not in best]
            breaks = [repr(u.name) for u in units[:prefix] if not u.feeds_next]
            cached = (f"units '{units[best.start].name}' to '{units[best.stop - 1].name}' "
                      f"are cached" if best else "nothing is cached")
            warn(f"cache mode: {cached} and {', '.join(frozen)} run frozen (as in "
                 f"freeze), since the forward does not run {', '.join(breaks)} as one chain "
                 f"of modules whose output is the next unit's input (it reshapes, "
                 f"concatenates or adds in between)")
        return best

    def roles(self, mode: str) -> dict[nn.Module, tuple[Unit, Role]]:
        """What each dropped module does inside ``ld.model`` (modules that are not listed
        run as they are)."""
        roles: dict[nn.Module, tuple[Unit, Role]] = {}
        for u in self.units:
            if not self.of[u.index].dropped:
                continue
            for m in u.modules:
                if mode == "skip" and u.skippable:
                    roles[m] = (u, Role.SKIP)
                elif u.index in self.cached:
                    last = u.index == self.cached.stop - 1 and m is u.last_module
                    roles[m] = (u, Role.BOUNDARY if last else Role.CACHED)
                elif u.index < self.prefix_len:
                    roles[m] = (u, Role.PREFIX)
        return roles

    # ---- saving -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"dropped": [[d["unit"], d["step"], d["epoch"], d["reason"]] for d in self.log()],
                "pinned": [u.name for u in self.units if self.of[u.index].pinned],
                "optimizer_slots": self.slots.state_dict()}

    def check_slots(self, saved: dict[str, Iterable[int]] | None,
                    optimizer: torch.optim.Optimizer | None) -> str:
        """Take the saved optimizer slots (none before state version 2); a problem when the
        optimizer does not hold its parameters where the saved run's did ('' if it does)."""
        if not saved:
            return ""
        slots = OptimizerSlots.from_state(saved)
        if optimizer is not None and slots.slots != self.slots.slots:
            return slots.check(optimizer, self.named) or (
                "its parameters sit in other groups or in another order")
        self.slots = slots
        return ""
