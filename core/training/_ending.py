"""The trainer's checkpoints and the end of its run: finished, stopped, cancelled or failed.

Each function takes the trainer first (as :class:`~._run.TrainerRun`, its public side). Only
the process that writes the run's files (rank 0 of a data-parallel run) writes checkpoints and
final files.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import torch

from ..config import config_to_toml
from ..errors import LearnDropError
from ..events import CheckpointSaved, FitEnd, call_hook
from ..files import atomic_write_text
from ..runfolder import remove_run_files
from ..summary import RunSummary
from ._checkpoint import save_checkpoint
from ._run import TrainerRun

__all__ = ["checkpoint", "checkpoint_partial", "finish", "fail"]


def _payload(trainer: TrainerRun, epoch: int) -> dict[str, Any]:
    r = trainer.parts
    return {"epoch": epoch, "run_name": trainer.run_name, "config": trainer.cfg.to_dict(),
            "model": r.model.state_dict(), "optimizer": r.optimizer.state_dict(),
            "scaler": r.scaler.state_dict(), "learndrop": r.ld.state_dict(),
            "best_accuracy": trainer.best_accuracy,
            # earlier sessions' epochs and time too, so a second resume loses neither
            "history": [h.to_dict() for h in trainer.all_history()],
            "elapsed_s": trainer.clock.total_elapsed(),
            "train_time_s": trainer.clock.total_training(),
            "data_time_s": trainer.clock.total_data(),
            "torch_rng": torch.get_rng_state()}


def checkpoint(trainer: TrainerRun, epoch: int) -> None:
    """Save the resumable checkpoint after ``epoch`` complete epochs."""
    assert trainer.output_dir is not None
    if not trainer.writes:
        return
    path = trainer.output_dir / "checkpoint.pt"
    save_checkpoint(path, _payload(trainer, epoch))
    call_hook(trainer.callbacks, "on_checkpoint",
              CheckpointSaved(epoch=epoch, step=trainer.parts.ld.step_count,
                              path=str(path)))


def checkpoint_partial(trainer: TrainerRun) -> None:
    """On stop: save the current weights too (the resumable checkpoint stays at the last
    complete epoch, so a resume repeats exactly the same epochs)."""
    assert trainer.output_dir is not None
    if not trainer.writes:
        return
    save_checkpoint(trainer.output_dir / "stopped.pt",
                    {"model": trainer.parts.model.state_dict(), "epoch": -1})
    if not (trainer.output_dir / "checkpoint.pt").exists():
        checkpoint(trainer, trainer.start_epoch)


def finish(trainer: TrainerRun, status: str, message: str) -> RunSummary:
    """End the run with ``status``: write (or, cancelled, remove) its files and fire
    on_fit_end; returns the run's summary."""
    trainer.report_requests()  # asked after the last batch (during validation, say)
    summary = trainer.summary(status)
    model = trainer.model
    output_dir = trainer.output_dir
    if not trainer.writes:
        pass
    elif status == "cancelled" and output_dir is not None:
        trainer.release_folder()
        remove_run_files(output_dir)  # what the run wrote, nothing else
        summary = dataclasses.replace(summary, output_dir="")
    elif output_dir is not None and model is not None and output_dir.exists():
        try:
            if status == "finished":
                save_checkpoint(output_dir / "final.pt",
                                {"model": model.state_dict(), "epoch": -1})
            atomic_write_text(output_dir / "summary.json",
                              json.dumps(summary.to_dict(), indent=2, default=str))
            _save_pins(trainer)
        except LearnDropError as exc:  # e.g. the disk filled up: the run ends as failed
            fail(trainer, exc, True)
            raise
    call_hook(trainer.callbacks, "on_fit_end", FitEnd(status=status, message=message,
                                                      summary=summary))
    return summary


def _save_pins(trainer: TrainerRun) -> None:
    """Units pinned or unpinned by hand during the run: the run folder's config.toml
    keeps the pins the run ended with, so that a resume or a new run from it repeats
    them."""
    ld = trainer.ld
    if ld is None or trainer.output_dir is None:
        return
    pinned = [u.name for u in ld.units if ld.is_pinned(u.name)]
    if set(pinned) != set(trainer.cfg.drop.pinned):
        cfg = trainer.cfg.copy()
        cfg.drop.pinned = pinned
        atomic_write_text(trainer.output_dir / "config.toml", config_to_toml(cfg))


def fail(trainer: TrainerRun, exc: BaseException, started: bool) -> None:
    """Fire on_fit_end for a run that failed with ``exc``."""
    trainer.report_requests()
    message = str(exc) if isinstance(exc, LearnDropError) else (
        f"internal error: {type(exc).__name__}: {exc}".splitlines()[0])
    summary = trainer.summary("failed") if trainer.prepared else RunSummary(status="failed")
    call_hook(trainer.callbacks, "on_fit_end", FitEnd(
        status="failed", message=message,
        summary=dataclasses.replace(summary, error=message)))
