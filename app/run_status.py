"""The words of the main window's status line about a run: its progress while it trains and
its summary once it has ended (or was opened from the run history)."""

from __future__ import annotations

from learndrop.core.events import EpochEnd, FitEnd, Progress, display_epoch
from learndrop.core.format import clock as _clock
from learndrop.core.format import is_number, percent
from learndrop.core.summary import RunSummary

__all__ = ["epoch_text", "progress_text", "summary_text"]


def progress_text(ev: Progress, epochs: int) -> str:
    """The state line during an epoch of ``epochs``."""
    return (f"Running · epoch {display_epoch(ev.epoch)}/{epochs} · batch {ev.batch}/"
            f"{ev.batches} · loss {ev.loss:.4f} · {ev.images_per_s:,.0f} img/s · "
            f"ETA {_clock(ev.eta_s)}")


def epoch_text(ev: EpochEnd, epochs: int) -> str:
    """The state line after an epoch of ``epochs``."""
    return (f"Running · epoch {display_epoch(ev.epoch)}/{epochs} done · validation "
            f"accuracy {ev.val_accuracy:.1%} · {len(ev.dropped)} dropped · "
            f"ETA {_clock(ev.eta_s)}")


def summary_text(status: str, end: FitEnd | None, error: str | None) -> str:
    """One line on how a run ended: its status, accuracy, drops, FLOPs saved and time."""
    if error:
        return f"Failed: {error}"
    summary = end.summary if end else RunSummary()
    words = {"finished": "Finished", "stopped": "Stopped (checkpoint kept)",
             "cancelled": "Cancelled (files discarded)"}
    parts = [words.get(status, status.capitalize())]
    if is_number(summary.final_accuracy):
        parts.append(f"accuracy {percent(summary.final_accuracy)}")
    dropped = summary.dropped
    if summary.units and status != "cancelled":  # units: a run that built its network
        parts.append(f"{len(dropped)} unit{'s' if len(dropped) != 1 else ''} dropped")
    for saved, what in ((summary.savings.forward_flops_saved_total, "forward"),
                        (summary.savings.train_flops_saved_total, "training")):
        if saved >= 0.005 and status != "cancelled":
            parts.append(f"{percent(saved, 0)} {what} FLOPs saved")
    if summary.wall_time_s:
        parts.append(f"in {_clock(summary.wall_time_s)}")
    return " · ".join(parts)
