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
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import torch

__all__ = ["UnitScore", "ParameterSnapshots", "slope"]

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
