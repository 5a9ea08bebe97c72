"""Per-unit learning scores.

At each check, for every unit still training:

- change ``c = ||theta_now - theta_prev|| / (||theta_prev|| + eps)``, divided by the mean
  learning rate since the previous check when ``lr_normalize`` is on, so a decaying schedule
  alone does not make every layer look converged;
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

import math
from collections import deque
from dataclasses import dataclass, field

import torch

__all__ = ["UnitScore", "ParameterSnapshots", "GradientNorms", "slope"]

EPS = 1e-12


def slope(values: list[float] | deque[float]) -> float | None:
    """Least-squares slope per step of ``values``; None with fewer than two values."""
    n = len(values)
    if n < 2:
        return None
    mean_x = (n - 1) / 2.0
    mean_y = sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


@dataclass
class UnitScore:
    """Score state of one unit across checks."""

    window: int
    ema: float = 0.0
    max_change: float = 0.0
    change: float | None = None
    score: float | None = None
    trend: float | None = None
    streak: int = 0  # consecutive settled checks
    updates: int = 0
    recent: deque[float] = field(default_factory=deque)

    def update(self, change: float, threshold: float, tolerance: float) -> bool:
        """Fold in one check's change; returns whether the unit counts as settled now."""
        if not math.isfinite(change):
            change = self.max_change if self.max_change > 0 else 1.0
        self.change = change
        self.max_change = max(self.max_change, change)
        raw = change / self.max_change if self.max_change > EPS else 0.0
        if self.ema > 0 and self.score is not None:
            raw = self.ema * self.score + (1.0 - self.ema) * raw
        self.score = raw
        self.updates += 1
        if self.updates > 1:  # the first check is the normaliser, not a trend point
            self.recent.append(raw)
        while len(self.recent) > self.window:
            self.recent.popleft()
        self.trend = slope(self.recent)
        settled = (raw <= threshold and self.trend is not None and abs(self.trend) <= tolerance)
        self.streak = self.streak + 1 if settled else 0
        return settled

    def state_dict(self) -> dict[str, object]:
        return {"max_change": self.max_change, "change": self.change, "score": self.score,
                "trend": self.trend, "streak": self.streak, "recent": list(self.recent),
                "updates": self.updates}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.max_change = float(state["max_change"])  # type: ignore[arg-type]
        self.change = state["change"]  # type: ignore[assignment]
        self.score = state["score"]  # type: ignore[assignment]
        self.trend = state["trend"]  # type: ignore[assignment]
        self.streak = int(state["streak"])  # type: ignore[call-overload]
        self.recent = deque(float(v) for v in state["recent"])  # type: ignore[attr-defined]
        self.updates = int(state.get("updates", len(self.recent) + 1))  # type: ignore


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
        norms = torch.stack(torch._foreach_norm(grads)).float()
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
