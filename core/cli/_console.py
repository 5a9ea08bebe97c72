"""Console progress for ``learndrop train``, ``resume`` and ``bench``."""

from __future__ import annotations

import sys
from typing import Any

from .. import format as fmt
from ..events import Callback, display_epoch

__all__ = ["Console"]


class Console(Callback):
    """Per-epoch progress bar and lines on stderr (nothing when ``quiet``)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.epochs = 0
        self.units: list[str] = []

    def _out(self, text: str, end: str = "\n") -> None:
        if not self.quiet:
            sys.stderr.write(text + end)
            sys.stderr.flush()

    def on_fit_start(self, ev: Any) -> None:
        self.epochs = ev.epochs
        what = "full baseline" if not ev.drop_enabled else f"Learn&Drop, mode={ev.mode}"
        self._out(f"run {ev.run_name}: {ev.config['model']['name']} on "
                  f"{ev.config['data']['dataset']}, {len(ev.units)} units, {what}, "
                  f"device {ev.device}")

    def on_progress(self, ev: Any) -> None:
        if not self.tty:
            return
        width = 24
        done = int(width * ev.batch / max(ev.batches, 1))
        self._out(f"\repoch {display_epoch(ev.epoch)}/{self.epochs} "
                  f"[{'#' * done}{'.' * (width - done)}] loss {ev.loss:.4f} "
                  f"{fmt.rate(ev.images_per_s)}", end="")

    def on_drop(self, ev: Any) -> None:
        if self.tty:
            self._out("")
        score = "" if ev.score is None else f" (score {fmt.score(ev.score)})"
        self._out(f"  dropped {ev.unit} at epoch {ev.epoch:.2f}{score}, {ev.reason}")

    def on_restore(self, ev: Any) -> None:
        if self.tty:
            self._out("")
        self._out(f"  {ev.text} (epoch {ev.epoch:.2f})")

    def on_warning(self, message: str) -> None:
        self._out(f"  warning: {message}")

    def on_epoch_end(self, ev: Any) -> None:
        if self.tty:
            self._out("\r", end="")
        s = ev.savings
        scaled = ("" if ev.val_accuracy_scaled is None
                  else f" (scaled-down {fmt.percent(ev.val_accuracy_scaled, 2)})")
        self._out(f"epoch {display_epoch(ev.epoch)}/{self.epochs}: loss {ev.train_loss:.4f} "
                  f"val acc {fmt.percent(ev.val_accuracy, 2)}{scaled}, "
                  f"{fmt.duration(ev.epoch_time_s)}, {len(ev.dropped)} dropped, train FLOPs "
                  f"saved now {fmt.percent(s.train_flops_saved_now)}")
