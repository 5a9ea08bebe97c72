"""Learn&Drop live in TensorBoard, beside your other runs.

``TensorBoardCallback`` is an engine callback that writes with
:class:`torch.utils.tensorboard.SummaryWriter` as training goes:

- ``learndrop/score/<unit>`` - each unit's learning score at every check (also drawn together
  in one chart on the Custom Scalars tab);
- drops: ``learndrop/units_dropped``, a scalar that steps up at each drop's step (the
  marker), and one line of text per drop under ``learndrop/drops``;
- savings, each under its name in the savings record: ``learndrop/train_flops_saved_now`` and
  ``learndrop/forward_flops_saved_now`` (fractions of the full network's FLOPs saved per step
  now), ``learndrop/train_flops_saved_total`` (over the run so far),
  ``learndrop/time_saved_s_total``, ``learndrop/trainable_params_now``;
- ``loss/train``, ``loss/val``, ``accuracy/train``, ``accuracy/val``, ``loss/batch``, ``lr``
  (the command line's runs; in your own loop, pass yours to :meth:`log_metrics`);
- the run's settings as hyperparameters (the HParams tab), its units and warnings as text.

With the command line: ``learndrop train ... --tensorboard runs/`` writes each run into
``runs/<run name>``; then ``tensorboard --logdir runs``. In your own loop::

    tb = TensorBoardCallback("runs/mine", hparams={"threshold": 0.2}).attach(ld)
    ...
    tb.log_metrics({"loss/train": loss.item()}, step=ld.step_count)
    tb.close()
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summaries

from learndrop.core import (
    Callback,
    DropEvent,
    EpochEnd,
    FitEnd,
    FitStart,
    LearnDrop,
    Progress,
    ScoreCheck,
)

__all__ = ["TensorBoardCallback"]

#: the savings record's figures written as scalars, each under ``learndrop/<name>``
_SAVINGS_SCALARS = ("train_flops_saved_now", "forward_flops_saved_now",
                    "train_flops_saved_total", "time_saved_s_total", "trainable_params_now")
log = logging.getLogger(__name__)
_Hook = TypeVar("_Hook", bound=Callable[..., Any])

#: the HParams tab shows these scalars' last values beside each run's settings
_HPARAM_METRICS = ("accuracy/val", "loss/val", "learndrop/units_dropped",
                   "learndrop/train_flops_saved_total")


class _Stopped(Exception):
    """Writing stopped after a failure (already reported)."""


def _optional(hook: _Hook) -> _Hook:
    """A hook whose writes may fail (a full disk): the first failure is reported once and
    ends the writing; every later call does nothing."""

    @functools.wraps(hook)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.incomplete is not None:
            return None
        try:
            return hook(self, *args, **kwargs)
        except _Stopped:
            return None
        except OSError as exc:
            self._give_up(exc)
            return None

    return guarded  # type: ignore[return-value]


class TensorBoardCallback(Callback):
    """Writes Learn&Drop's scores, drops, savings and the run's metrics to TensorBoard.

    Args:
        log_dir: the folder for the event files. A run that has a name (every command-line
            run, or ``run_name=``) writes into ``log_dir/<run name>``, so runs sit side by
            side under one ``tensorboard --logdir``; otherwise into ``log_dir`` itself.
        run_name: the run's sub-folder.
        hparams: settings to show on the HParams tab (the command line's runs add their whole
            config).
        flush_secs: how often the writer flushes on its own (it also flushes at each check
            and epoch end).
        on_failure: called once, with a one-line message, when the event files cannot be
            written any more (the default logs it as a warning).
    """

    def __init__(self, log_dir: str | Path, *, run_name: str | None = None,
                 hparams: dict[str, Any] | None = None, flush_secs: int = 10,
                 on_failure: Callable[[str], None] | None = None) -> None:
        self.log_dir = Path(log_dir).expanduser()
        self.run_name = run_name
        self.hparams: dict[str, Any] = dict(hparams or {})
        self.flush_secs = int(flush_secs)
        self.writer: SummaryWriter | None = None
        self._units: list[str] = []
        self._ld: LearnDrop | None = None
        self._dropped = 0
        self._dropped_point: tuple[int, int] | None = None  # last (step, count) written
        self._warnings: list[str] = []  # the command line warns before the run has a name
        self.on_failure = on_failure
        #: why the event files stopped being written (``None`` while they are complete)
        self.incomplete: str | None = None

    # ---- for your own training loop -----------------------------------------------------------
    def attach(self, ld: LearnDrop) -> TensorBoardCallback:
        """Follow ``ld``: registers this callback and reads unit names and savings from it."""
        self._ld = ld
        self._units = [u.name for u in ld.units]
        self._dropped = len(ld.dropped)
        ld.add_callback(self)
        self._open()
        return self

    @_optional
    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Write your own scalars (``{"loss/train": 0.41, "accuracy/val": 0.87}``)."""
        writer = self._open()
        for tag, value in metrics.items():
            _scalar(writer, tag, value, step)

    @_optional
    def close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()

    @property
    def path(self) -> Path:
        """The folder this callback writes its event files into."""
        return self.log_dir / self.run_name if self.run_name else self.log_dir

    # ---- engine hooks -------------------------------------------------------------------------
    @_optional
    def on_fit_start(self, event: FitStart) -> None:
        if self.run_name is None and event.run_name:
            self.run_name = event.run_name
        self._units = [u.name for u in event.units]
        self.hparams = {**_flatten(event.config), **self.hparams}
        writer = self._open()
        rows = [f"| {u.index} | {u.name} | {u.params:,} | {u.flops_share:.1%} |"
                for u in event.units]
        writer.add_text("learndrop/units", "\n".join(
            ["| # | unit | params | forward FLOPs |", "|---|---|---|---|", *rows]), 0)
        writer.add_text("learndrop/config", "```\n" + json.dumps(event.config, indent=2)
                        + "\n```", 0)
        self._dropped = 0

    @_optional
    def on_progress(self, event: Progress) -> None:
        writer = self._open()
        _scalar(writer, "loss/batch", event.loss, event.step)
        _scalar(writer, "lr", event.lr, event.step)
        _scalar(writer, "throughput/images_per_s", event.images_per_s, event.step)

    @_optional
    def on_scores(self, event: ScoreCheck) -> None:
        writer = self._open()
        for i, score in enumerate(event.scores):
            if score is not None:
                _scalar(writer, f"learndrop/score/{self._unit(i)}", score, event.step)
        if self._ld is not None:
            self._dropped = len(self._ld.dropped)
            self._units_dropped(event.step)
            self._savings(self._ld.savings(), event.step)
        writer.flush()

    @_optional
    def on_drop(self, event: DropEvent) -> None:
        writer = self._open()
        self._units_dropped(event.step)  # the count before and after: a step up at this step
        self._dropped += 1
        self._units_dropped(event.step)
        score = "n/a" if event.score is None else f"{event.score:.3f}"
        writer.add_text("learndrop/drops", f"**{event.unit}** dropped at step {event.step} "
                        f"(epoch {event.epoch:.2f}, {event.reason}, score {score}, "
                        f"mode {event.mode})", event.step)
        if self._ld is not None:
            self._savings(self._ld.savings(), event.step)

    @_optional
    def on_epoch_end(self, event: EpochEnd) -> None:
        writer = self._open()
        for tag, value in (("loss/train", event.train_loss), ("loss/val", event.val_loss),
                           ("accuracy/train", event.train_accuracy),
                           ("accuracy/val", event.val_accuracy),
                           ("accuracy/val_scaled", event.val_accuracy_scaled),
                           ("lr", event.lr), ("throughput/images_per_s", event.images_per_s)):
            _scalar(writer, tag, value, event.step)
        self._dropped = len(event.dropped)
        self._units_dropped(event.step)
        self._savings(dataclasses.asdict(event.savings), event.step)
        writer.flush()

    @_optional
    def on_warning(self, message: str) -> None:
        if self.writer is None and self._ld is None:
            self._warnings.append(message)  # written once the run's folder is known
        else:
            self._open().add_text("learndrop/warnings", message)

    @_optional
    def on_fit_end(self, event: FitEnd) -> None:
        if self.writer is None:
            return
        s = event.summary
        lines = [f"**{event.status}**: {event.message}"]
        for key, value in (("final accuracy", s.final_accuracy),
                           ("best accuracy", s.best_accuracy),
                           ("training FLOPs saved over the run",
                            s.savings.train_flops_saved_total),
                           ("forward FLOPs saved over the run",
                            s.savings.forward_flops_saved_total),
                           ("wall time (s)", s.wall_time_s)):
            if math.isfinite(value):
                lines.append(f"- {key}: {value:.4g}")
        self.writer.add_text("learndrop/summary", "\n".join(lines))
        self.close()

    # ---- internals ----------------------------------------------------------------------------
    def _give_up(self, exc: OSError) -> None:
        """The event files cannot be written: say so once, stop writing, the run goes on."""
        text = str(exc).strip()
        reason = ("the disk is full" if exc.errno == 28 else exc.strerror
                  or (text.splitlines()[0] if text else type(exc).__name__))
        self.incomplete = f"writing stopped at {self.path}: {reason}"
        writer, self.writer = self.writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - it failed already; what is left is lost
                pass
        message = (f"TensorBoard output is incomplete ({self.incomplete}); the run goes on "
                   f"without it")
        if self.on_failure is not None:
            self.on_failure(message)
        else:
            log.warning("%s", message)

    def _open(self) -> SummaryWriter:
        if self.incomplete is not None:
            raise _Stopped
        if self.writer is None:
            _quiet_writer_threads()
            self.writer = SummaryWriter(log_dir=str(self.path), flush_secs=self.flush_secs)
            self._write_layout(self.writer)
            for message in self._warnings:
                self.writer.add_text("learndrop/warnings", message)
            self._warnings.clear()
        return self.writer

    def _write_layout(self, writer: SummaryWriter) -> None:
        writer.add_custom_scalars({"Learn&Drop": {
            "learning score by unit": ["Multiline", [r"learndrop/score/.*"]],
            "training FLOPs saved": ["Multiline", ["learndrop/train_flops_saved_now",
                                                   "learndrop/train_flops_saved_total"]],
            "units dropped": ["Multiline", ["learndrop/units_dropped"]],
        }})
        hp = {k: _hparam_value(v) for k, v in self.hparams.items()}
        file_writer = writer.file_writer
        assert file_writer is not None
        for summary in hparams_summaries(hp, dict.fromkeys(_HPARAM_METRICS, 0.0)):
            file_writer.add_summary(summary)

    def _units_dropped(self, step: int) -> None:
        if self._dropped_point != (step, self._dropped):
            self._dropped_point = (step, self._dropped)
            _scalar(self._open(), "learndrop/units_dropped", self._dropped, step)

    def _unit(self, index: int) -> str:
        return self._units[index] if index < len(self._units) else f"unit{index}"

    def _savings(self, savings: Mapping[str, Any], step: int) -> None:
        """``savings``: ``ld.savings()`` or a :class:`SavingsReport` as a dict; each figure
        is written under ``learndrop/`` and its name in the record."""
        writer = self._open()
        for key in _SAVINGS_SCALARS:
            _scalar(writer, f"learndrop/{key}", savings.get(key), step)


def _quiet_writer_threads() -> None:
    """TensorBoard's writer thread re-raises a failed write (a full disk) after keeping it for
    the next write, where this callback reports it in one line: its traceback on stderr
    through ``threading.excepthook`` is left out (the hook is wrapped once, and again if
    something replaced it since)."""
    previous = threading.excepthook
    if getattr(previous, "learndrop_quiet", False):
        return

    def hook(args: Any) -> None:
        thread = type(args.thread) if args.thread is not None else type(None)
        if (thread.__module__.startswith("tensorboard.") and args.exc_type is not None
                and issubclass(args.exc_type, OSError)):
            return
        previous(args)

    hook.learndrop_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def _scalar(writer: SummaryWriter, tag: str, value: float | int | None, step: int) -> None:
    if value is not None and math.isfinite(float(value)):
        writer.add_scalar(tag, float(value), step)


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _hparam_value(value: Any) -> bool | int | float | str:
    if isinstance(value, (bool, int, float, str)):
        return value
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)
