"""One training epoch of the trainer: its batches, each step, progress and the epoch's end.

Each function takes the trainer first (as :class:`~._run.TrainerRun`, its public side). The
loop reads values from the device only every ``train.log_every`` batches and at the epoch's
end.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data import fast_batches
from ..errors import TrainingError
from ..events import EpochEnd, Progress, call_hook, display_epoch
from ..summary import EpochResult
from ._ending import checkpoint
from ._parallel import agreed_boundary
from ._run import TrainerRun

__all__ = ["EpochRun", "train_epoch", "end_epoch"]


@dataclass
class EpochRun:
    """One epoch's training pass: device-side sums (read once, at its end) and how it ended."""

    started: float
    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int = 0
    ended: bool = False  # stopped or cancelled at a batch boundary
    budget_out: bool = False  # a time-budgeted run's budget ran out


@dataclass
class _Window:
    """The batches since the last progress report."""

    loss: torch.Tensor
    n: int
    started: float


def loader(trainer: TrainerRun, epoch: int) -> Any:
    """The epoch's shuffled training batches: gathered in one go for in-memory images
    without augmentation, else a DataLoader (the same batches either way)."""
    r = trainer.parts
    cfg = trainer.cfg
    if trainer.shard is not None:
        return trainer.shard.loader(r.bundle.train, epoch, batch_size=cfg.train.batch_size,
                                    drop_last=trainer.drop_last,
                                    num_workers=cfg.data.num_workers,
                                    pin_memory=r.plan.device.type == "cuda")
    g = torch.Generator()
    g.manual_seed(cfg.train.seed * 1000 + epoch)
    pin = r.plan.device.type == "cuda"
    if cfg.data.num_workers == 0:
        fast = fast_batches(r.bundle.train, cfg.train.batch_size,
                            drop_last=trainer.drop_last, generator=g, pin_memory=pin)
        if fast is not None:
            return fast
    return DataLoader(r.bundle.train, batch_size=cfg.train.batch_size, shuffle=True,
                      drop_last=trainer.drop_last, generator=g,
                      num_workers=cfg.data.num_workers,
                      pin_memory=r.plan.device.type == "cuda",
                      persistent_workers=False)


def train_epoch(trainer: TrainerRun, epoch: int) -> EpochRun:
    """One pass over the training data, checking the run control between batches."""
    r = trainer.parts
    dev = r.plan.device
    r.ld.model.train()
    now = time.perf_counter()
    run = EpochRun(now, torch.zeros((), device=dev),
                   torch.zeros((), device=dev, dtype=torch.long))
    window = _Window(torch.zeros((), device=dev), 0, now)
    batches = trainer.clock.timed(loader(trainer, epoch))
    for b, (x, y, idx) in enumerate(batches):
        ended, budget_out = _boundary(trainer)
        trainer.report_requests()
        if ended:
            run.ended = True
            break
        if budget_out:  # a time-budgeted run ends here, finished
            run.budget_out = True
            break
        for action, name in trainer.control.take_actions():
            r.ld.request(action, name)
        lr, loss, out, y = _step(trainer, x, y, idx)
        d = loss.detach()
        run.loss_sum += d * y.shape[0]
        run.correct += (out.detach().argmax(1) == y).sum()
        run.seen += y.shape[0]
        window.loss += d
        window.n += 1
        if window.n >= trainer.cfg.train.log_every or b == trainer.steps_per_epoch - 1:
            _report_progress(trainer, epoch, b + 1, window, lr)
    return run


def _boundary(trainer: TrainerRun) -> tuple[bool, bool]:
    """At a batch boundary: whether the run ends here (stop or cancel) and whether a
    time budget ran out; waits while paused. The ranks of a data-parallel run agree."""
    if trainer.dist is not None:
        return agreed_boundary(trainer)
    control = trainer.control
    trainer.hold_while_paused(lambda: control.paused and not control.should_end)
    if control.should_end:
        return True, False
    return False, trainer.budget_spent()


