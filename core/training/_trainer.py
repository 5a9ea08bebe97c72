"""The trainer: data, model, optimizer and Learn&Drop from one :class:`RunConfig`.

``Trainer(cfg, callbacks, control).fit()`` runs a whole training, firing the callbacks'
hooks in the calling thread. It checks ``control`` at batch boundaries (pause, stop, cancel,
manual unit actions), reads values from the device only every ``train.log_every`` batches
and at epoch ends, writes a checkpoint atomically every ``output.checkpoint_every`` epochs,
and resumes from one with the drop state and optimizer groups restored together.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..config import RunConfig, config_to_toml
from ..data import fast_batches
from ..engine import LearnDrop
from ..environment import machine_load
from ..errors import CheckpointError, DeviceError, LearnDropError, TrainingError
from ..events import (
    Callback,
    CheckpointSaved,
    EpochEnd,
    FitEnd,
    FitStart,
    Progress,
    UserAction,
    call_hook,
    display_epoch,
    epoch_of_step,
)
from ..files import atomic_write_text
from ..runfolder import FolderLock, remove_run_files
from ..summary import EpochResult, RunSummary
from ._checkpoint import load_checkpoint, save_checkpoint
from ._control import RunControl
from ._device import DevicePlan, resolve_device
from ._distributed import Distributed, is_lost_rank, join_process_group, lost_rank
from ._evaluate import evaluate_run
from ._resume import restore_checkpoint
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
from ._summary import build_summary

__all__ = ["Trainer", "FitResult"]


@dataclass(frozen=True)
class FitResult:
    status: str
    message: str
    summary: RunSummary = field(default_factory=RunSummary)


@dataclass
class _EpochRun:
    """One epoch's training pass: device-side sums (read once, at its end) and how it ended."""

    started: float
    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int = 0
    ended: bool = False  # stopped or cancelled at a batch boundary
    budget_out: bool = False  # a time-budgeted run's budget ran out


class _TimedBatches:
    """Iterates ``batches`` and adds the time spent waiting for each batch to ``spent``."""

    def __init__(self, batches: Any, spent: list[float]) -> None:
        self._it = iter(batches)
        self._spent = spent

    def __iter__(self) -> _TimedBatches:
        return self

    def __next__(self) -> Any:
        t = time.perf_counter()
        try:
            return next(self._it)
        finally:
            self._spent[0] += time.perf_counter() - t


