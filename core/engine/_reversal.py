"""Reversible drops: the training loss between checks, and the drop it watches.

The loop hands each step's loss to ``ld.step(loss)``; :class:`LossWatch` adds it and its
square on the device (no host sync in the loop) and reads both back once per check, as a
:class:`~._rule.LossSpan`. When the policy drops units at a check, the span that ended there
is the reference; each of the next ``WATCH_CHECKS`` spans is compared with it
(:func:`~._rule.loss_rose`), and a rise beyond the noise restores the units of that drop.
Only the most recent drop is watched: a newer one replaces it, so a restore never reaches
back past a drop that the loss already accepted.

Without a loss (a loop that calls ``ld.step()``) there is nothing to watch and no drop is
restored; ``drop.reversible`` says so once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..events import RestoreEvent
from ._policy import DropPolicy
from ._rule import LossSpan, loss_rose
from ._units import Unit

__all__ = ["LossWatch", "Verdict", "WATCH_CHECKS", "NO_LOSS"]

NO_LOSS = ("drop.reversible watches the training loss, and this loop gives none: call "
           "ld.step(loss) to have harmful drops undone")

#: checks after a drop at which the loss is compared with the loss before it
WATCH_CHECKS = 2


@dataclass(frozen=True)
class Verdict:
    """What a check decides of the watched drop: the units to restore (none: keep it) and
    the two losses compared."""

    units: tuple[int, ...] = ()
    before: float = float("nan")
    after: float = float("nan")

    def event(self, unit: Unit, step: int, epoch: float) -> RestoreEvent:
        return RestoreEvent(step=step, epoch=epoch, unit=unit.name, index=unit.index,
                            reason="loss", loss_before=self.before, loss_after=self.after)


@dataclass
class _Watched:
    units: tuple[int, ...]
    before: LossSpan
    checks_left: int


class LossWatch:
    """The training loss since the last check (on the device) and the drop being watched."""

    def __init__(self) -> None:
        self._sums: torch.Tensor | None = None  # [sum, sum of squares]
        self._steps = 0
        self.seen = False  # a loss was ever given
        self.watched: _Watched | None = None
        self.last: LossSpan | None = None
        self._said = False

    def add(self, loss: torch.Tensor | float) -> None:
        """One step's loss (a tensor stays on its device)."""
        v = loss.detach().float().mean() if isinstance(loss, torch.Tensor) else \
            torch.tensor(float(loss))
        pair = torch.stack([v, v * v])
        if self._sums is None or self._sums.device != pair.device:
            self._sums = pair
        else:
            self._sums = self._sums + pair
        self._steps += 1
        self.seen = True

    def take(self) -> LossSpan | None:
        """The span since the last check (one read-back), and start a new one."""
        if self._sums is None or not self._steps:
            self.last = None
        else:
            total, squares = self._sums.tolist()
            self.last = LossSpan.of(total, squares, self._steps)
        self._sums, self._steps = None, 0
        return self.last

    def judge(self, span: LossSpan | None, policy: DropPolicy) -> Verdict:
        """At a check, with the span that ended there: the units of the watched drop to
        restore when its loss rose beyond the noise."""
        w = self.watched
        if w is None or span is None:
            return Verdict()
        if loss_rose(w.before, span, policy.confidence):
            self.watched = None
            return Verdict(w.units, w.before.mean, span.mean)
        w.checks_left -= 1
        if w.checks_left <= 0:
            self.watched = None
        return Verdict()

    def dropped(self, units: Sequence[int]) -> str:
        """The policy dropped ``units`` at this check: watch them from the span that ended
        here. Returns :data:`NO_LOSS` the first time there is no loss to watch them by."""
        if units and self.last is not None:
            self.watched = _Watched(tuple(units), self.last, WATCH_CHECKS)
        if units and not self.seen and not self._said:
            self._said = True
            return NO_LOSS
        return ""

    def forget(self, unit: int) -> None:
        """``unit`` was restored or pinned by hand: it leaves the watched drop."""
        w = self.watched
        if w is not None and unit in w.units:
            rest = tuple(u for u in w.units if u != unit)
            self.watched = _Watched(rest, w.before, w.checks_left) if rest else None

    def state_dict(self) -> dict[str, object]:
        w = self.watched
        return {"watched": None if w is None else {
            "units": list(w.units), "checks_left": w.checks_left,
            "before": [w.before.mean, w.before.error, w.before.steps]}}

    def load_state_dict(self, state: dict[str, object]) -> None:
        w = state.get("watched") if isinstance(state, dict) else None
        if isinstance(w, dict):
            mean, error, steps = w["before"]
            self.watched = _Watched(tuple(int(u) for u in w["units"]),
                                    LossSpan(float(mean), float(error), int(steps)),
                                    int(w["checks_left"]))
        else:
            self.watched = None
