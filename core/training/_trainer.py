"""The trainer: data, model, optimizer and Learn&Drop from one :class:`RunConfig`.

``Trainer(cfg, callbacks, control).fit()`` runs a whole training, firing the callbacks'
hooks in the calling thread. It checks ``control`` at batch boundaries (pause, stop, cancel,
manual unit actions), reads values from the device only every ``train.log_every`` batches
and at epoch ends, writes a checkpoint atomically every ``output.checkpoint_every`` epochs,
and resumes from one with the drop state and optimizer groups restored together.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..config import RunConfig, config_to_toml, duration_seconds
from ..engine import LearnDrop
from ..environment import machine_load
from ..errors import CheckpointError, DeviceError, LearnDropError
from ..events import Callback, FitStart, UserAction, call_hook, epoch_of_step
from ..files import atomic_write_text
from ..runfolder import FolderLock
from ..summary import EpochResult, RunSummary
from ._clock import RunClock
from ._control import RunControl
from ._device import DevicePlan, resolve_device
from ._distributed import Distributed, is_lost_rank, lost_rank
from ._ending import checkpoint_partial, fail, finish
from ._epoch import end_epoch, train_epoch
from ._evaluate import evaluate_run
from ._memory import out_of_memory_error
from ._parallel import evaluated_everywhere, join, read_checkpoint
from ._resume import restore_checkpoint
from ._run_checks import check_config
from ._setup import (
    RunParts,
    build_data,
    build_model,
    build_parts,
    check_run_name,
    choose_output_dir,
    make_output_dir,
    plan_epochs,
    seed_everything,
)
from ._shard import Shard, shard
from ._summary import build_summary

__all__ = ["Trainer", "FitResult"]


@dataclass(frozen=True)
class FitResult:
    status: str
    message: str
    summary: RunSummary = field(default_factory=RunSummary)


def _is_out_of_memory(exc: BaseException) -> bool:
    """Out of memory, however PyTorch's allocators say it (the CPU's is a RuntimeError)."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "DefaultCPUAllocator" in text or "not enough memory" in text
        or "out of memory" in text.lower())