def _step(trainer: TrainerRun, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor
          ) -> tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimizer step; returns the learning rate, the loss, the output and ``y`` (all
    on the device)."""
    r = trainer.parts
    plan, ld = r.plan, r.ld
    x = x.to(plan.device, non_blocking=True)
    y = y.to(plan.device, non_blocking=True)
    if plan.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    lr = trainer.set_lr(ld.step_count)
    if trainer.shard is not None:  # a rank's fixed shard: its cache numbers them so
        idx = trainer.shard.sample_ids(idx)
    with torch.autocast(plan.device.type, dtype=plan.amp_dtype, enabled=plan.amp):
        out = ld.model(x, sample_ids=idx)
        loss = nn.functional.cross_entropy(out, y)
    r.optimizer.zero_grad(set_to_none=True)
    r.scaler.scale(loss).backward()
    r.scaler.step(r.optimizer)
    r.scaler.update()
    ld.step(loss)
    return lr, loss, out, y


def _report_progress(trainer: TrainerRun, epoch: int, batch: int, window: _Window,
                     lr: float) -> None:
    """Fire on_progress with the window's mean loss: the only read-back in the loop."""
    ld = trainer.parts.ld
    mean = float(window.loss) / window.n
    if not math.isfinite(mean):
        raise TrainingError(_nan_message(trainer.output_dir, ld.step_count, epoch))
    now = time.perf_counter()
    ips = window.n * trainer.cfg.train.batch_size / max(now - window.started, 1e-9)
    call_hook(trainer.callbacks, "on_progress", Progress(
        step=ld.step_count, epoch=epoch, batch=batch, batches=trainer.steps_per_epoch,
        loss=mean, lr=lr, images_per_s=ips, elapsed_s=trainer.clock.total_elapsed(),
        eta_s=trainer.eta(epoch, batch)))
    window.loss.zero_()
    window.n, window.started = 0, now


def _nan_message(output_dir: Path | None, step: int, epoch: int) -> str:
    ck = output_dir / "checkpoint.pt" if output_dir else None
    kept = (f"the last good checkpoint is {ck}" if ck is not None and ck.exists()
            else "no checkpoint was written yet")
    return (f"the loss became NaN or infinite at step {step} (epoch "
            f"{display_epoch(epoch)}): lower --lr or turn mixed precision off; {kept}")


def end_epoch(trainer: TrainerRun, epoch: int, run: EpochRun) -> None:
    """Validate, fire on_epoch_end and write the checkpoint that is due."""
    r = trainer.parts
    ld = r.ld
    complete = not run.ended and not run.budget_out
    if complete:
        ld.end_epoch()
    loss_sum, correct, seen = float(run.loss_sum), float(run.correct), float(run.seen)
    if trainer.dist is not None:  # every rank's samples
        loss_sum, correct, seen = trainer.dist.sum([loss_sum, correct, seen])
    train_loss = loss_sum / seen
    train_acc = correct / seen
    if not math.isfinite(train_loss):
        raise TrainingError(_nan_message(trainer.output_dir, ld.step_count, epoch))
    val_loss, val_acc, val_scaled = trainer.evaluate()
    trainer.best_accuracy = max(trainer.best_accuracy, val_acc)
    trainer.last_val = (val_loss, val_acc, val_scaled)
    epoch_time = time.perf_counter() - run.started
    trainer.sample_load()
    groups = r.optimizer.param_groups
    ev = EpochEnd(
        epoch=epoch, step=ld.step_count, train_loss=train_loss,
        train_accuracy=train_acc, val_loss=val_loss, val_accuracy=val_acc,
        val_accuracy_scaled=val_scaled, epoch_time_s=epoch_time,
        elapsed_s=trainer.clock.total_elapsed(), eta_s=trainer.eta(epoch + 1, 0),
        images_per_s=run.seen / max(epoch_time, 1e-9),
        lr=groups[0]["lr"] if groups else 0.0, dropped=tuple(ld.dropped),
        savings=ld.savings_report())
    trainer.history.append(EpochResult(
        epoch=epoch, train_loss=train_loss, train_accuracy=train_acc, val_loss=val_loss,
        val_accuracy=val_acc, val_accuracy_scaled=val_scaled, epoch_time_s=epoch_time,
        elapsed_s=trainer.clock.total_elapsed()))
    call_hook(trainer.callbacks, "on_epoch_end", ev)
    completed = epoch + 1  # complete epochs once this one is (what a checkpoint counts)
    every = trainer.cfg.output.checkpoint_every
    last = completed == trainer.cfg.train.epochs
    if complete and (last or (every and completed % every == 0)):
        checkpoint(trainer, completed)
