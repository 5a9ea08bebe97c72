"""A run's summary: one typed record, written once by the trainer and read by everyone else.

The trainer builds a :class:`RunSummary` when a run ends; it travels in ``FitEnd.summary``,
is printed by the command line, saved as ``summary.json`` in the run folder and stored in the
run store as JSON (:meth:`RunSummary.to_dict`, the same keys as always). Reading goes through
:meth:`RunSummary.from_dict`, which accepts what older versions stored: a missing key or a
value of the wrong type takes the field's default, keys it does not know are ignored.

Shares (``final_accuracy``, ``*_flops_saved``, ``measured_time_saved``, ``score_overhead``,
``data_time_share``, ``step_time_spread``) are fractions (0.25 = 25%); times are seconds;
``final_accuracy`` and ``final_loss`` are NaN when no validation ran; ``None`` marks a
figure that was never measured.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["RunSummary", "DroppedUnit", "EpochResult"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class DroppedUnit:
    """One drop as the summary lists it: ``epoch`` is fractional (see :mod:`..events`)."""

    unit: str = ""
    step: int = 0
    epoch: float = 0.0
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> DroppedUnit:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class EpochResult:
    """One complete epoch: ``epoch`` is its 0-based index, like ``EpochEnd.epoch``."""

    epoch: int = 0
    train_loss: float = math.nan
    train_accuracy: float = math.nan
    val_loss: float = math.nan
    val_accuracy: float = math.nan
    val_accuracy_scaled: float | None = None
    epoch_time_s: float = 0.0
    elapsed_s: float = math.nan  # the run's wall time at the end of this epoch

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> EpochResult:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class RunSummary:
    """How a run ended and what it achieved.

    ``status``: finished, stopped, cancelled or failed (``error`` says why it failed).
    ``mode`` is the drop mode, or ``baseline`` when dropping was off. ``epochs`` counts the
    complete epochs, earlier sessions of a resumed run included, as does ``history``.
    ``forward_flops_saved``/``train_flops_saved`` cover the whole run; the ``final_`` ones
    are the per-step figures at its end. ``units`` counts the head too. A data-parallel
    run has ``world_size`` processes; it all-reduced ``full_allreduce_bytes_per_step`` bytes
    of gradients per step before any drop and ``allreduce_bytes_per_step`` at its end, and
    saved ``allreduce_bytes_saved`` of that volume over the run (0 for one process).

    Time saved is measured so that machine load cannot fool it (see the engine's savings
    meter): ``time_saved_s`` lies in ``time_saved_low_s`` .. ``time_saved_high_s`` and
    ``predicted_time_saved_s`` is what the FLOPs saved predict for the same steps;
    ``efficiency`` is given only when the measured saving exceeds its noise.
    ``step_time_spread`` is how much one step's time varies (robust standard deviation
    over the median). ``data_time_share`` is the share of the training loop's time spent
    waiting for batches. ``machine`` names the host, CPU and device, ``load_per_cpu`` is
    the machine's mean load during the run (1-minute load average per CPU): two runs'
    times compare only on the same machine under a similar load.
    """

    run_name: str = ""
    status: str = ""
    output_dir: str = ""
    model: str = ""
    dataset: str = ""
    mode: str = ""
    epochs: int = 0
    final_accuracy: float = math.nan
    final_loss: float = math.nan
    final_accuracy_scaled: float | None = None
    best_accuracy: float = 0.0
    wall_time_s: float = 0.0
    train_time_s: float = 0.0
    dropped: tuple[DroppedUnit, ...] = ()
    units: int = 0
    forward_flops_saved: float = 0.0
    train_flops_saved: float = 0.0
    final_forward_flops_saved: float = 0.0
    final_train_flops_saved: float = 0.0
    trainable_params: int = 0
    total_params: int = 0
    step_time_s: float | None = None
    full_step_time_s: float | None = None
    measured_time_saved: float | None = None
    time_saved_s: float = 0.0
    efficiency: float | None = None
    score_overhead: float = 0.0
    history: tuple[EpochResult, ...] = ()
    checkpoint: str = ""
    weights: str = ""
    device: str = ""
    time_saved_low_s: float | None = None
    time_saved_high_s: float | None = None
    predicted_time_saved_s: float | None = None
    step_time_spread: float | None = None
    data_time_share: float | None = None
    machine: str = ""
    load_per_cpu: float | None = None
    world_size: int = 1
    allreduce_bytes_per_step: int = 0
    full_allreduce_bytes_per_step: int = 0
    allreduce_bytes_saved: float = 0.0
    error: str = field(default="", metadata={"omit_empty": True})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the keys the run store and ``summary.json`` have always had
        (``error`` only when there is one)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("omit_empty") and not value:
                continue
            if isinstance(value, tuple):
                value = [v.to_dict() for v in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Any) -> RunSummary:
        """Read a stored summary, old or new (see the module's docstring). Summaries from
        before ``wall_time_s`` was named so kept it as ``elapsed_s``."""
        if isinstance(data, dict) and "wall_time_s" not in data and "elapsed_s" in data:
            data = dict(data, wall_time_s=data["elapsed_s"])
        return _from_dict(cls, data)


# ---- reading tolerantly --------------------------------------------------------------------
_RECORDS: dict[str, type] = {"DroppedUnit": DroppedUnit, "EpochResult": EpochResult}


def _from_dict(cls: type[_T], data: Any) -> _T:
    if not isinstance(data, dict):
        return cls()
    hints = typing.get_type_hints(cls, localns=_RECORDS)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            ok, value = _convert(data[f.name], hints[f.name])
            if ok:
                values[f.name] = value
    return cls(**values)


def _convert(value: Any, hint: Any) -> tuple[bool, Any]:
    """``(True, value as hint)`` when ``value`` fits ``hint``, else ``(False, None)``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:  # tuple[Record, ...]
        record = args[0]
        if not isinstance(value, (list, tuple)):
            return False, None
        return True, tuple(record.from_dict(v) for v in value if isinstance(v, dict))
    if type(None) in args:  # X | None
        if value is None:
            return True, None
        return _convert(value, next(a for a in args if a is not type(None)))
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # NaN is read as the one ``math.nan``, the defaults' own, so a summary read back
            # equals the one written (two distinct NaN objects never compare equal)
            return True, math.nan if math.isnan(value) else float(value)
        return False, None
    if hint is int:
        if isinstance(value, bool):
            return False, None
        if isinstance(value, int):
            return True, value
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return False, None
    if hint is str:
        return (True, value) if isinstance(value, str) else (False, None)
    return False, None
