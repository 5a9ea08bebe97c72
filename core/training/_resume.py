"""Resuming: what a checkpoint restores into the model, the optimizer and Learn&Drop, and
the run's figures it carries from earlier sessions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import RunConfig
from ..engine import LearnDrop
from ..errors import CheckpointError, LearnDropError, first_line
from ..summary import EpochResult
from ._checkpoint import check_resumable, load_checkpoint

__all__ = ["Resumed", "restore_checkpoint"]


@dataclass(frozen=True)
class Resumed:
    """What a checkpoint brings besides the weights and states it restores."""

    start_epoch: int  # complete epochs already trained
    best_accuracy: float
    history: list[EpochResult]
    elapsed_s: float
    train_time_s: float = 0.0  # of elapsed_s, in training loops
    data_time_s: float = 0.0  # of train_time_s, waiting for batches

    @property
    def last_val(self) -> tuple[float, float, float | None]:
        """The last epoch's validation loss, accuracy and scaled-down accuracy."""
        last = self.history[-1] if self.history else EpochResult()
        return last.val_loss, last.val_accuracy, last.val_accuracy_scaled


def restore_checkpoint(path: Path, cfg: RunConfig, *, model: nn.Module, ld: LearnDrop,
                       optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                       device: torch.device, data: dict[str, Any] | None = None) -> Resumed:
    """Load ``path`` into the model, Learn&Drop (first: the optimizer's groups must match),
    the optimizer and the scaler, and the random state. Refuses a checkpoint of other model
    or data settings. ``data``: the checkpoint already read (a data-parallel run's rank 0
    reads it and passes it on to the others)."""
    if data is None:
        data = load_checkpoint(path, map_location=device)
    epoch = check_resumable(data, path)  # every field checked before any is used
    saved = data.get("config", {})
    try:  # settings added since the checkpoint was written take their defaults
        saved = RunConfig.from_dict(saved).to_dict()
    except LearnDropError:
        pass
    for section in ("model", "data"):
        if saved.get(section) != cfg.to_dict()[section]:
            raise CheckpointError(f"{path} was trained with other {section} settings; "
                                  f"resume with the config saved in its run folder")
    try:
        model.load_state_dict(data["model"])
        ld.load_state_dict(data["learndrop"])
        optimizer.load_state_dict(data["optimizer"])
        scaler.load_state_dict(data["scaler"])
        if "torch_rng" in data:
            torch.set_rng_state(data["torch_rng"].cpu())
        history = [EpochResult.from_dict(h) for h in data.get("history", [])]
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError,
            AssertionError, NotImplementedError) as exc:  # a damaged field in a state
        raise CheckpointError(f"{path} does not fit this model or is damaged "
                              f"({first_line(exc)[:120]})") from None
    return Resumed(start_epoch=epoch,
                   best_accuracy=float(data.get("best_accuracy", 0.0)),
                   history=history,
                   elapsed_s=float(data.get("elapsed_s", 0.0)),
                   train_time_s=float(data.get("train_time_s", 0.0)),
                   data_time_s=float(data.get("data_time_s", 0.0)))
