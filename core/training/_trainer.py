"""The trainer: data, model, optimizer and Learn&Drop from one :class:`RunConfig`.

``Trainer(cfg, callbacks, control).fit()`` runs a whole training, firing the callbacks'
hooks in the calling thread. It checks ``control`` at batch boundaries (pause, stop, cancel,
manual unit actions), reads values from the device only every ``train.log_every`` batches
and at epoch ends, writes a checkpoint atomically every ``output.checkpoint_every`` epochs,
and resumes from one with the drop state and optimizer groups restored together.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..config import RunConfig, config_to_toml
from ..engine import LearnDrop
from ..errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DeviceError,
    LearnDropError,
    TrainingError,
    first_line,
)
from ..events import Callback, CheckpointSaved, EpochEnd, FitEnd, FitStart, Progress, call_hook
from ..files import atomic_write_text, remove_stale_temps
from ..paths import runs_home
from ._checkpoint import load_checkpoint, load_initial_weights, save_checkpoint
from ._control import RunControl
from ._device import resolve_device
from ._optim import ProgressSchedule, build_optimizer

__all__ = ["Trainer", "FitResult"]


@dataclass(frozen=True)
class FitResult:
    status: str
    message: str
    summary: dict[str, Any] = field(default_factory=dict)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Trains ``cfg``'s model on ``cfg``'s data with Learn&Drop.

    ``time_budget_s`` turns the run into a time-budgeted baseline: the learning-rate schedule
    follows wall-clock progress through the budget and training ends when it is spent.
    ``resume_from``: a checkpoint written by an earlier run of the same config.
    ``finish_complete``: when that checkpoint is already at the last epoch (the process ended
    after training but before writing the final files), end the run as finished from it
    instead of refusing.
    """

    def __init__(self, cfg: RunConfig, callbacks: list[Callback] | tuple[Callback, ...] = (),
                 control: RunControl | None = None, *, resume_from: str | Path | None = None,
                 time_budget_s: float | None = None, run_name: str | None = None,
                 finish_complete: bool = False) -> None:
        self.cfg = cfg.copy().check()
        self.callbacks: list[Callback] = list(callbacks)
        self.control = control or RunControl()
        self.resume_from = Path(resume_from) if resume_from else None
        self.time_budget_s = time_budget_s
        self.run_name = run_name or self.cfg.output.name or ""
        self.finish_complete = finish_complete
        self.output_dir: Path | None = None
        self.ld: LearnDrop | None = None
        self.model: nn.Module | None = None
        self._prepared = False
        self.warnings: list[str] = []

    # ---- set-up -------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Build everything; raises a LearnDropError for bad input before training starts."""
        if self._prepared:
            return
        from ..data import build_datasets
        from ..models import get_model

        cfg = self.cfg
        if self.run_name in (".", "..") or any(c in self.run_name for c in "/\\\0"):
            raise ConfigError(f"output.name {self.run_name!r} cannot name a run folder: use "
                              f"letters, digits, dots, dashes or underscores, no slashes",
                              field="output.name")
        _seed_everything(cfg.train.seed)
        if cfg.train.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.plan = resolve_device(cfg.train.device, cfg.train.amp, cfg.train.channels_last)
        try:
            bundle = build_datasets(cfg.data, seed=cfg.train.seed)
        except OSError as exc:  # e.g. a folder this user may not read
            where = f" {exc.filename}" if exc.filename else ""
            raise DataError(f"cannot read the data{where}: {exc.strerror or exc}; check "
                            f"data.root and that you may read it") from None
        self.bundle = bundle
        self.warnings.extend(bundle.warnings)
        if cfg.drop.enabled and cfg.drop.mode == "cache" and not bundle.deterministic_train:
            raise LearnDropError("drop.mode=cache needs the same input for a sample every "
                                 "epoch, but this data set uses random augmentation: turn "
                                 "data.augment off or use mode=freeze")
        model = get_model(cfg.model.name, num_classes=bundle.num_classes,
                          in_channels=bundle.in_channels, image_size=bundle.image_size,
                          width=cfg.model.width)
        if cfg.model.weights:
            self.warnings.extend(load_initial_weights(model, cfg.model.weights))
        dev = self.plan.device
        model = model.to(dev)
        if self.plan.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        bs = cfg.train.batch_size
        n_train = len(cast(Sized, bundle.train))
        if n_train == 0:
            raise LearnDropError("the training set is empty: check data.root and data.limit")
        self.drop_last = n_train > bs
        self.steps_per_epoch = (n_train // bs if self.drop_last
                                else math.ceil(n_train / bs))
        self.total_steps = self.steps_per_epoch * cfg.train.epochs
        self.optimizer = build_optimizer(model, cfg.optim)
        self.schedule = ProgressSchedule(self.optimizer, cfg.optim, cfg.train.epochs)
        use_scaler = self.plan.amp and dev.type == "cuda" and self.plan.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(dev.type, enabled=use_scaler)
        if not self.run_name:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            model_name = cfg.model.name.replace(":", "-")  # timm:resnet18 -> timm-resnet18
            self.run_name = f"{model_name}-{cfg.data.dataset}-{stamp}"
        base = Path(cfg.output.dir).expanduser() if cfg.output.dir else runs_home()
        out = base / self.run_name
        if self.resume_from is None:
            k = 1
            while out.exists():
                k += 1
                out = base / f"{self.run_name}-{k}"
            self.run_name = out.name
        self.output_dir = out
        example = bundle.train[0][0].unsqueeze(0).to(dev)
        d = cfg.drop
        self.ld = LearnDrop(
            model, self.optimizer, threshold=d.threshold, patience=d.patience,
            warmup_epochs=d.warmup_epochs, check_every=d.check_every, order=d.order,
            keep_last=d.keep_last, mode=d.mode, lr_normalize=d.lr_normalize, ema=d.ema,
            window=d.window, trend_tolerance=d.trend_tolerance, units=d.units or None,
            pinned=d.pinned, enabled=d.enabled, example_input=example,
            num_samples=n_train, cache_budget_mb=d.cache_budget_mb,
            cache_dir=None, steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps, callbacks=self.callbacks)
        self.start_epoch = 0
        if self.resume_from is not None:
            self._load(self.resume_from)
        self._prepared = True

    def _loader(self, epoch: int) -> DataLoader:
        g = torch.Generator()
        g.manual_seed(self.cfg.train.seed * 1000 + epoch)
        return DataLoader(self.bundle.train, batch_size=self.cfg.train.batch_size, shuffle=True,
                          drop_last=self.drop_last, generator=g,
                          num_workers=self.cfg.data.num_workers,
                          pin_memory=self.plan.device.type == "cuda",
                          persistent_workers=False)

    # ---- the run ----------------------------------------------------------------------------
    def fit(self) -> FitResult:
        """Run training. Always fires ``on_fit_end``; raises LearnDropError on failure."""
        self._t0 = time.perf_counter()
        self.history: list[dict[str, Any]] = []
        self.best_accuracy = 0.0
        self.last_val: tuple[float, float, float | None] = (math.nan, math.nan, None)
        started = False
        try:
            self.prepare()
            assert self.ld is not None and self.output_dir is not None
            self._make_output_dir()
            atomic_write_text(self.output_dir / "config.toml", config_to_toml(self.cfg))
            for w in self.warnings:
                call_hook(self.callbacks, "on_warning", w)
            call_hook(self.callbacks, "on_fit_start", FitStart(
                run_name=self.run_name, config=self.cfg.to_dict(), units=self.ld.unit_infos(),
                epochs=self.cfg.train.epochs, steps_per_epoch=self.steps_per_epoch,
                total_steps=self.total_steps, device=self.plan.description,
                mode=self.cfg.drop.mode, drop_enabled=self.cfg.drop.enabled,
                total_params=sum(p.numel() for p in self.model.parameters()),  # type: ignore
                forward_flops=self.ld.total_forward_flops, output_dir=str(self.output_dir),
                resumed_from_epoch=self.start_epoch))
            started = True
            status = self._train()
        except torch.OutOfMemoryError:
            err = DeviceError(
                f"out of memory on {self.plan.device.type} with batch size "
                f"{self.cfg.train.batch_size}: try --batch-size "
                f"{max(self.cfg.train.batch_size // 2, 1)}")
            self._fail(err, started)
            raise err from None
        except LearnDropError as exc:
            self._fail(exc, started)
            raise
        except KeyboardInterrupt:
            self._finish("stopped", "interrupted from the keyboard")
            raise
        except Exception as exc:
            self._fail(exc, started)
            raise
        message = {"finished": "training finished", "stopped": "stopped; checkpoint kept",
                   "cancelled": "cancelled; run discarded"}[status]
        return self._finish(status, message)

    def _train(self) -> str:
        assert self.ld is not None and self.model is not None
        cfg, ld, dev = self.cfg, self.ld, self.plan.device
        criterion = nn.CrossEntropyLoss()
        amp_ctx = lambda: torch.autocast(dev.type, dtype=self.plan.amp_dtype,  # noqa: E731
                                         enabled=self.plan.amp)
        cl = self.plan.channels_last
        self._train_time = 0.0
        status = "finished"
        epoch = self.start_epoch
        for epoch in range(self.start_epoch, cfg.train.epochs):
            call_hook(self.callbacks, "on_epoch_start", epoch)
            ld.model.train()
            t_epoch = time.perf_counter()
            loss_sum = torch.zeros((), device=dev)
            correct = torch.zeros((), device=dev, dtype=torch.long)
            seen = 0
            window_loss = torch.zeros((), device=dev)
            window_n, window_t = 0, time.perf_counter()
            batches = self.steps_per_epoch
            ended = budget_out = False
            for b, (x, y, idx) in enumerate(self._loader(epoch)):
                if self.control.paused:
                    paused_at = time.perf_counter()
                    while self.control.paused and not self.control.should_end:
                        self.control.wait_while_paused(0.2)
                    self._t0 += time.perf_counter() - paused_at
                    ld._last_t = None
                if self.control.should_end:
                    ended = True
                    break
                if self._budget_spent():  # a time-budgeted run ends here, finished
                    budget_out = True
                    break
                for action, name in self.control.take_actions():
                    ld.request(action, name)
                x = x.to(dev, non_blocking=True)
                y = y.to(dev, non_blocking=True)
                if cl:
                    x = x.contiguous(memory_format=torch.channels_last)
                lr = self._set_lr(ld.step_count)
                with amp_ctx():
                    out = ld.model(x, sample_ids=idx)
                    loss = criterion(out, y)
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                ld.step()
                d = loss.detach()
                loss_sum += d * y.shape[0]
                window_loss += d
                window_n += 1
                correct += (out.detach().argmax(1) == y).sum()
                seen += y.shape[0]
                if window_n >= cfg.train.log_every or b == batches - 1:
                    mean = float(window_loss) / window_n  # the only read-back in the loop
                    if not math.isfinite(mean):
                        raise TrainingError(self._nan_message(ld.step_count, epoch))
                    now = time.perf_counter()
                    ips = window_n * cfg.train.batch_size / max(now - window_t, 1e-9)
                    call_hook(self.callbacks, "on_progress", Progress(
                        step=ld.step_count, epoch=epoch, batch=b + 1, batches=batches,
                        loss=mean, lr=lr, images_per_s=ips, elapsed_s=self.elapsed(),
                        eta_s=self._eta(epoch, b + 1)))
                    window_loss.zero_()
                    window_n, window_t = 0, now
            if ended and self.control.cancel_requested:
                return "cancelled"
            self._train_time += time.perf_counter() - t_epoch
            if seen == 0:
                status = "stopped" if ended else status
                break
            complete = not ended and not budget_out
            if complete:
                ld.end_epoch()
            train_loss = float(loss_sum) / seen
            train_acc = float(correct) / seen
            if not math.isfinite(train_loss):
                raise TrainingError(self._nan_message(ld.step_count, epoch))
            val_loss, val_acc, val_scaled = self.evaluate()
            self.best_accuracy = max(self.best_accuracy, val_acc)
            self.last_val = (val_loss, val_acc, val_scaled)
            epoch_time = time.perf_counter() - t_epoch
            savings = ld.savings_report()
            ev = EpochEnd(
                epoch=epoch, step=ld.step_count, train_loss=train_loss,
                train_accuracy=train_acc, val_loss=val_loss, val_accuracy=val_acc,
                val_accuracy_scaled=val_scaled, epoch_time_s=epoch_time,
                elapsed_s=self.elapsed(), eta_s=self._eta(epoch + 1, 0),
                images_per_s=seen / max(epoch_time, 1e-9), lr=self.optimizer.param_groups[0]
                ["lr"] if self.optimizer.param_groups else 0.0, dropped=tuple(ld.dropped),
                savings=savings)
            self.history.append({"epoch": epoch, "train_loss": train_loss,
                                 "train_accuracy": train_acc, "val_loss": val_loss,
                                 "val_accuracy": val_acc, "val_accuracy_scaled": val_scaled,
                                 "epoch_time_s": epoch_time})
            call_hook(self.callbacks, "on_epoch_end", ev)
            every = cfg.output.checkpoint_every
            last = epoch == cfg.train.epochs - 1
            if complete and (last or (every and (epoch + 1) % every == 0)):
                self._checkpoint(epoch + 1)
            if ended:
                status = "stopped"
                break
            if budget_out or self._budget_spent():
                break
        if status == "stopped":
            # a stop mid-epoch keeps the last complete epoch's checkpoint and the weights now
            self._checkpoint_partial()
        return status

    # ---- helpers ------------------------------------------------------------------------------
    def _make_output_dir(self) -> None:
        assert self.output_dir is not None
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            if self.resume_from is not None:  # what a killed run may have left half-written
                remove_stale_temps(self.output_dir, ("checkpoint.pt", "config.toml",
                                                     "summary.json", "final.pt", "stopped.pt"))
        except OSError as exc:
            raise CheckpointError(
                f"cannot create the run folder {self.output_dir}: "
                f"{exc.strerror or type(exc).__name__}; set --output-dir to a folder you can "
                f"write to") from None

    def _set_lr(self, step: int) -> float:
        if self.time_budget_s:
            progress = self.elapsed() / self.time_budget_s
        else:
            progress = step / max(self.total_steps, 1)
        return self.schedule.set_progress(progress)

    def _budget_spent(self) -> bool:
        return bool(self.time_budget_s) and self.elapsed() >= self.time_budget_s  # type: ignore

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def _eta(self, epoch: int, batch: int) -> float:
        assert self.ld is not None
        done = epoch * self.steps_per_epoch + batch
        done_here = done - self.start_epoch * self.steps_per_epoch
        if self.time_budget_s:
            return max(self.time_budget_s - self.elapsed(), 0.0)
        if done_here <= 0:
            return float("nan")
        rate = self.elapsed() / done_here
        remaining = self.total_steps - done
        meter = self.ld.meter  # step times only: no pass over the parameters here
        if meter is not None and meter.step_time and meter.full_step_time:
            rate = rate * meter.step_time / meter.full_step_time
        return max(remaining * rate, 0.0)

    def _nan_message(self, step: int, epoch: int) -> str:
        ck = self.output_dir / "checkpoint.pt" if self.output_dir else None
        kept = (f"the last good checkpoint is {ck}" if ck is not None and ck.exists()
                else "no checkpoint was written yet")
        return (f"the loss became NaN or infinite at step {step} (epoch {epoch + 1}): lower "
                f"--lr or turn mixed precision off; {kept}")

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float, float | None]:
        """Validation loss and accuracy of the full model; in skip mode also the accuracy of
        the scaled-down network (dropped blocks bypassed)."""
        assert self.model is not None and self.ld is not None
        val_loss, val_acc = self._eval_with(self.model)
        scaled = None
        if self.cfg.drop.mode == "skip" and self.ld.dropped:
            was = self.ld.model.training
            self.ld.model.eval()
            _, scaled = self._eval_with(self.ld.model)
            self.ld.model.train(was)
        return val_loss, val_acc, scaled

    def _eval_with(self, net: nn.Module) -> tuple[float, float]:
        dev = self.plan.device
        was = net.training
        net.eval()
        loader = DataLoader(self.bundle.val, batch_size=max(self.cfg.train.batch_size, 256),
                            shuffle=False, num_workers=self.cfg.data.num_workers)
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        n = 0
        crit = nn.CrossEntropyLoss(reduction="sum")
        with torch.autocast(dev.type, dtype=self.plan.amp_dtype, enabled=self.plan.amp):
            for x, y in loader:
                x = x.to(dev, non_blocking=True)
                y = y.to(dev, non_blocking=True)
                if self.plan.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                out = net(x)
                loss_sum += crit(out.float(), y)
                correct += (out.argmax(1) == y).sum()
                n += y.shape[0]
        net.train(was)
        if n == 0:
            return float("nan"), float("nan")
        return float(loss_sum) / n, float(correct) / n

    def _payload(self, epoch: int) -> dict[str, Any]:
        assert self.ld is not None and self.model is not None
        return {"epoch": epoch, "run_name": self.run_name, "config": self.cfg.to_dict(),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "learndrop": self.ld.state_dict(),
                "best_accuracy": self.best_accuracy,
                # earlier sessions' epochs and time too, so a second resume loses neither
                "history": getattr(self, "_resumed_history", []) + self.history,
                "elapsed_s": self.elapsed() + getattr(self, "_resumed_elapsed", 0.0),
                "torch_rng": torch.get_rng_state()}

    def _checkpoint(self, epoch: int) -> None:
        assert self.output_dir is not None and self.ld is not None
        path = self.output_dir / "checkpoint.pt"
        save_checkpoint(path, self._payload(epoch))
        call_hook(self.callbacks, "on_checkpoint",
                  CheckpointSaved(epoch=epoch, step=self.ld.step_count, path=str(path)))

    def _checkpoint_partial(self) -> None:
        """On stop: save the current weights too (the resumable checkpoint stays at the last
        complete epoch, so a resume repeats exactly the same epochs)."""
        assert self.output_dir is not None and self.model is not None
        save_checkpoint(self.output_dir / "stopped.pt", {"model": self.model.state_dict(),
                                                        "epoch": -1})
        if not (self.output_dir / "checkpoint.pt").exists():
            self._checkpoint(self.start_epoch)

    def _load(self, path: Path) -> None:
        assert self.ld is not None and self.model is not None
        data = load_checkpoint(path, map_location=self.plan.device)
        saved = data.get("config", {})
        try:  # settings added since the checkpoint was written take their defaults
            saved = RunConfig.from_dict(saved).to_dict()
        except LearnDropError:
            pass
        for section in ("model", "data"):
            if saved.get(section) != self.cfg.to_dict()[section]:
                raise CheckpointError(f"{path} was trained with other {section} settings; "
                                      f"resume with the config saved in its run folder")
        try:
            self.model.load_state_dict(data["model"])
            self.ld.load_state_dict(data["learndrop"])
            self.optimizer.load_state_dict(data["optimizer"])
            self.scaler.load_state_dict(data["scaler"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{path} does not fit this model "
                                  f"({first_line(exc)[:120]})") from None
        self.start_epoch = int(data["epoch"])
        self.best_accuracy = float(data.get("best_accuracy", 0.0))
        self._resumed_history = list(data.get("history", []))
        self._resumed_elapsed = float(data.get("elapsed_s", 0.0))
        if "torch_rng" in data:
            torch.set_rng_state(data["torch_rng"].cpu())
        if self.start_epoch >= self.cfg.train.epochs and self.finish_complete:
            last = self._resumed_history[-1] if self._resumed_history else {}
            self.last_val = (float(last.get("val_loss", math.nan)),
                             float(last.get("val_accuracy", math.nan)),
                             last.get("val_accuracy_scaled"))
        elif self.start_epoch >= self.cfg.train.epochs:
            raise CheckpointError(f"{path} is already at the last epoch "
                                  f"({self.start_epoch}); raise --epochs to train further")

    def summary(self, status: str) -> dict[str, Any]:
        ld = self.ld
        val_loss, val_acc, val_scaled = getattr(self, "last_val", (float("nan"),) * 2 + (None,))
        s = ld.savings() if ld is not None else {}
        history = getattr(self, "_resumed_history", []) + getattr(self, "history", [])
        return {
            "run_name": self.run_name, "status": status,
            "output_dir": str(self.output_dir) if self.output_dir else "",
            "model": self.cfg.model.name, "dataset": self.cfg.data.dataset,
            "mode": self.cfg.drop.mode if self.cfg.drop.enabled else "baseline",
            "epochs": len(history),
            "final_accuracy": val_acc, "final_loss": val_loss,
            "final_accuracy_scaled": val_scaled,
            "best_accuracy": getattr(self, "best_accuracy", 0.0),
            "wall_time_s": (time.perf_counter() - self._t0) + getattr(
                self, "_resumed_elapsed", 0.0),
            "train_time_s": getattr(self, "_train_time", 0.0),
            "dropped": ld.drop_log() if ld else [],
            "units": len(ld.units) if ld else 0,
            "forward_flops_saved": s.get("cumulative_forward_flops_saved", 0.0),
            "train_flops_saved": s.get("cumulative_train_flops_saved", 0.0),
            "final_forward_flops_saved": s.get("forward_flops_saved", 0.0),
            "final_train_flops_saved": s.get("train_flops_saved", 0.0),
            "trainable_params": s.get("trainable_params", 0),
            "total_params": s.get("total_params", 0),
            "step_time_s": s.get("step_time_s"), "full_step_time_s": s.get("full_step_time_s"),
            "measured_time_saved": s.get("measured_time_saved"),
            "time_saved_s": s.get("time_saved_s", 0.0), "efficiency": s.get("efficiency"),
            "score_overhead": s.get("score_overhead", 0.0),
            "history": history,
            "checkpoint": str(self.output_dir / "checkpoint.pt") if self.output_dir else "",
            "weights": str(self.output_dir / "final.pt") if self.output_dir else "",
            "device": self.plan.description if hasattr(self, "plan") else "",
        }

    def _finish(self, status: str, message: str) -> FitResult:
        summary = self.summary(status)
        if status == "cancelled" and self.output_dir is not None:
            shutil.rmtree(self.output_dir, ignore_errors=True)
            summary["output_dir"] = ""
        elif self.output_dir is not None and self.model is not None and self.output_dir.exists():
            import json

            try:
                if status == "finished":
                    save_checkpoint(self.output_dir / "final.pt",
                                    {"model": self.model.state_dict(), "epoch": -1})
                atomic_write_text(self.output_dir / "summary.json",
                                  json.dumps(summary, indent=2, default=str))
            except LearnDropError as exc:  # e.g. the disk filled up: the run ends as failed
                self._fail(exc, True)
                raise
        call_hook(self.callbacks, "on_fit_end", FitEnd(status=status, message=message,
                                                       summary=summary))
        return FitResult(status, message, summary)

    def _fail(self, exc: BaseException, started: bool) -> None:
        message = str(exc) if isinstance(exc, LearnDropError) else (
            f"internal error: {type(exc).__name__}: {exc}".splitlines()[0])
        summary = self.summary("failed") if self._prepared else {"status": "failed"}
        summary["error"] = message
        call_hook(self.callbacks, "on_fit_end", FitEnd(status="failed", message=message,
                                                       summary=summary))

