"""Scoring: how much each unit still learns, measured on the device.

:class:`Scorer` owns what scoring needs: the parameter snapshots (or the gradient norms), each
unit's :class:`~._rule.ScoreState`, the learning rate since the last check and the count of
checks. The arithmetic of a score, its trend and its streak is the rule's
(:func:`._rule.advance`); what is measured here is each unit's change:

At each check, for every unit still training:

- change ``c = ||theta_now - theta_prev|| / (||theta_prev|| + eps)``, divided by the mean
  learning rate the unit's own parameters trained with since the previous check when
  ``lr_normalize`` is on, so a decaying schedule alone does not make every layer look
  converged (each optimizer group's rate is averaged over the steps; a unit whose
  parameters sit in several groups takes their mean weighted by parameter count, so the
  order of the groups never changes a score);
- learning score ``s = c / max(c over this and earlier checks)`` in (0, 1]: 1 is learning as fast
  as it ever did, near 0 is settled; optionally EMA-smoothed;
- trend: least-squares slope of ``s`` per check over the last ``window`` checks. A unit's
  first check is left out: its score is 1 by construction (it is the first maximum), so it
  says nothing about the trend and would make every unit look steeply falling for ``window``
  checks.

The parameter snapshots stay on the model's device; all norms are reduced there and fetched
in a single transfer per check, so a check costs one host sync, not one per unit.

With ``score="gradient"`` the change fed to the same score, trend and patience rules is the
relative change of the unit's gradient norm instead: :class:`GradientNorms` adds each step's
gradient norm per unit on the device (a few fused operations, no host sync), and at a check
``c = |G - G_prev| / G_prev`` where ``G`` is the mean gradient norm since the previous check
(the signal AutoFreeze freezes by: a layer whose gradient norm has stopped changing has
stopped learning). It needs one interval before its first change, so a unit's first score
comes one check later than with ``score="change"``; it is not divided by the learning rate.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from ..events import ScoreCheck
from ._policy import DropPolicy
from ._rule import ScoreState, advance
from ._units import Unit

__all__ = ["Scorer", "ParameterSnapshots", "GradientNorms"]

EPS = 1e-12


class ParameterSnapshots:
    """Flat copies of each unit's parameters at the last check, on the parameters' device."""

    def __init__(self) -> None:
        self._snaps: dict[int, torch.Tensor] = {}

    @staticmethod
    def _flat(params: list[torch.nn.Parameter]) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1).float() for p in params])

    @torch.no_grad()
    def take(self, key: int, params: list[torch.nn.Parameter]) -> None:
        if params:
            self._snaps[key] = self._flat(params).clone()

    def discard(self, key: int) -> None:
        self._snaps.pop(key, None)

    def __contains__(self, key: int) -> bool:
        return key in self._snaps

    @torch.no_grad()
    def relative_changes(self, items: list[tuple[int, list[torch.nn.Parameter]]]
                         ) -> list[float]:
        """``||now - snap|| / (||snap|| + eps)`` for each (key, params); updates the snapshots.

        All reductions stay on the device; one ``tolist()`` fetches every unit's value.
        """
        if not items:
            return []
        ratios = []
        for key, params in items:
            now = self._flat(params)
            snap = self._snaps[key]
            ratios.append(torch.linalg.vector_norm(now - snap)
                          / (torch.linalg.vector_norm(snap) + EPS))
            snap.copy_(now)
        return [float(v) for v in torch.stack(ratios).tolist()]

    def state_dict(self) -> dict[int, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in self._snaps.items()}

    def load_state_dict(self, state: dict[int, torch.Tensor], device: torch.device) -> None:
        self._snaps = {int(k): v.to(device) for k, v in state.items()}


class GradientNorms:
    """Each scored unit's gradient norm, summed over the steps since the last check.

    :meth:`add` runs after every optimizer step (the gradients of that step are still in
    ``p.grad``); it reads only the units still training, stays on the device (a handful of
    operations whatever the number of units) and leaves out a unit's step whose gradient is
    not finite (a mixed-precision step the scaler skipped). :meth:`changes` ends an interval:
    each unit's mean norm against the previous interval's.
    """

    def __init__(self) -> None:
        self._keys: list[int] = []
        self._params: list[torch.nn.Parameter] = []
        self._owner: torch.Tensor | None = None  # each parameter's row in _acc
        self._acc = torch.zeros(0, 2)  # per unit: [sum of step norms, finite steps]
        self._prev: dict[int, float] = {}

    def track(self, items: list[tuple[int, list[torch.nn.Parameter]]]) -> None:
        """The units to follow from now on (after every change of drop state); a unit
        followed before keeps its running interval."""
        items = [(key, trained) for key, params in items
                 if (trained := [p for p in params if p.requires_grad])]  # not the user's frozen
        device = items[0][1][0].device if items else torch.device("cpu")
        old = {key: self._acc[row] for row, key in enumerate(self._keys)}
        self._keys = [key for key, _ in items]
        self._params = [p for _, params in items for p in params]
        self._owner = torch.tensor([row for row, (_, params) in enumerate(items)
                                    for _ in params], dtype=torch.long, device=device)
        self._acc = torch.zeros(len(items), 2, device=device)
        for row, key in enumerate(self._keys):
            if key in old:
                self._acc[row] = old[key].to(device)
        self._prev = {k: v for k, v in self._prev.items() if k in self._keys}

    @torch.no_grad()
    def add(self) -> None:
        """Fold in this step's gradients."""
        if not self._params or self._owner is None:
            return
        grads = [p.grad if p.grad is not None else torch.zeros((), device=p.device)
                 for p in self._params]
        # one fused kernel for every norm; PyTorch gives it no public name
        norms = torch.stack(torch._foreach_norm(grads)).float()  # noqa: SLF001
        squares = torch.zeros(len(self._keys), device=norms.device)
        squares.index_add_(0, self._owner, norms.square())
        unit = squares.sqrt()
        finite = torch.isfinite(unit)
        self._acc += torch.stack([torch.where(finite, unit, 0.0), finite.float()], dim=1)

    @torch.no_grad()
    def changes(self, keys: list[int]) -> list[float | None]:
        """For each key: ``|G - G_prev| / G_prev`` (None for a unit's first interval, or one
        without a finite step), then a new interval starts. One transfer for every unit."""
        rows = {key: row for row, key in enumerate(self._keys)}
        sums = self._acc.tolist()
        self._acc.zero_()
        out: list[float | None] = []
        for key in keys:
            total, steps = sums[rows[key]] if key in rows else (0.0, 0.0)
            if steps <= 0:
                out.append(None)
                continue
            mean = total / steps
            prev = self._prev.get(key)
            self._prev[key] = mean
            out.append(None if prev is None else abs(mean - prev) / (prev + EPS))
        return out

    def state_dict(self) -> dict[str, object]:
        return {"keys": list(self._keys), "acc": self._acc.detach().cpu(),
                "prev": dict(self._prev)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore a saved interval (after :meth:`track` with the same units)."""
        keys, acc, prev = state.get("keys", []), state.get("acc"), state.get("prev", {})
        assert isinstance(keys, list) and isinstance(prev, dict)
        rows = {key: row for row, key in enumerate(self._keys)}
        if isinstance(acc, torch.Tensor):
            for saved_row, key in enumerate(keys):
                if int(key) in rows:
                    self._acc[rows[int(key)]] = acc[saved_row].to(self._acc.device)
        self._prev = {int(k): float(v) for k, v in prev.items()}


class Scorer:
    """Scores the units still training and keeps each unit's :class:`ScoreState`.

    Call :meth:`add_step` after every optimizer step and :meth:`check` at a score check;
    :meth:`stop` and :meth:`start` when a unit is dropped and when it trains again.
    """

    def __init__(self, units: Sequence[Unit], policy: DropPolicy) -> None:
        self.policy = policy
        self.units = list(units)
        self.states: list[ScoreState] = [ScoreState() for _ in self.units]
        self.latest: dict[str, float] = {}  # each scored unit's last score
        self.check_count = 0
        self.time_s = 0.0  # spent scoring
        self._lr_sums: list[float] = []  # per optimizer group, since the last check
        self._lr_steps = 0
        self.snapshots = ParameterSnapshots()
        self.gradients = GradientNorms() if policy.score == "gradient" else None

    def follow(self, training: Sequence[Unit]) -> None:
        """The units to score from now on (at the start and after every change of drop
        state): the gradient signal follows them; snapshots are taken for any that has
        none."""
        if self.gradients is not None:
            self.gradients.track([(u.index, u.parameters()) for u in training])
            return
        for u in training:
            if u.index not in self.snapshots:
                self.snapshots.take(u.index, u.parameters())

    def stop(self, unit: Unit) -> None:
        """``unit`` is dropped: it is scored no more."""
        self.snapshots.discard(unit.index)

    def start(self, unit: Unit) -> None:
        """``unit`` trains again: its streak starts over and its change is measured from
        now on."""
        self.states[unit.index] = replace(self.states[unit.index], streak=0)
        if self.gradients is None:
            self.snapshots.take(unit.index, unit.parameters())

    def hold(self, unit: Unit, streak: int) -> None:
        """``unit`` was restored by the policy: its streak starts at ``streak`` (below 0)."""
        self.states[unit.index] = replace(self.states[unit.index], streak=streak)

    def add_step(self, optimizer: torch.optim.Optimizer | None) -> None:
        """After an optimizer step: its learning rates, and its gradients for the gradient
        signal (timed as scoring work)."""
        if optimizer is not None:
            groups = optimizer.param_groups
            if len(self._lr_sums) != len(groups):
                self._lr_sums = [0.0] * len(groups)
            for g, group in enumerate(groups):
                self._lr_sums[g] += float(group["lr"])
            self._lr_steps += 1
        if self.gradients is not None:
            t0 = time.perf_counter()
            self.gradients.add()
            self.time_s += time.perf_counter() - t0

    def _group_rates(self, optimizer: torch.optim.Optimizer | None) -> list[float]:
        """Each optimizer group's mean learning rate since the last check (its current one
        when no step was made); then a new interval starts."""
        if optimizer is None:
            return []
        if self._lr_steps and len(self._lr_sums) == len(optimizer.param_groups):
            rates = [total / self._lr_steps for total in self._lr_sums]
        else:
            rates = [float(group["lr"]) for group in optimizer.param_groups]
        self._lr_sums = [0.0] * len(optimizer.param_groups)
        self._lr_steps = 0
        return rates

    @staticmethod
    def unit_rates(units: Sequence[Unit], optimizer: torch.optim.Optimizer,
                   rates: Sequence[float]) -> dict[int, float]:
        """The learning rate each unit trained with: the mean of its parameters' groups'
        rates, weighted by parameter count (units none of whose parameters the optimizer
        holds are left out)."""
        group_of = {id(p): g for g, group in enumerate(optimizer.param_groups)
                    for p in group["params"]}
        out: dict[int, float] = {}
        for u in units:
            weight = total = 0.0
            for p in u.parameters():
                g = group_of.get(id(p))
                if g is not None:
                    weight += p.numel()
                    total += p.numel() * rates[g]
            if weight > 0:
                out[u.index] = total / weight
        return out

    def check(self, training: Sequence[Unit], optimizer: torch.optim.Optimizer | None, *,
              step: int, epoch: float) -> ScoreCheck:
        """Score every unit in ``training`` now and advance its score state."""
        t0 = time.perf_counter()
        self.check_count += 1
        policy = self.policy
        rates = self._group_rates(optimizer)
        lr = rates[0] if rates else 1.0
        if self.gradients is not None:  # the change of each unit's gradient norm
            keys = [u.index for u in training]
            found = self.gradients.changes(keys)
            items = [(k, c) for k, c in zip(keys, found) if c is not None]
        else:
            params = [(u.index, u.parameters()) for u in training if u.index in self.snapshots]
            moved = self.snapshots.relative_changes(params)
            own = (self.unit_rates(training, optimizer, rates)
                   if policy.lr_normalize and optimizer is not None else {})
            items = [(k, c / own[k] if own.get(k, 0.0) > 0 else c)
                     for (k, _), c in zip(params, moved)]
        for idx, change in items:
            self.states[idx] = advance(self.states[idx], change, policy)
            self.latest[self.units[idx].name] = float(self.states[idx].score or 0.0)
        cost = time.perf_counter() - t0
        self.time_s += cost
        scored = {idx for idx, _ in items}
        states = self.states
        n = len(states)
        return ScoreCheck(
            step=step, epoch=epoch, lr=lr,
            changes=tuple(states[i].change if i in scored else None for i in range(n)),
            scores=tuple(states[i].score if i in scored else None for i in range(n)),
            trends=tuple(states[i].trend if i in scored else None for i in range(n)),
            settled=tuple(i in scored and states[i].settled for i in range(n)),
            streaks=tuple(states[i].streak for i in range(n)),
            cost_s=cost)

    def state_dict(self) -> dict[str, Any]:
        return {"scores": {i: s.to_dict() for i, s in enumerate(self.states)},
                "snapshots": self.snapshots.state_dict(),
                "gradients": self.gradients.state_dict() if self.gradients else None,
                "lr_sums": list(self._lr_sums), "lr_steps": self._lr_steps,
                "check_count": self.check_count}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        for idx, saved in state["scores"].items():
            i = int(idx)
            self.states[i] = ScoreState.from_dict(saved)
            if self.states[i].score is not None:
                self.latest[self.units[i].name] = float(self.states[i].score or 0.0)
        self.snapshots.load_state_dict(state["snapshots"], device)
        if self.gradients is not None and state.get("gradients"):
            self.gradients.load_state_dict(state["gradients"])
        self._lr_sums = [float(v) for v in state.get("lr_sums", [])]
        self._lr_steps = int(state.get("lr_steps", 0))
        self.check_count = int(state["check_count"])
