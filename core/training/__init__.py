"""One training run from a :class:`~learndrop.core.config.RunConfig`: the trainer, its
optimizer and schedule, checkpoints, the device plan and the run control."""

from ._checkpoint import (
    FORMAT,
    check_resumable,
    checkpoint_epoch,
    load_checkpoint,
    load_initial_weights,
    save_checkpoint,
)
from ._control import RunControl
from ._device import DevicePlan, available_devices, resolve_device
from ._optim import ProgressSchedule, build_optimizer
from ._trainer import FitResult, Trainer

__all__ = ["Trainer", "FitResult", "RunControl", "DevicePlan",
           "available_devices", "resolve_device", "ProgressSchedule", "build_optimizer",
           "FORMAT", "save_checkpoint", "load_checkpoint", "load_initial_weights",
           "check_resumable", "checkpoint_epoch"]
