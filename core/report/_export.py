"""Writing a report: HTML, CSV, JSON and TensorBoard here; other formats (the PDF, drawn with
Qt) come from the ``learndrop.exporters`` entry-point group, which the desktop app fills."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from ..events import event_to_dict
from ..files import atomic_write_text
from ..plugins import load_plugin
from ..savings import SavingsReport
from ._model import Report, ReportError, RunData, csv_number, finite, json_safe

__all__ = ["FORMATS", "Exporter", "export", "format_for", "report_dict", "write_csv",
           "write_html", "write_json", "write_tensorboard"]

FORMATS = ("html", "pdf", "csv", "json", "tensorboard")
Exporter = Callable[[Report, "str | Path"], "str | Path"]

# ---- exports -----------------------------------------------------------------------------------
def format_for(path: str | Path, fmt: str | None) -> str:
    """The format asked for, or the one the output's suffix names."""
    if fmt:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise ReportError(f"unknown report format '{fmt}': use one of "
                              f"{', '.join(FORMATS)}")
        return fmt
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix in ("html", "htm"):
        return "html"
    if suffix in ("pdf", "csv", "json"):
        return suffix
    raise ReportError(f"cannot tell the report format from '{path}': add --format "
                      f"{'|'.join(FORMATS)}")


def export(report: Report, fmt: str, path: str | Path) -> Path:
    """Write ``report`` as ``fmt`` to ``path`` (atomically); returns the path written."""
    fmt = format_for(path, fmt)
    if fmt == "html":
        return write_html(report, path)
    if fmt == "csv":
        return write_csv(report, path)
    if fmt == "json":
        return write_json(report, path)
    if fmt == "tensorboard":
        return write_tensorboard(report, path)
    writer: Exporter = load_plugin(
        "learndrop.exporters", fmt, what=f"the {fmt.upper()} report writer (drawn with Qt)",
        install="pip install PySide6-Essentials, or use --format html")
    return Path(writer(report, path))


def write_html(report: Report, path: str | Path) -> Path:
    from ._html import render_html

    return atomic_write_text(path, render_html(report))


def write_csv(report: Report, path: str | Path) -> Path:
    """The per-unit score history: one row per check and scored unit, for every run."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["run", "check", "step", "epoch", "unit_index", "unit", "change", "score",
                  "trend", "settled"])
    for data in [report.run, *report.others]:
        for n, check in enumerate(data.checks):
            for u in data.units:
                if u.is_head or u.index >= len(check.scores):
                    continue
                out.writerow([data.name, n, check.step, csv_number(check.epoch), u.index, u.name,
                              csv_number(check.changes[u.index]), csv_number(check.scores[u.index]),
                              csv_number(check.trends[u.index] if u.index < len(check.trends)
                                   else None),
                              int(bool(check.settled[u.index]))
                              if u.index < len(check.settled) else 0])
    return atomic_write_text(path, buf.getvalue())


def _savings_dict(d: RunData) -> dict[str, Any]:
    """The run's savings record at its end; every figure ``None`` when no epoch ended but
    the network's parameter count."""
    s = d.savings()
    if s is None:
        return {**dict.fromkeys(f.name for f in fields(SavingsReport)),
                "total_params": d.start.total_params}
    return asdict(s)


