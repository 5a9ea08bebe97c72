"""A run's :class:`~learndrop.core.summary.RunSummary`, from the trainer's state at its end."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..config import RunConfig
from ..engine import LearnDrop
from ..environment import machine_name
from ..savings import SavingsReport
from ..summary import DroppedUnit, EpochResult, RunSummary

__all__ = ["build_summary"]


def build_summary(cfg: RunConfig, status: str, *, run_name: str, output_dir: Path | None,
                  ld: LearnDrop | None, device: str,
                  last_val: tuple[float, float, float | None], best_accuracy: float,
                  wall_time_s: float, train_time_s: float,
                  history: Sequence[EpochResult], data_time_s: float = 0.0,
                  load_per_cpu: float | None = None, world_size: int = 1) -> RunSummary:
    """The summary of a run ended with ``status``; ``ld`` is ``None`` when the run failed
    before Learn&Drop was built, ``history`` holds every complete epoch (earlier sessions'
    too). ``data_time_s`` is this session's time spent waiting for training batches,
    ``train_time_s`` its training loops' time."""
    val_loss, val_acc, val_scaled = last_val
    out = output_dir
    s = ld.savings_report() if ld is not None else None
    return RunSummary(
        run_name=run_name, status=status, output_dir=str(out) if out else "",
        model=cfg.model.name, dataset=cfg.data.dataset,
        mode=cfg.drop.mode if cfg.drop.enabled else "baseline",
        epochs=len(history), final_accuracy=val_acc, final_loss=val_loss,
        final_accuracy_scaled=val_scaled, best_accuracy=best_accuracy,
        wall_time_s=wall_time_s, train_time_s=train_time_s,
        dropped=tuple(DroppedUnit.from_dict(d) for d in ld.drop_log()) if ld else (),
        units=len(ld.units) if ld else 0,
        savings=s if s is not None else SavingsReport(),
        score_overhead=ld.score_overhead if ld else 0.0,
        history=tuple(history),
        checkpoint=str(out / "checkpoint.pt") if out else "",
        weights=str(out / "final.pt") if out else "",
        device=device,
        data_time_share=data_time_s / train_time_s if train_time_s > 0 else None,
        machine=machine_name(device),
        load_per_cpu=load_per_cpu, world_size=world_size)
