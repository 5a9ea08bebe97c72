"""Whether one run's speed against another's is a result or the machine's doing."""

from __future__ import annotations

from dataclasses import dataclass

from .. import format as fmt
from ..summary import RunSummary

__all__ = ["LOAD_DIFFERENCE", "SpeedComparison", "compare_speed"]

#: machine loads (runnable processes per CPU) further apart than this make times incomparable
LOAD_DIFFERENCE = 0.5


@dataclass(frozen=True)
class SpeedComparison:
    """``speedup``: the reference's wall time over the run's (``None`` when either is not
    known). ``caveats`` say why it is not a result: the runs ran on other machines, under
    different loads, or their step times' spreads overlap."""

    speedup: float | None
    caveats: tuple[str, ...] = ()

    @property
    def is_result(self) -> bool:
        return self.speedup is not None and not self.caveats

    @property
    def text(self) -> str:
        """``1.71x``, or ``1.05x (not a result: within step-time noise)``."""
        if self.speedup is None:
            return fmt.DASH
        if not self.caveats:
            return fmt.speedup(self.speedup)
        return f"{fmt.speedup(self.speedup)} (not a result: {'; '.join(self.caveats)})"


def compare_speed(run: RunSummary, reference: RunSummary) -> SpeedComparison:
    """``run``'s speed-up over ``reference``, with what keeps it from being a result."""
    a, b = run.wall_time_s, reference.wall_time_s
    if not (fmt.is_number(a) and fmt.is_number(b)) or a <= 0 or b <= 0:
        return SpeedComparison(None)
    k = b / a
    caveats: list[str] = []
    if run.machine and reference.machine and run.machine != reference.machine:
        caveats.append("different machines")
    la, lb = run.load_per_cpu, reference.load_per_cpu
    if la is not None and lb is not None and abs(la - lb) > LOAD_DIFFERENCE:
        caveats.append(f"machine load {la:.1f} vs {lb:.1f} per CPU")
    sa, sb = run.savings.step_time_spread_now, reference.savings.step_time_spread_now
    if sa is not None and sb is not None and abs(k - 1.0) <= sa + k * sb:
        # the spreads of the two runs' times per step overlap
        caveats.append(f"within step-time noise (\u00b1{fmt.percent(max(sa, sb), 0)})")
    return SpeedComparison(k, tuple(caveats))
