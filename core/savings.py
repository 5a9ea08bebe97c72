"""The savings record: what dropping layers saved, declared once.

The engine builds a :class:`SavingsReport` (``LearnDrop.savings_report()``; ``savings()``
is the same figures as a dict); each ``EpochEnd`` carries one, the run store keeps one row of
it per epoch, a run's :class:`~learndrop.core.summary.RunSummary` holds the last one, and the
report model reads it back. Nobody else declares these figures.

Names say what a figure covers: every figure's name ends in ``_now`` (one step, in the
current drop state) or ``_total`` (every step of the run so far). ``step`` is the global step
the figures were taken at and ``total_params`` the full network's parameter count (fixed).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SavingsReport"]


@dataclass(frozen=True)
class SavingsReport:
    """Savings as fractions of the full network's cost (0.25 = 25% saved), at ``step``.

    Now, per step in the current drop state: ``forward_flops_saved_now`` and
    ``train_flops_saved_now``; ``trainable_params_now`` (of ``total_params``);
    ``step_time_s_now``, the measured time per step (a median), and
    ``full_step_time_s_now``, the full network's under the same conditions;
    ``measured_time_saved_now``, the share of the full step time saved;
    ``step_time_spread_now``, the relative spread of one step's time (robust standard
    deviation over the median); a data-parallel run's gradient bytes all-reduced per step,
    ``allreduce_bytes_per_step_now``, and the full network's,
    ``full_allreduce_bytes_per_step_now`` (0 for one process).

    Totals, over every step so far: ``forward_flops_saved_total`` and
    ``train_flops_saved_total``; ``time_saved_s_total``, measured so that machine load
    cannot fool it (see the engine's savings meter), lies in ``time_saved_low_s_total`` ..
    ``time_saved_high_s_total`` (``None`` until measured);
    ``predicted_time_saved_s_total`` is what the FLOPs saved predict over the same steps;
    ``efficiency_total`` is measured over predicted, ``None`` while the measured saving is
    within its noise; ``projected_time_saved_s_total`` is the total projected to the end of
    the planned run; ``allreduce_bytes_saved_total`` the share of the all-reduce volume saved
    (0 for one process).

    The order of the fields is the order of the run store's ``savings`` columns (rows kept
    in a journal are positional): add new fields at the end.
    """

    step: int = 0
    forward_flops_saved_now: float = 0.0
    train_flops_saved_now: float = 0.0
    forward_flops_saved_total: float = 0.0
    train_flops_saved_total: float = 0.0
    trainable_params_now: int = 0
    total_params: int = 0
    step_time_s_now: float | None = None
    full_step_time_s_now: float | None = None
    measured_time_saved_now: float | None = None
    time_saved_s_total: float = 0.0
    projected_time_saved_s_total: float = 0.0
    efficiency_total: float | None = None
    time_saved_low_s_total: float | None = None
    time_saved_high_s_total: float | None = None
    predicted_time_saved_s_total: float | None = None
    step_time_spread_now: float | None = None
    allreduce_bytes_per_step_now: int = 0
    full_allreduce_bytes_per_step_now: int = 0
    allreduce_bytes_saved_total: float = 0.0
