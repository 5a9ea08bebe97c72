"""One training run from a :class:`~learndrop.core.config.RunConfig`: the trainer, its
optimizer and schedule, checkpoints, the device plan, the run control, and a config's check
against the model and data catalogues."""

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
from ._distributed import Distributed, FixedShardSampler, distributed_environment
from ._optim import ProgressSchedule, build_optimizer
from ._run_checks import catalogue_problems, check_config, config_problems
from ._trainer import FitResult, Trainer

__all__ = ["Trainer", "FitResult", "RunControl", "DevicePlan",
           "available_devices", "resolve_device", "ProgressSchedule", "build_optimizer",
           "FORMAT", "save_checkpoint", "load_checkpoint", "load_initial_weights",
           "check_resumable", "checkpoint_epoch", "Distributed", "distributed_environment",
           "FixedShardSampler",
           "config_problems", "catalogue_problems", "check_config"]
