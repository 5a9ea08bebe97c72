"""A sweep's report: its grouped table (a row per combination of settings, means and spreads
over the seeds, speed-up and accuracy against the baseline), the trade-off scatter (training
time saved against accuracy difference, a point per combination) and the overlaid learning
scores and accuracies of the combinations. HTML with inline SVG; the PDF is drawn with Qt
(the ``learndrop.exporters`` entry point ``pdf`` takes a sweep's report too)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from .. import format as fmt
from ..files import atomic_write_text
from ..plugins import load_plugin
from ..store import RunStore
from ..sweep import BASELINE, SweepPlan, format_sweep_table, sweep_rows
from ._html import Plot
from ._model import ReportError, RunData, load_run
from ._svgplot import PALETTE, Marker, Series, line_chart, scatter_chart
from .many import setting_text

__all__ = ["SweepReport", "build_sweep_report", "sweep_plots", "render_sweep_html",
           "export_sweep"]


@dataclass
class SweepReport:
    sweep_id: int
    name: str
    plan: SweepPlan
    rows: list[dict[str, Any]]
    runs: dict[int, RunData]  # the finished runs of the table, by id
    total_runs: int
    generated: float = field(default_factory=time.time)

    @property
    def title(self) -> str:
        return f"Learn&Drop sweep: {self.name}"

    def row_label(self, row: dict[str, Any]) -> str:
        if row["role"] == BASELINE:
            shared = ", ".join(f"{p.split('.', 1)[1]}={setting_text(v)}"
                               for p, v in row["values"].items())
            return "baseline" + (f" ({shared})" if shared else "")
        return ", ".join(f"{p.split('.', 1)[1]}={setting_text(v)}"
                         for p, v in row["values"].items())


def build_sweep_report(store: RunStore, ref: str | int) -> SweepReport:
    """The report of sweep ``ref`` (name or id) as the store holds it now."""
    sweep_id, name, spec = store.find_sweep(ref)
    plan = SweepPlan.from_dict(spec)
    records = store.group_runs(sweep_id)
    rows = sweep_rows(plan, records)
    wanted = {i for r in rows for i in r["run_ids"]}
    runs = {i: load_run(store, i) for i in sorted(wanted)}
    return SweepReport(sweep_id, name, plan, rows, runs, len(plan.jobs()))


def _tradeoff(r: SweepReport) -> Plot:
    points = []
    for row in r.rows:
        if row["role"] == BASELINE or not fmt.is_number(row.get("speedup")) or \
                not fmt.is_number(row.get("accuracy_delta")):
            continue
        saved = 100.0 * (1.0 - 1.0 / row["speedup"])
        points.append((saved, 100.0 * row["accuracy_delta"], r.row_label(row)))
    svg = scatter_chart(points, title="Trade-off: time saved against accuracy",
                        x_label="wall time saved against the baseline (%)",
                        y_label="accuracy difference (points)")
    caption = ("A point per combination of settings (means over its seeds): right is faster "
               "than its baseline, up is more accurate." if points else
               "The sweep has no baseline to compare with (train it with --baseline).")
    return Plot("sweep_tradeoff", "Trade-off", svg, caption)


def _first_runs(r: SweepReport) -> list[tuple[str, RunData]]:
    """Each row's first finished run (its first seed), labelled by the row."""
    out = []
    for row in r.rows:
        if row["run_ids"]:
            out.append((r.row_label(row), r.runs[row["run_ids"][0]]))
    return out


def _scores(r: SweepReport) -> Plot:
    series: list[Series] = []
    firsts = [(label, d) for label, d in _first_runs(r) if d.record.drop_enabled]
    for k, (label, d) in enumerate(firsts):
        color = PALETTE[k % len(PALETTE)]
        for n, u in enumerate(u for u in d.units if not u.is_head):
            series.append(Series(label if n == 0 else f"{label} ({u.name})",
                                 [c.epoch for c in d.checks],
                                 [c.scores[u.index] if u.index < len(c.scores) else None
                                  for c in d.checks], color=color))
    markers = [Marker(f"threshold {t:g}", y=float(t))
               for t in sorted({d.record.config.get("drop", {}).get("threshold", 0.0)
                                for _, d in firsts}) if isinstance(t, (int, float))]
    svg = line_chart(series, title="Learning scores of every unit, a colour per combination",
                     x_label="epoch", y_label="learning score", markers=markers,
                     legend_max=len(firsts) if len(series) == len(firsts) else 0)
    legend = "; ".join(f"{_NAMES[k % len(_NAMES)]}: {label}"
                       for k, (label, _d) in enumerate(firsts))
    return Plot("sweep_scores", "Learning scores", svg,
                "Each unit's learning score in the first seed of each combination (colours: "
                + (legend or "none") + "). A unit's curve ends where it dropped.")