class Trainer:
    """Trains ``cfg``'s model on ``cfg``'s data with Learn&Drop.

    ``time_budget_s`` (or the config's ``train.time_budget``) gives the run a wall-clock
    budget: the learning-rate schedule follows the run's training time through the budget
    (pauses excluded, a resumed run's earlier sessions included), so a run whose steps get
    cheaper as units drop fits more steps into it, and training ends when it is spent or after
    ``train.epochs`` epochs, whichever comes first. ``learndrop bench`` gives its
    time-matched baseline Learn&Drop's wall time this way.
    ``resume_from``: a checkpoint written by an earlier run of the same config.
    ``finish_complete``: when that checkpoint is already at the last epoch (the process ended
    after training but before writing the final files), end the run as finished from it
    instead of refusing.
    ``run_folder``: continue in this existing run folder (the folder of the recorded run that
    ``resume_from`` belongs to). Without it a run always gets a new folder of its own, so a
    folder that a run did not create is never written into.
    """

    def __init__(self, cfg: RunConfig, callbacks: list[Callback] | tuple[Callback, ...] = (),
                 control: RunControl | None = None, *, resume_from: str | Path | None = None,
                 time_budget_s: float | None = None, run_name: str | None = None,
                 finish_complete: bool = False, run_folder: str | Path | None = None) -> None:
        self.cfg = check_config(cfg.copy())
        self.callbacks: list[Callback] = list(callbacks)
        self.control = control or RunControl()
        self.resume_from = Path(resume_from) if resume_from else None
        self.time_budget_s = (time_budget_s if time_budget_s is not None
                              else duration_seconds(self.cfg.train.time_budget))
        self.run_name = run_name or self.cfg.output.name or ""
        self.finish_complete = finish_complete
        self.run_folder = Path(os.path.abspath(run_folder)) if run_folder else None
        if self.run_folder is not None and not run_name:
            self.run_name = self.run_folder.name
        self.output_dir: Path | None = None
        self._folder_lock: FolderLock | None = None
        self.warnings: list[str] = []
        # set by prepare()
        self._parts: RunParts | None = None
        self._prepared = False
        self.drop_last = False
        self.steps_per_epoch = 0
        self.total_steps = 0
        self.start_epoch = 0  # complete epochs before this session (a resumed run's)
        # results, this session's and (resumed) earlier sessions'
        self.history: list[EpochResult] = []
        self.best_accuracy = 0.0
        self.last_val: tuple[float, float, float | None] = (math.nan, math.nan, None)
        self.clock = RunClock()
        self._loads: list[float] = []  # the machine's load per CPU, sampled each epoch
        self._resumed_history: list[EpochResult] = []
        # a data-parallel run (see ._distributed): this process's rank and its share of
        # the training data
        self.dist: Distributed | None = None
        self.shard: Shard | None = None

    @property
    def ld(self) -> LearnDrop | None:
        return self._parts.ld if self._parts else None

    @property
    def model(self) -> nn.Module | None:
        return self._parts.model if self._parts else None

    @property
    def plan(self) -> DevicePlan | None:
        return self._parts.plan if self._parts else None

    @property
    def parts(self) -> RunParts:
        """The run's parts (data, model, optimizer, Learn&Drop...), once prepared."""
        if self._parts is None:
            raise RuntimeError("the trainer is not prepared: call prepare() or fit()")
        return self._parts

    @property
    def prepared(self) -> bool:
        """Whether :meth:`prepare` has built the run."""
        return self._prepared

    # ---- set-up -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Build everything; raises a LearnDropError for bad input before training starts."""
        if self._prepared:
            return
        cfg = self.cfg
        check_run_name(self.run_name)
        seed_everything(cfg.train.seed)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        plan = resolve_device(cfg.train.device, cfg.train.amp, cfg.train.channels_last)
        plan = join(self, plan)
        bundle = build_data(cfg)
        self.warnings.extend(bundle.warnings)
        model, warnings = build_model(cfg, bundle, plan)
        self.warnings.extend(warnings)
        epochs = plan_epochs(cfg, bundle, self.dist.world_size if self.dist else 1)
        self.drop_last = epochs.drop_last
        self.steps_per_epoch, self.total_steps = epochs.steps_per_epoch, epochs.total_steps
        self.output_dir = self.run_folder or choose_output_dir(cfg, self.run_name)
        if self.dist is not None:
            self.shard = shard(self.dist, bundle, seed=cfg.train.seed,
                               fixed=cfg.drop.mode == "cache")
        self.run_name = self.output_dir.name
        self._parts = build_parts(cfg, plan, bundle, model, epochs, self.callbacks,
                                  ddp=self.dist is not None)
        self.start_epoch = 0
        if self.resume_from is not None:
            self._resume(self.resume_from)
        self._prepared = True

    def _resume(self, path: Path) -> None:
        r = self.parts
        resumed = restore_checkpoint(path, self.cfg, model=r.model, ld=r.ld,
                                     optimizer=r.optimizer, scaler=r.scaler,
                                     device=r.plan.device,
                                     data=read_checkpoint(self, path))
        self.start_epoch = resumed.start_epoch
        self.best_accuracy = resumed.best_accuracy
        self._resumed_history = resumed.history
        self.clock.resume(resumed.elapsed_s, resumed.train_time_s, resumed.data_time_s)
        if self.start_epoch >= self.cfg.train.epochs and self.finish_complete:
            self.last_val = resumed.last_val
        elif self.start_epoch >= self.cfg.train.epochs:
            raise CheckpointError(f"{path} is already at the last epoch "
                                  f"({self.start_epoch}); raise --epochs to train further")

    # ---- the run ----------------------------------------------------------------------------
    def fit(self) -> FitResult:
        """Run training. Always fires ``on_fit_end``; raises LearnDropError on failure."""
        try:
            return self._fit()
        finally:
            self.release_folder()

    def _fit(self) -> FitResult:
        self.clock.restart()
        self.history = []
        self.best_accuracy = 0.0
        self.last_val = (math.nan, math.nan, None)
        started = False
        try:
            self.prepare()
            self._start()
            started = True
            status = self._train()
        except torch.OutOfMemoryError as exc:
            err = self._out_of_memory(exc)
            self._fail(err, started)
            raise err from None
        except LearnDropError as exc:
            self._fail(exc, started)
            raise
        except KeyboardInterrupt:
            self._finish("stopped", "interrupted from the keyboard")
            raise
        except Exception as exc:
            if self.dist is not None and is_lost_rank(exc):
                lost = lost_rank(exc)
                self._fail(lost, started)
                raise lost from None
            if _is_out_of_memory(exc):  # the CPU allocator raises a plain RuntimeError
                err = self._out_of_memory(exc)
                self._fail(err, started)
                raise err from None
            self._fail(exc, started)
            raise
        finally:
            if self.dist is not None:
                if self._parts is not None and self._parts.ld.distributed is not None:
                    self._parts.ld.distributed.release()
                self.dist.close()
        message = {"finished": "training finished", "stopped": "stopped; checkpoint kept",
                   "cancelled": "cancelled; run discarded"}[status]
        return self._finish(status, message)

    def _out_of_memory(self, exc: BaseException) -> DeviceError:
        parts = self._parts
        return out_of_memory_error(self.cfg, exc, device=parts.plan.device if parts else None,
                                   model=parts.model if parts else None,
                                   optimizer=parts.optimizer if parts else None)

    def _start(self) -> None:
        """Claim (or lock) the run folder, save the config, pass on early warnings, fire
        on_fit_start."""
        r = self.parts
        assert self.output_dir is not None
        if self.writes:
            self.output_dir, self._folder_lock = make_output_dir(
                self.output_dir, existing=self.run_folder is not None)
            atomic_write_text(self.output_dir / "config.toml", config_to_toml(self.cfg))
        if self.dist is not None:  # rank 0's folder (a taken name gets -2 there)
            self.output_dir = self.dist.from_main(self.output_dir)
        self.run_name = self.output_dir.name
        for w in self.warnings:
            call_hook(self.callbacks, "on_warning", w)
        call_hook(self.callbacks, "on_fit_start", FitStart(
            run_name=self.run_name, config=self.cfg.to_dict(), units=r.ld.unit_infos(),
            epochs=self.cfg.train.epochs, steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps, device=self._device_text(),
            mode=self.cfg.drop.mode, drop_enabled=self.cfg.drop.enabled,
            total_params=sum(p.numel() for p in r.model.parameters()),
            forward_flops=r.ld.total_forward_flops, output_dir=str(self.output_dir),
            resumed_from_epoch=self.start_epoch))
        if self.start_epoch > 0:  # someone asked for this session: a user's action too
            step = self.start_epoch * self.steps_per_epoch
            call_hook(self.callbacks, "on_user_action", UserAction(
                action="resume_run", unit="", step=step,
                epoch=epoch_of_step(step, self.steps_per_epoch), time=time.time()))

    def _train(self) -> str:
        """Every remaining epoch; returns finished, stopped or cancelled."""
        self._loads = []
        self.sample_load()
        status = "finished"
        for epoch in range(self.start_epoch, self.cfg.train.epochs):
            call_hook(self.callbacks, "on_epoch_start", epoch)
            run = train_epoch(self, epoch)
            if run.ended and self.control.cancel_requested:
                return "cancelled"
            self.clock.add_training(time.perf_counter() - run.started)
            if run.seen == 0:
                status = "stopped" if run.ended else status
                break
            end_epoch(self, epoch, run)
            if run.ended:
                status = "stopped"
                break
            if run.budget_out or self.budget_spent():
                break
        if status == "stopped":
            # a stop mid-epoch keeps the last complete epoch's checkpoint and the weights now
            checkpoint_partial(self)
        return status

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (rank 0 of a data-parallel run)."""
        return self.dist is None or self.dist.is_main

    def _device_text(self) -> str:
        text = self.plan.description if self.plan else ""
        return f"{text}, {self.dist.description}" if self.dist is not None else text

    def report_requests(self) -> None:
        """Fire on_user_action for each request of the run control since the last time, at
        the step the run is at now."""
        requests = self.control.take_requests()
        if not requests:
            return
        step = self.ld.step_count if self.ld is not None else 0
        position = epoch_of_step(step, self.steps_per_epoch)
        for action, unit, when in requests:
            call_hook(self.callbacks, "on_user_action",
                      UserAction(action=action, unit=unit, step=step, epoch=position,
                                 time=when))

    def hold_while_paused(self, paused: Callable[[], bool]) -> None:
        """At a batch boundary: hold the run while ``paused()`` says so (asked first, then
        after each wait). Reports the pause at the step where the run holds, and keeps the
        paused time out of the run's elapsed time and the engine's step times."""
        if not paused():
            return
        self.report_requests()  # the pause, at the step where the run holds
        with self.clock.paused():  # a pause is not training time
            while True:
                self.control.wait_while_paused(0.2)
                if not paused():
                    break
        self.parts.ld.pause_timing()

    # ---- helpers ------------------------------------------------------------------------------
    def set_lr(self, step: int) -> float:
        """Set the learning rate for optimizer step ``step``; returns it."""
        if self.time_budget_s:
            progress = self.clock.total_elapsed() / self.time_budget_s
        else:
            progress = step / max(self.total_steps, 1)
        return self.parts.schedule.set_progress(progress)

    def budget_spent(self) -> bool:
        """Whether a time-budgeted run's budget is spent (a data-parallel run has none: see
        _parallel.join)."""
        budget = self.time_budget_s
        return bool(budget) and budget is not None and self.clock.total_elapsed() >= budget

    def sample_load(self) -> None:
        """Sample the machine's load per CPU (the summary reports the mean)."""
        load = machine_load()
        if load is not None:
            self._loads.append(load)

    def elapsed(self) -> float:
        """Seconds of this session, pauses excluded."""
        return self.clock.elapsed()

    def eta(self, epoch: int, batch: int) -> float:
        """Seconds left after ``batch`` batches of epoch index ``epoch``: the steps left at
        the current measured step time, plus this session's time outside the steps per
        step (the average time per step until the step time is measured)."""
        done = epoch * self.steps_per_epoch + batch
        done_here = done - self.start_epoch * self.steps_per_epoch
        if self.time_budget_s:
            return max(self.time_budget_s - self.clock.total_elapsed(), 0.0)
        if done_here <= 0:
            return float("nan")
        remaining = self.total_steps - done
        ld = self.parts.ld
        meter = ld.meter  # step times only: no pass over the parameters here
        now = meter.step_time if meter is not None else None
        if now:
            # the current step time (it falls as units drop), plus the time outside the
            # steps (validation, checkpoints) spread over the steps done
            outside = max(self.elapsed() - ld.train_time_s, 0.0) / done_here
            return max(remaining * (now + outside), 0.0)
        return max(remaining * self.elapsed() / done_here, 0.0)

    def evaluate(self) -> tuple[float, float, float | None]:
        """Validation loss and accuracy of the full model; in skip mode also the accuracy of
        the scaled-down network (dropped blocks bypassed)."""
        r = self.parts
        data = r.bundle.val if self.dist is None else self.dist.val_shard(r.bundle.val)
        loss, acc, scaled = evaluate_run(r.model, r.ld, data, r.plan,
                                         batch_size=max(self.cfg.train.batch_size, 256),
                                         num_workers=self.cfg.data.num_workers)
        if self.dist is None:
            return loss, acc, scaled
        return evaluated_everywhere(self, len(data), loss, acc, scaled)  # type: ignore

    # ---- the end ----------------------------------------------------------------------------
    def all_history(self) -> list[EpochResult]:
        """The epochs of earlier sessions (a resumed run's) and of this one."""
        return [*self._resumed_history, *self.history]

    def summary(self, status: str) -> RunSummary:
        """The run's summary as it stands, ended with ``status``."""
        return build_summary(
            self.cfg, status, run_name=self.run_name, output_dir=self.output_dir, ld=self.ld,
            device=self._device_text(), last_val=self.last_val,
            best_accuracy=self.best_accuracy, wall_time_s=self.clock.total_elapsed(),
            train_time_s=self.clock.total_training(), history=self.all_history(),
            data_time_s=self.clock.total_data(),
            load_per_cpu=sum(self._loads) / len(self._loads) if self._loads else None,
            world_size=self.dist.world_size if self.dist else 1)

    def _finish(self, status: str, message: str) -> FitResult:
        return FitResult(status, message, finish(self, status, message))

    def _fail(self, exc: BaseException, started: bool) -> None:
        fail(self, exc, started)

    def release_folder(self) -> None:
        """Unlock the run folder (once the run is over)."""
        lock, self._folder_lock = self._folder_lock, None
        if lock is not None:
            lock.release()