@dataclass
class _Window:
    """The batches since the last progress report."""

    loss: torch.Tensor
    n: int
    started: float


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

    ``time_budget_s`` turns the run into a time-budgeted baseline: the learning-rate schedule
    follows wall-clock progress through the budget and training ends when it is spent.
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
        self.cfg = cfg.copy().check()
        self.callbacks: list[Callback] = list(callbacks)
        self.control = control or RunControl()
        self.resume_from = Path(resume_from) if resume_from else None
        self.time_budget_s = time_budget_s
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
        self._t0 = time.perf_counter()
        self._train_time = 0.0
        self._data_time = [0.0]  # waiting for training batches, this session
        self._loads: list[float] = []  # the machine's load per CPU, sampled each epoch
        self._resumed_history: list[EpochResult] = []
        self._resumed_elapsed = 0.0
        # a data-parallel run (see ._distributed): this process's rank, its sampler, and
        # the position of each of its samples in its fixed shard (cache mode)
        self.dist: Distributed | None = None
        self._sampler: Any = None
        self._local_ids: torch.Tensor | None = None

    @property
    def ld(self) -> LearnDrop | None:
        return self._parts.ld if self._parts else None

    @property
    def model(self) -> nn.Module | None:
        return self._parts.model if self._parts else None

    @property
    def plan(self) -> DevicePlan | None:
        return self._parts.plan if self._parts else None

    def _ready(self) -> RunParts:
        if self._parts is None:
            raise RuntimeError("the trainer is not prepared: call prepare() or fit()")
        return self._parts

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
        plan = self._join(plan)
        bundle = build_data(cfg)
        self.warnings.extend(bundle.warnings)
        model, warnings = build_model(cfg, bundle, plan)
        self.warnings.extend(warnings)
        epochs = plan_epochs(cfg, bundle, self.dist.world_size if self.dist else 1)
        self.drop_last = epochs.drop_last
        self.steps_per_epoch, self.total_steps = epochs.steps_per_epoch, epochs.total_steps
        self.output_dir = self.run_folder or choose_output_dir(cfg, self.run_name)
        if self.dist is not None:
            self._shard(bundle)
        self.run_name = self.output_dir.name
        self._parts = build_parts(cfg, plan, bundle, model, epochs, self.callbacks,
                                  ddp=self.dist is not None)
        self.start_epoch = 0
        if self.resume_from is not None:
            self._resume(self.resume_from)
        self._prepared = True

    def _join(self, plan: DevicePlan) -> DevicePlan:
        """Join the data-parallel run this process belongs to, if any: its device (one GPU
        per process), the world size in the config, no callbacks but on rank 0."""
        self.dist = join_process_group(plan.device.type)
        if self.dist is None:
            if self.cfg.train.nproc > 1:
                self.warnings.append(
                    f"train.nproc is {self.cfg.train.nproc} but this process is not one of "
                    f"a data-parallel run: it trains alone (start it with 'learndrop train "
                    f"--nproc N' or torchrun)")
                self.cfg.train.nproc = 1
            return plan
        if self.time_budget_s:
            raise TrainingError("a time-budgeted run trains in one process: drop --nproc")
        self.cfg.train.nproc = self.dist.world_size
        if not self.dist.is_main:
            self.callbacks = []  # only rank 0 reports, records and writes
        if plan.device.type == "cuda":
            plan = dataclasses.replace(plan, device=torch.device("cuda", self.dist.local_rank))
        return plan

    def _shard(self, bundle: Any) -> None:
        """This rank's sampler; in cache mode a fixed shard, its samples numbered from 0."""
        assert self.dist is not None
        fixed = self.cfg.drop.mode == "cache"
        self._sampler = self.dist.train_sampler(bundle.train, seed=self.cfg.train.seed,
                                                fixed_shard=fixed)
        if fixed:
            indices = torch.tensor(self._sampler.indices, dtype=torch.long)
            local = torch.full((len(bundle.train),), -1, dtype=torch.long)
            local[indices] = torch.arange(len(indices))
            self._local_ids = local

    def _read_checkpoint(self, path: Path, device: torch.device) -> dict[str, Any] | None:
        """The checkpoint, read by rank 0 and passed on to every rank (None: one process
        reads it itself)."""
        if self.dist is None:
            return None
        data: dict[str, Any] | None = None
        error = ""
        if self.dist.is_main:
            try:
                data = load_checkpoint(path, map_location="cpu")
            except LearnDropError as exc:
                error = str(exc)
        data, error = self.dist.from_main((data, error))
        if error:
            raise CheckpointError(error)
        return data

    def _resume(self, path: Path) -> None:
        r = self._ready()
        resumed = restore_checkpoint(path, self.cfg, model=r.model, ld=r.ld,
                                     optimizer=r.optimizer, scaler=r.scaler,
                                     device=r.plan.device,
                                     data=self._read_checkpoint(path, r.plan.device))
        self.start_epoch = resumed.start_epoch
        self.best_accuracy = resumed.best_accuracy
        self._resumed_history = resumed.history
        self._resumed_elapsed = resumed.elapsed_s
        if self.start_epoch >= self.cfg.train.epochs and self.finish_complete:
            self.last_val = resumed.last_val
        elif self.start_epoch >= self.cfg.train.epochs:
            raise CheckpointError(f"{path} is already at the last epoch "
                                  f"({self.start_epoch}); raise --epochs to train further")

    def _loader(self, epoch: int) -> Any:
        """The epoch's shuffled training batches: gathered in one go for in-memory images
        without augmentation, else a DataLoader (the same batches either way)."""
        r = self._ready()
        if self._sampler is not None:
            self._sampler.set_epoch(epoch)
            return DataLoader(r.bundle.train, batch_size=self.cfg.train.batch_size,
                              sampler=self._sampler, drop_last=self.drop_last,
                              num_workers=self.cfg.data.num_workers,
                              pin_memory=r.plan.device.type == "cuda")
        g = torch.Generator()
        g.manual_seed(self.cfg.train.seed * 1000 + epoch)
        pin = r.plan.device.type == "cuda"
        if self.cfg.data.num_workers == 0:
            fast = fast_batches(r.bundle.train, self.cfg.train.batch_size,
                                drop_last=self.drop_last, generator=g, pin_memory=pin)
            if fast is not None:
                return fast
        return DataLoader(r.bundle.train, batch_size=self.cfg.train.batch_size, shuffle=True,
                          drop_last=self.drop_last, generator=g,
                          num_workers=self.cfg.data.num_workers,
                          pin_memory=r.plan.device.type == "cuda",
                          persistent_workers=False)

    # ---- the run ----------------------------------------------------------------------------
    def fit(self) -> FitResult:
        """Run training. Always fires ``on_fit_end``; raises LearnDropError on failure."""
        try:
            return self._fit()
        finally:
            self._release_folder()

    def _fit(self) -> FitResult:
        self._t0 = time.perf_counter()
        self.history = []
        self.best_accuracy = 0.0
        self.last_val = (math.nan, math.nan, None)
        started = False
        try:
            self.prepare()
            self._start()
            started = True
            status = self._train()
        except torch.OutOfMemoryError:
            err = self._out_of_memory()
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
                err = self._out_of_memory()
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

    def _out_of_memory(self) -> DeviceError:
        bs = self.cfg.train.batch_size
        where = self.plan.device.type if self.plan else "the device"
        return DeviceError(f"out of memory on {where} with batch size {bs}: try "
                           f"--batch-size {max(bs // 2, 1)} or a smaller --image-size")

    def _start(self) -> None:
        """Claim (or lock) the run folder, save the config, pass on early warnings, fire
        on_fit_start."""
        r = self._ready()
        assert self.output_dir is not None
        if self._writes:
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

    def _train(self) -> str:
        """Every remaining epoch; returns finished, stopped or cancelled."""
        self._train_time = 0.0
        self._data_time = [0.0]
        self._loads = []
        self._sample_load()
        status = "finished"
        for epoch in range(self.start_epoch, self.cfg.train.epochs):
            call_hook(self.callbacks, "on_epoch_start", epoch)
            run = self._train_epoch(epoch)
            if run.ended and self.control.cancel_requested:
                return "cancelled"
            self._train_time += time.perf_counter() - run.started
            if run.seen == 0:
                status = "stopped" if run.ended else status
                break
            self._end_epoch(epoch, run)
            if run.ended:
                status = "stopped"
                break
            if run.budget_out or self._budget_spent():
                break
        if status == "stopped":
            # a stop mid-epoch keeps the last complete epoch's checkpoint and the weights now
            self._checkpoint_partial()
        return status

    def _train_epoch(self, epoch: int) -> _EpochRun:
        """One pass over the training data, checking the run control between batches."""
        r = self._ready()
        dev = r.plan.device
        r.ld.model.train()
        now = time.perf_counter()
        run = _EpochRun(now, torch.zeros((), device=dev),
                        torch.zeros((), device=dev, dtype=torch.long))
        window = _Window(torch.zeros((), device=dev), 0, now)
        for b, (x, y, idx) in enumerate(_TimedBatches(self._loader(epoch), self._data_time)):
            ended, budget_out = self._boundary()
            self._report_requests()
            if ended:
                run.ended = True
                break
            if budget_out:  # a time-budgeted run ends here, finished
                run.budget_out = True
                break
            for action, name in self.control.take_actions():
                r.ld.request(action, name)
            lr, loss, out, y = self._step(x, y, idx)
            d = loss.detach()
            run.loss_sum += d * y.shape[0]
            run.correct += (out.detach().argmax(1) == y).sum()
            run.seen += y.shape[0]
            window.loss += d
            window.n += 1
            if window.n >= self.cfg.train.log_every or b == self.steps_per_epoch - 1:
                self._report_progress(epoch, b + 1, window, lr)
        return run

    def _boundary(self) -> tuple[bool, bool]:
        """At a batch boundary: whether the run ends here (stop or cancel) and whether a
        time budget ran out; waits while paused. The ranks of a data-parallel run agree."""
        if self.dist is None:
            self._wait_while_paused()
            if self.control.should_end:
                return True, False
            return False, self._budget_spent()
        c = self.control
        paused_at: float | None = None
        while True:
            stop, cancel, paused = self.dist.agree(
                [c.stop_requested, c.cancel_requested, c.paused])
            if cancel:
                c.cancel()
            elif stop:
                c.stop()
            if not paused or stop or cancel:
                break
            if paused_at is None:
                self._report_requests()  # the pause, at the step where the run holds
                paused_at = time.perf_counter()
            c.wait_while_paused(0.2)
        if paused_at is not None:
            self._t0 += time.perf_counter() - paused_at  # a pause is not training time
            self._ready().ld.pause_timing()
        return stop or cancel, False

    @property
    def _writes(self) -> bool:
        """Whether this process writes the run's files (rank 0 of a data-parallel run)."""
        return self.dist is None or self.dist.is_main

    def _device_text(self) -> str:
        text = self.plan.description if self.plan else ""
        return f"{text}, {self.dist.description}" if self.dist is not None else text

    def _wait_while_paused(self) -> None:
        if not self.control.paused:
            return
        self._report_requests()  # the pause, at the step where the run holds
        paused_at = time.perf_counter()
        while self.control.paused and not self.control.should_end:
            self.control.wait_while_paused(0.2)
        self._t0 += time.perf_counter() - paused_at  # a pause is not training time
        self._ready().ld.pause_timing()

    def _step(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor
              ) -> tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimizer step; returns the learning rate, the loss, the output and ``y`` (all
        on the device)."""
        r = self._ready()
        plan, ld = r.plan, r.ld
        x = x.to(plan.device, non_blocking=True)
        y = y.to(plan.device, non_blocking=True)
        if plan.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        lr = self._set_lr(ld.step_count)
        if self._local_ids is not None:  # a rank's fixed shard: its cache numbers them so
            idx = self._local_ids[idx]
        with torch.autocast(plan.device.type, dtype=plan.amp_dtype, enabled=plan.amp):
            out = ld.model(x, sample_ids=idx)
            loss = nn.functional.cross_entropy(out, y)
        r.optimizer.zero_grad(set_to_none=True)
        r.scaler.scale(loss).backward()
        r.scaler.step(r.optimizer)
        r.scaler.update()
        ld.step()
        return lr, loss, out, y

    def _report_requests(self) -> None:
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

    def _report_progress(self, epoch: int, batch: int, window: _Window, lr: float) -> None:
        """Fire on_progress with the window's mean loss: the only read-back in the loop."""
        ld = self._ready().ld
        mean = float(window.loss) / window.n
        if not math.isfinite(mean):
            raise TrainingError(self._nan_message(ld.step_count, epoch))
        now = time.perf_counter()
        ips = window.n * self.cfg.train.batch_size / max(now - window.started, 1e-9)
        call_hook(self.callbacks, "on_progress", Progress(
            step=ld.step_count, epoch=epoch, batch=batch, batches=self.steps_per_epoch,
            loss=mean, lr=lr, images_per_s=ips, elapsed_s=self.elapsed(),
            eta_s=self._eta(epoch, batch)))
        window.loss.zero_()
        window.n, window.started = 0, now

    def _end_epoch(self, epoch: int, run: _EpochRun) -> None:
        """Validate, fire on_epoch_end and write the checkpoint that is due."""
        r = self._ready()
        ld = r.ld
        complete = not run.ended and not run.budget_out
        if complete:
            ld.end_epoch()
        loss_sum, correct, seen = float(run.loss_sum), float(run.correct), float(run.seen)
        if self.dist is not None:  # every rank's samples
            loss_sum, correct, seen = self.dist.sum([loss_sum, correct, seen])
        train_loss = loss_sum / seen
        train_acc = correct / seen
        if not math.isfinite(train_loss):
            raise TrainingError(self._nan_message(ld.step_count, epoch))
        val_loss, val_acc, val_scaled = self.evaluate()
        self.best_accuracy = max(self.best_accuracy, val_acc)
        self.last_val = (val_loss, val_acc, val_scaled)
        epoch_time = time.perf_counter() - run.started
        self._sample_load()
        groups = r.optimizer.param_groups
        ev = EpochEnd(
            epoch=epoch, step=ld.step_count, train_loss=train_loss,
            train_accuracy=train_acc, val_loss=val_loss, val_accuracy=val_acc,
            val_accuracy_scaled=val_scaled, epoch_time_s=epoch_time,
            elapsed_s=self.elapsed(), eta_s=self._eta(epoch + 1, 0),
            images_per_s=run.seen / max(epoch_time, 1e-9),
            lr=groups[0]["lr"] if groups else 0.0, dropped=tuple(ld.dropped),
            savings=ld.savings_report())
        self.history.append(EpochResult(
            epoch=epoch, train_loss=train_loss, train_accuracy=train_acc, val_loss=val_loss,
            val_accuracy=val_acc, val_accuracy_scaled=val_scaled, epoch_time_s=epoch_time,
            elapsed_s=self.elapsed() + self._resumed_elapsed))
        call_hook(self.callbacks, "on_epoch_end", ev)
        completed = epoch + 1  # complete epochs once this one is (what a checkpoint counts)
        every = self.cfg.output.checkpoint_every
        last = completed == self.cfg.train.epochs
        if complete and (last or (every and completed % every == 0)):
            self._checkpoint(completed)

    # ---- helpers ------------------------------------------------------------------------------
    def _set_lr(self, step: int) -> float:
        if self.time_budget_s:
            progress = self.elapsed() / self.time_budget_s
        else:
            progress = step / max(self.total_steps, 1)
        return self._ready().schedule.set_progress(progress)

    def _budget_spent(self) -> bool:  # a data-parallel run has no time budget (see _join)
        budget = self.time_budget_s
        return bool(budget) and budget is not None and self.elapsed() >= budget

    def _sample_load(self) -> None:
        load = machine_load()
        if load is not None:
            self._loads.append(load)

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def _eta(self, epoch: int, batch: int) -> float:
        """Seconds left after ``batch`` batches of epoch index ``epoch``: the steps left at
        the current measured step time, plus this session's time outside the steps per
        step (the average time per step until the step time is measured)."""
        done = epoch * self.steps_per_epoch + batch
        done_here = done - self.start_epoch * self.steps_per_epoch
        if self.time_budget_s:
            return max(self.time_budget_s - self.elapsed(), 0.0)
        if done_here <= 0:
            return float("nan")
        remaining = self.total_steps - done
        ld = self._ready().ld
        meter = ld.meter  # step times only: no pass over the parameters here
        now = meter.step_time if meter is not None else None
        if now:
            # the current step time (it falls as units drop), plus the time outside the
            # steps (validation, checkpoints) spread over the steps done
            outside = max(self.elapsed() - ld.train_time_s, 0.0) / done_here
            return max(remaining * (now + outside), 0.0)
        return max(remaining * self.elapsed() / done_here, 0.0)

    def _nan_message(self, step: int, epoch: int) -> str:
        ck = self.output_dir / "checkpoint.pt" if self.output_dir else None
        kept = (f"the last good checkpoint is {ck}" if ck is not None and ck.exists()
                else "no checkpoint was written yet")
        return (f"the loss became NaN or infinite at step {step} (epoch "
                f"{display_epoch(epoch)}): lower --lr or turn mixed precision off; {kept}")

    def evaluate(self) -> tuple[float, float, float | None]:
        """Validation loss and accuracy of the full model; in skip mode also the accuracy of
        the scaled-down network (dropped blocks bypassed)."""
        r = self._ready()
        data = r.bundle.val if self.dist is None else self.dist.val_shard(r.bundle.val)
        loss, acc, scaled = evaluate_run(r.model, r.ld, data, r.plan,
                                         batch_size=max(self.cfg.train.batch_size, 256),
                                         num_workers=self.cfg.data.num_workers)
        if self.dist is None:
            return loss, acc, scaled
        return self._evaluated_everywhere(len(data), loss, acc, scaled)  # type: ignore

    def _evaluated_everywhere(self, n: int, loss: float, acc: float, scaled: float | None
                              ) -> tuple[float, float, float | None]:
        """Every rank's validation shard's figures, weighted by its size."""
        assert self.dist is not None
        has = n > 0
        sums = self.dist.sum([loss * n if has else 0.0, acc * n if has else 0.0,
                              (scaled or 0.0) * n if has else 0.0, float(n)])
        total = sums[3]
        if total == 0:
            return math.nan, math.nan, None
        return sums[0] / total, sums[1] / total, (sums[2] / total if scaled is not None
                                                  else None)

    # ---- checkpoints ----------------------------------------------------------------------------
    def _payload(self, epoch: int) -> dict[str, Any]:
        r = self._ready()
        return {"epoch": epoch, "run_name": self.run_name, "config": self.cfg.to_dict(),
                "model": r.model.state_dict(), "optimizer": r.optimizer.state_dict(),
                "scaler": r.scaler.state_dict(), "learndrop": r.ld.state_dict(),
                "best_accuracy": self.best_accuracy,
                # earlier sessions' epochs and time too, so a second resume loses neither
                "history": [h.to_dict() for h in self._all_history()],
                "elapsed_s": self.elapsed() + self._resumed_elapsed,
                "torch_rng": torch.get_rng_state()}

    def _checkpoint(self, epoch: int) -> None:
        """Save the resumable checkpoint after ``epoch`` complete epochs."""
        assert self.output_dir is not None
        if not self._writes:
            return
        path = self.output_dir / "checkpoint.pt"
        save_checkpoint(path, self._payload(epoch))
        call_hook(self.callbacks, "on_checkpoint",
                  CheckpointSaved(epoch=epoch, step=self._ready().ld.step_count, path=str(path)))

    def _checkpoint_partial(self) -> None:
        """On stop: save the current weights too (the resumable checkpoint stays at the last
        complete epoch, so a resume repeats exactly the same epochs)."""
        assert self.output_dir is not None
        if not self._writes:
            return
        save_checkpoint(self.output_dir / "stopped.pt",
                        {"model": self._ready().model.state_dict(), "epoch": -1})
        if not (self.output_dir / "checkpoint.pt").exists():
            self._checkpoint(self.start_epoch)

    # ---- the end ----------------------------------------------------------------------------
    def _all_history(self) -> list[EpochResult]:
        return [*self._resumed_history, *self.history]

    def summary(self, status: str) -> RunSummary:
        """The run's summary as it stands, ended with ``status``."""
        return build_summary(
            self.cfg, status, run_name=self.run_name, output_dir=self.output_dir, ld=self.ld,
            device=self._device_text(), last_val=self.last_val,
            best_accuracy=self.best_accuracy, wall_time_s=self.elapsed() + self._resumed_elapsed,
            train_time_s=self._train_time, history=self._all_history(),
            data_time_s=self._data_time[0],
            load_per_cpu=sum(self._loads) / len(self._loads) if self._loads else None,
            world_size=self.dist.world_size if self.dist else 1)

    def _finish(self, status: str, message: str) -> FitResult:
        self._report_requests()  # asked after the last batch (during validation, say)
        summary = self.summary(status)
        model = self.model
        if not self._writes:
            pass
        elif status == "cancelled" and self.output_dir is not None:
            self._release_folder()
            remove_run_files(self.output_dir)  # what the run wrote, nothing else
            summary = dataclasses.replace(summary, output_dir="")
        elif self.output_dir is not None and model is not None and self.output_dir.exists():
            try:
                if status == "finished":
                    save_checkpoint(self.output_dir / "final.pt",
                                    {"model": model.state_dict(), "epoch": -1})
                atomic_write_text(self.output_dir / "summary.json",
                                  json.dumps(summary.to_dict(), indent=2, default=str))
                self._save_pins()
            except LearnDropError as exc:  # e.g. the disk filled up: the run ends as failed
                self._fail(exc, True)
                raise
        call_hook(self.callbacks, "on_fit_end", FitEnd(status=status, message=message,
                                                       summary=summary))
        return FitResult(status, message, summary)

    def _save_pins(self) -> None:
        """Units pinned or unpinned by hand during the run: the run folder's config.toml
        keeps the pins the run ended with, so that a resume or a new run from it repeats
        them."""
        ld = self.ld
        if ld is None or self.output_dir is None:
            return
        pinned = [u.name for u in ld.units if ld.is_pinned(u.name)]
        if set(pinned) != set(self.cfg.drop.pinned):
            cfg = self.cfg.copy()
            cfg.drop.pinned = pinned
            atomic_write_text(self.output_dir / "config.toml", config_to_toml(cfg))

    def _release_folder(self) -> None:
        lock, self._folder_lock = self._folder_lock, None
        if lock is not None:
            lock.release()

    def _fail(self, exc: BaseException, started: bool) -> None:
        self._report_requests()
        message = str(exc) if isinstance(exc, LearnDropError) else (
            f"internal error: {type(exc).__name__}: {exc}".splitlines()[0])
        summary = self.summary("failed") if self._prepared else RunSummary(status="failed")
        call_hook(self.callbacks, "on_fit_end", FitEnd(
            status="failed", message=message,
            summary=dataclasses.replace(summary, error=message)))
