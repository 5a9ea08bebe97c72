"""A run's summary: one typed record, written once by the trainer and read by everyone else.

The trainer builds a :class:`RunSummary` when a run ends; it travels in ``FitEnd.summary``,
is printed by the command line, saved as ``summary.json`` in the run folder and stored in the
run store as JSON (:meth:`RunSummary.to_dict`). Its savings are the engine's own record,
:class:`~learndrop.core.savings.SavingsReport`, at the run's end, under the key ``savings``.
Reading goes through :meth:`RunSummary.from_dict`, which accepts what older versions stored:
a missing key or a value of the wrong type takes the field's default, keys it does not know
are ignored, and the savings older versions kept as top-level keys (:data:`OLD_SAVINGS_KEYS`)
are read into the record.

Shares (``final_accuracy``, the savings' ``*_flops_saved_*``, ``score_overhead``,
``data_time_share``) are fractions (0.25 = 25%); times are seconds; ``final_accuracy`` and
``final_loss`` are NaN when no validation ran; ``None`` marks a figure that was never measured.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .savings import SavingsReport

__all__ = ["RunSummary", "DroppedUnit", "EpochResult", "OLD_SAVINGS_KEYS"]

#: the summary keys older versions kept the savings under -> the savings record's fields
#: (their ``forward_flops_saved``/``train_flops_saved`` covered the whole run; the ``final_``
#: ones were the per-step figures at its end)
OLD_SAVINGS_KEYS: dict[str, str] = {
    "forward_flops_saved": "forward_flops_saved_total",
    "train_flops_saved": "train_flops_saved_total",
    "final_forward_flops_saved": "forward_flops_saved_now",
    "final_train_flops_saved": "train_flops_saved_now",
    "trainable_params": "trainable_params_now",
    "total_params": "total_params",
    "step_time_s": "step_time_s_now",
    "full_step_time_s": "full_step_time_s_now",
    "measured_time_saved": "measured_time_saved_now",
    "time_saved_s": "time_saved_s_total",
    "efficiency": "efficiency_total",
    "time_saved_low_s": "time_saved_low_s_total",
    "time_saved_high_s": "time_saved_high_s_total",
    "predicted_time_saved_s": "predicted_time_saved_s_total",
    "step_time_spread": "step_time_spread_now",
    "allreduce_bytes_per_step": "allreduce_bytes_per_step_now",
    "full_allreduce_bytes_per_step": "full_allreduce_bytes_per_step_now",
    "allreduce_bytes_saved": "allreduce_bytes_saved_total",
}

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
    ``savings`` is the engine's savings record at the run's end: its ``_now`` figures are
    the per-step ones in the final drop state, its ``_total`` ones cover the whole run (a
    failed run that never built the engine has the empty record). ``units`` counts the head
    too. A data-parallel run has ``world_size`` processes (its all-reduce figures are in
    ``savings``). ``data_time_share`` is the share of the training loop's time spent
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
    savings: SavingsReport = field(default_factory=SavingsReport)
    score_overhead: float = 0.0
    history: tuple[EpochResult, ...] = ()
    checkpoint: str = ""
    weights: str = ""
    device: str = ""
    data_time_share: float | None = None
    machine: str = ""
    load_per_cpu: float | None = None
    world_size: int = 1
    error: str = field(default="", metadata={"omit_empty": True})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, one key per field (``error`` only when there is one); ``savings`` is a
        table of the savings record's fields."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("omit_empty") and not value:
                continue
            if isinstance(value, tuple):
                value = [v.to_dict() for v in value]
            elif isinstance(value, SavingsReport):
                value = dataclasses.asdict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Any) -> RunSummary:
        """Read a stored summary, old or new (see the module's docstring). Summaries from
        before ``wall_time_s`` was named so kept it as ``elapsed_s``; summaries from before
        the ``savings`` record kept its figures as top-level keys (:data:`OLD_SAVINGS_KEYS`)."""
        if isinstance(data, dict) and "wall_time_s" not in data and "elapsed_s" in data:
            data = dict(data, wall_time_s=data["elapsed_s"])
        if isinstance(data, dict) and "savings" not in data:
            old = {new: data[key] for key, new in OLD_SAVINGS_KEYS.items() if key in data}
            if old:
                data = dict(data, savings=old)
        return _from_dict(cls, data)


# ---- reading tolerantly --------------------------------------------------------------------
_RECORDS: dict[str, type] = {"DroppedUnit": DroppedUnit, "EpochResult": EpochResult,
                             "SavingsReport": SavingsReport}


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
    if hint is SavingsReport:
        return (True, _from_dict(SavingsReport, value)) if isinstance(value, dict) \
            else (False, None)
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
