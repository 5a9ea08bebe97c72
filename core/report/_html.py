"""A report as one self-contained HTML page, its plots drawn as inline SVG.

The same page, with the plots as images, is what the desktop app prints to PDF, so the
markup keeps to what Qt's rich-text engine understands (tables with attributes, simple CSS).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from html import escape

from . import tables as t
from ._model import Report, RunData
from ._svgplot import PALETTE, Marker, Series, heatmap, line_chart

__all__ = ["Plot", "plots", "render_html"]

#: a drop the policy undid, on the report's score chart
RESTORE_COLOR = "#00838f"

_CSS = """
body { font-family: Helvetica, Arial, sans-serif; color: #222; margin: 24px; max-width: 980px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; margin-top: 26px; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #bbb; padding: 3px 8px; font-size: 12px; text-align: left; }
th { background: #eef2f6; }
td.num { text-align: right; }
p.small, span.small { font-size: 11px; color: #555; }
div.plot { margin: 10px 0; }
"""


@dataclass(frozen=True)
class Plot:
    """One chart of a report: ``key`` is unique and file-name safe."""

    key: str
    title: str
    svg: str
    caption: str = ""


def _x(d: RunData, step: int) -> float:
    """Epochs completed at ``step`` (fractional), the x axis of every run chart."""
    return d.epoch_of_step(step)


def _run_plots(d: RunData, prefix: str = "") -> list[Plot]:
    scored = [u for u in d.units if not u.is_head]
    checks = d.checks
    threshold = d.record.config.get("drop", {}).get("threshold")
    markers = [Marker(f"{x.unit} dropped", x=x.epoch, color="#c0392b") for x in d.drops]
    markers += [Marker(f"{x.unit} restored", x=x.epoch, color=RESTORE_COLOR)
                for x in d.restores]
    if isinstance(threshold, (int, float)):
        markers.append(Marker(f"threshold {threshold:g}", y=float(threshold)))
    scores = [Series(u.name, [c.epoch for c in checks],
                     [c.scores[u.index] if u.index < len(c.scores) else None for c in checks])
              for u in scored]
    drawn = ["1 = the unit learns as fast as it ever did; near 0 = settled."]
    if d.drops:
        drawn.append("Dashed red: drops.")
    if d.restores:
        drawn.append("Dashed teal: drops undone (the training loss rose after them).")
    if isinstance(threshold, (int, float)):
        drawn.append("Dashed grey: the drop threshold.")
    out = [Plot(prefix + "scores", "Learning scores",
                line_chart(scores, title=f"Learning score per unit — {d.name}",
                           x_label="epoch", y_label="learning score", y_range=(0.0, 1.05),
                           markers=markers), " ".join(drawn)),
           Plot(prefix + "heatmap", "Score heatmap",
                heatmap([[c.scores[u.index] if u.index < len(c.scores) else None
                          for c in checks] for u in scored], [u.name for u in scored],
                        [c.epoch for c in checks],
                        title=f"Learning score by unit and check — {d.name}",
                        x_label="epoch"),
                "Each row is a unit, each column a score check"
                + ("; grey once dropped." if d.drops else "."))]
    ep = [_x(d, e.step) for e in d.epochs]
    loss = [Series("batch loss", [_x(d, p.step) for p in d.progress],
                   [p.loss for p in d.progress], color="#b0c4de"),
            Series("train loss", ep, [e.train_loss for e in d.epochs], color=PALETTE[0],
                   points=True),
            Series("validation loss", ep, [e.val_loss for e in d.epochs], color=PALETTE[1],
                   points=True)]
    acc = [Series("train", ep, [e.train_accuracy for e in d.epochs], color=PALETTE[0],
                  points=True),
           Series("validation (full)", ep, [e.val_accuracy for e in d.epochs],
                  color=PALETTE[1], points=True)]
    if any(e.val_accuracy_scaled is not None for e in d.epochs):
        acc.append(Series("validation (scaled)", ep,
                          [e.val_accuracy_scaled for e in d.epochs], color=PALETTE[2],
                          dashed=True, points=True))
    sav = [Series("train FLOPs, total", ep,
                  [e.savings.train_flops_saved_total for e in d.epochs], color=PALETTE[2],
                  points=True),
           Series("train FLOPs, per step", ep,
                  [e.savings.train_flops_saved_now for e in d.epochs], color=PALETTE[0],
                  dashed=True),
           Series("fwd FLOPs, per step", ep,
                  [e.savings.forward_flops_saved_now for e in d.epochs], color=PALETTE[4],
                  dashed=True),
           Series("step time, measured", ep,
                  [e.savings.measured_time_saved_now for e in d.epochs], color=PALETTE[3],
                  points=True)]
    out += [
        Plot(prefix + "loss", "Loss", line_chart(
            loss, title=f"Loss — {d.name}", x_label="epoch", y_label="loss"), ""),
        Plot(prefix + "accuracy", "Accuracy", line_chart(
            acc, title=f"Accuracy — {d.name}", x_label="epoch", y_label="accuracy",
            percent=True, markers=[m for m in markers if m.x is not None]), ""),
        Plot(prefix + "savings", "Savings over time", line_chart(
            sav, title=f"Savings over time — {d.name}", x_label="epoch",
            y_label="saved", percent=True),
             "Shares of the full network's cost saved: training FLOPs over the run so far "
             "(total) and per step now, forward FLOPs per step now (counted)"
             + (", and time per step now (measured)." if any(
                 e.savings.measured_time_saved_now is not None for e in d.epochs) else ".")),
    ]
    return out


def _comparison_plots(runs: list[RunData]) -> list[Plot]:
    def series(fn: Callable[[RunData], tuple[list[float], list[float | None]]]
               ) -> list[Series]:
        return [Series(d.name, *fn(d), color=PALETTE[i % len(PALETTE)], points=True,
                       dashed=not d.record.drop_enabled) for i, d in enumerate(runs)]

    dashed = ("Dashed: baselines (full network)."
              if any(not d.record.drop_enabled for d in runs) else "")
    return [
        Plot("cmp_accuracy", "Accuracy by epoch", line_chart(
            series(lambda d: ([_x(d, e.step) for e in d.epochs],
                              [e.val_accuracy for e in d.epochs])),
            title="Validation accuracy by epoch", x_label="epoch", y_label="accuracy",
            percent=True), dashed),
        Plot("cmp_time", "Accuracy by wall time", line_chart(
            series(lambda d: ([e.elapsed_s for e in d.epochs],
                              [e.val_accuracy for e in d.epochs])),
            title="Validation accuracy by wall-clock time", x_label="seconds",
            y_label="accuracy", percent=True), dashed),
        Plot("cmp_savings", "Training FLOPs saved", line_chart(
            series(lambda d: ([_x(d, e.step) for e in d.epochs],
                              [e.savings.train_flops_saved_total for e in d.epochs])),
            title="Training FLOPs saved (cumulative)", x_label="epoch", y_label="saved",
            percent=True), dashed),
    ]


def plots(report: Report) -> list[Plot]:
    """Every chart of the report, in the order the page shows them."""
    out = _run_plots(report.run)
    if report.others:
        out += _comparison_plots([report.run, *report.others])
    return out


# ---- markup ------------------------------------------------------------------------------------
def _kv(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table border="1" cellspacing="0" cellpadding="4">{body}</table>'


def _grid(head: list[str], rows: list[list[str]], numeric: frozenset[int] = frozenset()
          ) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num" align="right">{escape(c)}</td>' if i in numeric
            else f"<td>{escape(c)}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return (f'<table border="1" cellspacing="0" cellpadding="4" width="100%"><tr>{th}</tr>'
            f"{body}</table>")


def _plot_html(p: Plot, image: Callable[[Plot], str] | None) -> str:
    graphic = image(p) if image else p.svg
    caption = f'<p class="small">{escape(p.caption)}</p>' if p.caption else ""
    return f'<div class="plot">{graphic}{caption}</div>'


def render_html(report: Report, image: Callable[[Plot], str] | None = None) -> str:
    """The report page. ``image(plot)`` returns the markup for a plot (e.g. an ``<img>``);
    by default each plot is inline SVG, so the file needs nothing else."""
    d = report.run
    charts = {p.key: p for p in plots(report)}
    page = "page-break-before: always"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(report.title)}</h1>",
        f'<p class="small">Made {escape(t.when(report.generated))} from the Learn&amp;Drop run '
        f"store. Learn&amp;Drop drops units (layers or blocks) whose parameters stopped "
        f"changing, so training does less work.</p>",
        "<h2>Summary</h2>", _kv(t.headline_rows(d)),
        "<h2>Run</h2>", _kv(t.overview_rows(d)),
        "<h2>Savings</h2>", _kv(t.savings_rows(d)),
        '<p class="small">FLOPs are forward FLOPs per sample counted once on the full model '
        "(2 FLOPs per multiply-add; batch norm, activations and pooling not counted). A "
        "training unit costs 3x its forward FLOPs per step, a dropped unit outside the "
        "dropped prefix 2x, the dropped prefix 1x (freeze) or nothing (cache, skip). The "
        "efficiency is the measured time saving divided by the FLOP-predicted one.</p>",
        "<h2>Units</h2>", _grid(*t.unit_table(d), numeric=frozenset({0, 2, 3, 4, 7, 8})),
    ]
    if d.drops:
        parts += ["<h2>Drops</h2>", _grid(
            ["Step", "Epoch", "Unit", "Reason", "Score"],
            [[str(x.step), f"{x.epoch:.2f}", x.unit, x.reason, t.score(x.score)]
             for x in d.drops], numeric=frozenset({0, 1, 4}))]
    if d.restores:
        parts += ["<h2>Restores</h2>",
                  '<p class="small">Drops the policy undid (reversible drops): the training '
                  "loss after the drop rose above the loss before it by more than its noise, "
                  "so the unit trains again.</p>",
                  _grid(*t.restore_table(d), numeric=frozenset({0, 1, 4, 5}))]
    if d.actions:
        parts += ["<h2>Your actions</h2>",
                  '<p class="small">What was done to the run while it trained: when it was '
                  "asked, and the epoch (counted from 1; in brackets the epochs completed) and "
                  "step at which the run took it.</p>",
                  _grid(*t.action_table(d), numeric=frozenset({1, 2}))]
    parts.append(f'<h2 style="{page}">Plots</h2>')
    parts += [_plot_html(charts[k], image) for k in
              ("scores", "heatmap", "loss", "accuracy", "savings")]
    if report.others:
        runs = [d, *report.others]
        reference = report.baseline or report.others[0]
        parts += [f'<h2 style="{page}">Comparison</h2>',
                  f'<p class="small">Compared with {escape(reference.name)}'
                  + (" (baseline: the full network)" if not reference.record.drop_enabled
                     else "") + ".</p>",
                  _grid(*t.comparison_rows(runs, reference)),
                  "<h3>Drop timeline by epoch</h3>", _grid(*t.drop_timeline(runs))]
        parts += [_plot_html(charts[k], image) for k in
                  ("cmp_accuracy", "cmp_time", "cmp_savings")]
    parts += [f'<h2 style="{page}">Configuration</h2>', _kv(t.config_rows(d)),
              "<h2>Environment</h2>", _kv(t.environment_rows(d))]
    log = [(m.level, m.message) for m in d.messages]
    log += [("checkpoint", f"epoch {c.epoch}, step {c.step}: {c.path}")
            for c in d.checkpoints[-20:]]
    if d.end is not None:
        log.append(("end", f"{d.end.status}: {d.end.message}"))
    if log:
        parts += ["<h2>Log</h2>", _grid(["Kind", "Message"], [list(x) for x in log])]
    parts.append(f'<p class="small">Learn&amp;Drop report, '
                 f'{escape(time.strftime("%Y-%m-%d %H:%M:%S"))}.</p></body></html>')
    return "\n".join(parts)
