"""The pieces a run is built from, each from the config: data, model, epochs, run folder."""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from collections.abc import Iterable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from ..config import RunConfig, cache_augment_problem
from ..data import DataBundle
from ..engine import LearnDrop
from ..errors import CheckpointError, ConfigError, DataError, LearnDropError
from ..events import Callback
from ..files import remove_stale_temps
from ..paths import runs_home
from ..runfolder import RUN_FILES, FolderLock, claim_run_folder
from ._checkpoint import load_initial_weights
from ._device import DevicePlan
from ._optim import ProgressSchedule, build_optimizer

__all__ = ["RunParts", "build_parts", "EpochPlan", "seed_everything", "check_run_name",
           "build_data", "build_model", "plan_epochs", "choose_output_dir", "make_output_dir"]


@dataclass(frozen=True)
class RunParts:
    """What a prepared trainer trains with."""

    plan: DevicePlan
    bundle: DataBundle
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: ProgressSchedule
    scaler: torch.amp.GradScaler
    ld: LearnDrop


@dataclass(frozen=True)
class EpochPlan:
    """How the training set is cut into steps."""

    samples: int
    drop_last: bool  # a last, smaller batch is dropped (only when there are several)
    steps_per_epoch: int
    total_steps: int


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_run_name(name: str) -> None:
    if name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ConfigError(f"output.name {name!r} cannot name a run folder: use letters, "
                          f"digits, dots, dashes or underscores, no slashes",
                          field="output.name")


AUTO_FREEZE = ("drop.mode=auto runs freeze, not cache: random augmentation changes the "
               "training images every epoch, so a dropped prefix's output cannot be reused")


def build_data(cfg: RunConfig) -> DataBundle:
    """The data sets; the drop policy's automatic settings made concrete (``mode=auto``:
    cache unless the training data change every epoch; ``checks_per_epoch=0``: two when the
    run starts from given weights, else one); refuses a cache-mode run on training data that
    change."""
    from ..data import build_datasets

    try:
        seed = cfg.data.seed if cfg.data.seed >= 0 else cfg.train.seed
        bundle = build_datasets(cfg.data, seed=seed)
    except OSError as exc:  # e.g. a folder this user may not read
        where = f" {exc.filename}" if exc.filename else ""
        raise DataError(f"cannot read the data{where}: {exc.strerror or exc}; check "
                        f"data.root and that you may read it") from None
    auto_mode = cfg.drop.mode == "auto"  # the fastest exact mode that applies
    cfg.drop = cfg.drop.resolved(cacheable=bundle.deterministic_train,
                                 fine_tuning=bool(cfg.model.weights))
    if auto_mode and cfg.drop.enabled and cfg.drop.mode == "freeze":
        bundle = dataclasses.replace(bundle, warnings=(*bundle.warnings, AUTO_FREEZE))
    refusal = cache_augment_problem(cfg.drop, augmented=not bundle.deterministic_train)
    if refusal is not None:
        path, message = refusal
        raise ConfigError(message, field=path)
    return bundle


def build_model(cfg: RunConfig, bundle: DataBundle, plan: DevicePlan
                ) -> tuple[nn.Module, list[str]]:
    """The model on the plan's device, and the warnings from loading its start weights."""
    from ..models import get_model

    model = get_model(cfg.model.name, num_classes=bundle.num_classes,
                      in_channels=bundle.in_channels, image_size=bundle.image_size,
                      width=cfg.model.width)
    warnings = load_initial_weights(model, cfg.model.weights) if cfg.model.weights else []
    model = model.to(plan.device)
    if plan.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, warnings


def plan_epochs(cfg: RunConfig, bundle: DataBundle, world_size: int = 1) -> EpochPlan:
    """Steps per epoch of one process; with ``world_size`` processes each trains on its
    share of the samples (see :mod:`._distributed`)."""
    bs = cfg.train.batch_size
    n = len(cast(Sized, bundle.train))
    if n == 0:
        raise LearnDropError("the training set is empty: check data.root and data.limit")
    n = math.ceil(n / world_size)
    drop_last = n > bs
    per_epoch = n // bs if drop_last else math.ceil(n / bs)
    return EpochPlan(n, drop_last, per_epoch, per_epoch * cfg.train.epochs)


def choose_output_dir(cfg: RunConfig, run_name: str) -> Path:
    """Where the run folder is meant to be, as an absolute path (so the store finds it from
    any working folder); an empty name becomes model-dataset-time. The folder is claimed when
    the run starts (:func:`make_output_dir`), ``-2``, ``-3``, ... appended when taken."""
    if not run_name:
        model = cfg.model.name.replace(":", "-")  # timm:resnet18 -> timm-resnet18
        run_name = f"{model}-{cfg.data.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    base = Path(cfg.output.dir).expanduser() if cfg.output.dir else runs_home()
    return Path(os.path.abspath(base)) / run_name


def make_output_dir(folder: Path, existing: bool) -> tuple[Path, FolderLock]:
    """Claim a new run folder named like ``folder`` (atomically: ``name-2`` when taken), or,
    with ``existing``, the run folder ``folder`` a resumed run continues in; either is locked
    for this run. Returns the folder and its lock."""
    try:
        if not existing:
            folder = claim_run_folder(folder.parent, folder.name)
        elif not folder.is_dir():
            raise CheckpointError(f"the run folder {folder} does not exist any more: start "
                                  f"the run again with 'learndrop train'")
        lock = FolderLock(folder).acquire()
        if existing:  # what a killed run may have left half-written
            remove_stale_temps(folder, RUN_FILES)
    except OSError as exc:
        raise CheckpointError(
            f"cannot create the run folder {folder}: {exc.strerror or type(exc).__name__}; "
            f"set --output-dir to a folder you can write to") from None
    return folder, lock


def build_parts(cfg: RunConfig, plan: DevicePlan, bundle: DataBundle, model: nn.Module,
                epochs: EpochPlan, callbacks: Iterable[Callback], *, ddp: bool = False
                ) -> RunParts:
    """The optimizer, its schedule, the loss scaler and Learn&Drop (with the config's drop
    policy as it is) around ``model``; ``ddp``: data-parallel in the current process
    group."""
    optimizer = build_optimizer(model, cfg.optim)
    schedule = ProgressSchedule(optimizer, cfg.optim, cfg.train.epochs)
    dev = plan.device
    use_scaler = plan.amp and dev.type == "cuda" and plan.amp_dtype == torch.float16
    scaler = torch.amp.GradScaler(dev.type, enabled=use_scaler)
    example = bundle.train[0][0].unsqueeze(0).to(dev)
    ld = LearnDrop(model, optimizer, policy=cfg.drop, example_input=example,
                   num_samples=epochs.samples, eval_samples=len(bundle.val),  # type: ignore
                   steps_per_epoch=epochs.steps_per_epoch,
                   total_steps=epochs.total_steps, sync_every=cfg.train.log_every,
                   callbacks=callbacks, ddp=ddp)
    return RunParts(plan, bundle, model, optimizer, schedule, scaler, ld)