def _accuracy(r: SweepReport) -> Plot:
    series = [Series(label, [e.epoch + 1 for e in d.epochs], [e.val_accuracy for e in d.epochs],
                     color=PALETTE[k % len(PALETTE)], dashed=not d.record.drop_enabled,
                     points=True)
              for k, (label, d) in enumerate(_first_runs(r))]
    svg = line_chart(series, title="Validation accuracy", x_label="epoch",
                     y_label="validation accuracy", percent=True)
    return Plot("sweep_accuracy", "Validation accuracy", svg,
                "The first seed of each combination; dashed: baselines.")


def sweep_plots(r: SweepReport) -> list[Plot]:
    return [_tradeoff(r), _scores(r), _accuracy(r)]


#: the palette's colours in words, for captions
_NAMES = ("blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "olive", "cyan")
_CSS = ("body{font-family:Helvetica,Arial,sans-serif;font-size:13px;margin:24px;color:#222}"
        "table{border-collapse:collapse}th,td{padding:3px 6px;border:1px solid #bbb}"
        "th{background:#f0f0f0;text-align:left}.small{color:#555;font-size:11px}"
        "pre{font-size:11px}")


def render_sweep_html(r: SweepReport, image: Callable[[Plot], str] | None = None) -> str:
    """The sweep's report page; ``image(plot)`` gives a plot's markup (default inline SVG)."""
    done = sum(row["seeds"] for row in r.rows)
    head = ["settings", "seeds", "val accuracy", "\u00b1", "d acc (points)", "wall time (s)",
            "\u00b1", "speed-up", "training FLOPs saved", "units dropped"]
    body = []
    for row in r.rows:
        def num(key: str, write: Callable[[float], str], row: dict[str, Any] = row) -> str:
            value = row.get(key)
            return write(float(value)) if fmt.is_number(value) else "-"  # type: ignore[arg-type]

        body.append([r.row_label(row), f"{row['seeds']}/{row['seeds_planned']}",
                     num("final_accuracy", lambda v: fmt.percent(v, 2)),
                     num("final_accuracy_sd", lambda v: fmt.percent(v, 2)),
                     num("accuracy_delta", lambda v: f"{v * 100:+.2f}"),
                     num("wall_time_s", lambda v: f"{v:.1f}"),
                     num("wall_time_s_sd", lambda v: f"{v:.1f}"),
                     num("speedup", fmt.speedup), num("train_flops_saved", fmt.percent),
                     num("drops", lambda v: f"{v:.1f}")])
    table = ('<table width="100%"><tr>'
             + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"
             + "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>"
                       for cells in body) + "</table>")
    varied = "; ".join(f"{p}: {', '.join(setting_text(v) for v in vs)}"
                       for p, vs in r.plan.axes)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{escape(r.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{escape(r.title)}</h1>",
             f'<p class="small">Made {time.strftime("%Y-%m-%d %H:%M", time.localtime(r.generated))}'
             f" from the Learn&amp;Drop run store (sweep id {r.sweep_id}).</p>",
             f"<p>Varied: {escape(varied)}. Seeds: {len(r.plan.seed_list())} "
             f"({', '.join(map(str, r.plan.seed_list()))}; one data seed). Baseline: "
             f"{'yes' if r.plan.baseline else 'no'}. Runs finished: {done} of "
             f"{r.total_runs}.</p>",
             f"<p>Model {escape(r.plan.base.model.name)} on {escape(r.plan.base.data.dataset)}"
             f", {r.plan.base.train.epochs} epochs, mode {escape(r.plan.base.drop.mode)}.</p>",
             "<h2>Results</h2>",
             '<p class="small">A row per combination of settings: means over its seeds and '
             "their standard deviation (\u00b1); d acc and speed-up against the baseline with "
             "the same other settings.</p>", table]
    for plot in sweep_plots(r):
        graphic = image(plot) if image else plot.svg
        parts += [f"<h2>{escape(plot.title)}</h2>", f"<div>{graphic}</div>",
                  f'<p class="small">{escape(plot.caption)}</p>']
    parts += ["<h2>The table as the command line prints it</h2>",
              f"<pre>{escape(format_sweep_table(r.plan, r.rows))}</pre>",
              "<h2>Runs</h2><ul>"]
    parts += [f"<li>{escape(d.record.name)} ({escape(d.record.status)})</li>"
              for d in r.runs.values()]
    parts += ["</ul></body></html>"]
    return "\n".join(parts)


def export_sweep(r: SweepReport, path: str | Path) -> Path:
    """Write the sweep's report to ``path``: HTML (``.html``) or PDF (``.pdf``, drawn with
    Qt)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".html", ".htm"):
        return atomic_write_text(path, render_sweep_html(r))
    if suffix == ".pdf":
        writer = load_plugin("learndrop.exporters", "pdf",
                             what="the PDF sweep report writer (drawn with Qt)",
                             install="pip install PySide6-Essentials, or write .html")
        return Path(writer(r, path))
    raise ReportError(f"cannot tell the report format from '{path}': end it in .html or .pdf")