def report_dict(report: Report) -> dict[str, Any]:
    """Everything in a report as JSON-ready data (NaN and infinities become null)."""
    def run_dict(d: RunData) -> dict[str, Any]:
        return {
            "run": dict(asdict(d.record), summary=d.record.summary.to_dict()),
            "fit_start": event_to_dict(d.start),
            "units": [dict(asdict(r), state=r.state) for r in d.unit_rows()],
            "accuracy": asdict(d.accuracy()),
            "savings": _savings_dict(d),
            "epochs": [event_to_dict(e) for e in d.epochs],
            "score_checks": [event_to_dict(c) for c in d.checks],
            "drops": [dict(event_to_dict(x), epoch_number=d.epoch_number(x.step))
                      for x in d.drops],
            "restores": [dict(event_to_dict(x), epoch_number=d.epoch_number(max(x.step, 1)),
                              text=x.text) for x in d.restores],
            "progress": [event_to_dict(p) for p in d.progress],
            "checkpoints": [event_to_dict(c) for c in d.checkpoints],
            "actions": [event_to_dict(a) for a in d.actions],
            "log": [event_to_dict(m) for m in d.messages],
            "fit_end": event_to_dict(d.end) if d.end else None,
        }

    return json_safe({
        "format": "learndrop-report", "version": 1,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(report.generated)),
        "title": report.title,
        "run": run_dict(report.run),
        "compared_with": [run_dict(o) for o in report.others],
        "baseline": report.baseline.name if report.baseline else None,
    })


def write_json(report: Report, path: str | Path) -> Path:
    text = json.dumps(report_dict(report), indent=1, allow_nan=False, default=str)
    return atomic_write_text(path, text + "\n")


def write_tensorboard(report: Report, path: str | Path) -> Path:
    """TensorBoard event files, one sub-folder per run, in the folder ``path``."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ReportError("--format tensorboard needs the tensorboard package: "
                          "pip install tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    target = Path(path)
    try:
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tensorboard-", dir=target))
    except OSError as exc:
        raise ReportError(f"cannot write {target}: {exc.strerror or exc} (choose a folder "
                          f"you can write to)") from None
    try:
        for data in [report.run, *report.others]:
            writer = SummaryWriter(log_dir=str(staging / data.name))
            _tensorboard_run(writer, data)
            writer.close()
            final = target / data.name
            if final.is_symlink() or final.exists():
                _check_tensorboard_folder(final)
                shutil.rmtree(final)
            os.replace(staging / data.name, final)
    except OSError as exc:
        raise ReportError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _check_tensorboard_folder(folder: Path) -> None:
    """Only a folder of TensorBoard event files (an earlier export) is ever replaced."""
    ok = folder.is_dir() and not folder.is_symlink() and all(
        p.is_file() and not p.is_symlink() and p.name.startswith("events.out.tfevents.")
        for p in folder.iterdir())
    if not ok:
        raise ReportError(f"{folder} exists and holds more than TensorBoard event files: "
                          f"export to another folder (nothing was replaced)")


def _tensorboard_run(writer: Any, data: RunData) -> None:
    writer.add_text("config", "```\n" + json.dumps(data.record.config, indent=2) + "\n```")
    writer.add_text("environment", json.dumps(data.record.environment, indent=2))
    for e in data.epochs:
        for tag, value in (("loss/train", e.train_loss), ("loss/val", e.val_loss),
                           ("accuracy/train", e.train_accuracy),
                           ("accuracy/val", e.val_accuracy),
                           ("accuracy/val_scaled", e.val_accuracy_scaled),
                           ("savings/train_flops_saved_total",
                            e.savings.train_flops_saved_total),
                           ("savings/forward_flops_saved_total",
                            e.savings.forward_flops_saved_total),
                           ("savings/time_saved_s_total", e.savings.time_saved_s_total),
                           ("lr", e.lr)):
            if value is not None and finite(value):
                writer.add_scalar(tag, value, e.step)
    for p in data.progress:
        if finite(p.loss):
            writer.add_scalar("loss/batch", p.loss, p.step)
    for check in data.checks:
        for u in data.units:
            if u.index < len(check.scores) and check.scores[u.index] is not None:
                writer.add_scalar(f"score/{u.index:02d}_{u.name}", check.scores[u.index],
                                  check.step)
    for d in data.drops:
        writer.add_text("drops", f"step {d.step} (epoch {d.epoch:.2f}): {d.unit} "
                                 f"({d.reason}, score {csv_number(d.score)})", d.step)
    for r in data.restores:
        writer.add_text("restores", f"step {r.step} (epoch {r.epoch:.2f}): {r.text}", r.step)


