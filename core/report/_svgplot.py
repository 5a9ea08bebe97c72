"""Small, dependency-free SVG charts for reports: line charts and heatmaps.

The SVG sticks to what SVG Tiny renderers understand (rect, line, polyline, circle, text with
presentation attributes, no CSS, no scripts), so the same file shows in a browser and renders
through Qt's SVG module for PDF reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from ..format import short_names

__all__ = ["Series", "Marker", "line_chart", "heatmap", "PALETTE", "EMPTY_CELL", "nice_ticks",
           "scatter_chart"]

#: a heatmap cell without a score (a dropped unit), in reports and in the app alike
EMPTY_CELL = "#dddddd"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
_FONT = 'font-family="Helvetica, Arial, sans-serif"'
_MAX_POINTS = 1200


@dataclass
class Series:
    """One line. ``None`` values leave a gap."""

    name: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    color: str = ""
    dashed: bool = False
    points: bool = False


@dataclass
class Marker:
    """A vertical (``x``) or horizontal (``y``) reference line with a label."""

    label: str
    x: float | None = None
    y: float | None = None
    color: str = "#888888"


@dataclass
class _Frame:
    width: int
    height: int
    left: int = 64
    right: int = 16
    top: int = 34
    bottom: int = 46
    x0: float = 0.0
    x1: float = 1.0
    y0: float = 0.0
    y1: float = 1.0
    parts: list[str] = field(default_factory=list)

    def px(self, x: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (x - self.x0) / span * (self.width - self.left - self.right)

    def py(self, y: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return self.height - self.bottom - (y - self.y0) / span * (
            self.height - self.top - self.bottom)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 10000 or abs(v) < 0.001:
        return f"{v:.1e}"
    return f"{v:.4g}"


def _text(x: float, y: float, text: str, *, size: int = 11, anchor: str = "middle",
          color: str = "#333333", rotate: bool = False, bold: bool = False) -> str:
    extra = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
    weight = ' font-weight="bold"' if bold else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" {_FONT} font-size="{size}" fill="{color}" '
            f'text-anchor="{anchor}"{weight}{extra}>{escape(text)}</text>')


def _open(width: int, height: int, title: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}">',
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
            _text(width / 2, 20, title, size=14, bold=True)]


def _downsample(xs: Sequence[float], ys: Sequence[float | None]) -> list[tuple[float, float
                                                                                | None]]:
    """At most about ``_MAX_POINTS`` points, keeping each bucket's minimum and maximum."""
    pts = list(zip(xs, ys))
    if len(pts) <= _MAX_POINTS:
        return pts
    size = math.ceil(len(pts) / (_MAX_POINTS // 2))
    out: list[tuple[float, float | None]] = []
    for i in range(0, len(pts), size):
        bucket = [p for p in pts[i:i + size] if p[1] is not None]
        if not bucket:
            out.append((pts[i][0], None))
            continue
        lo = min(bucket, key=lambda p: p[1])  # type: ignore[arg-type,return-value]
        hi = max(bucket, key=lambda p: p[1])  # type: ignore[arg-type,return-value]
        out.extend(sorted({lo, hi}, key=lambda p: p[0]))
    return out


def _axes(f: _Frame, x_label: str, y_label: str, percent: bool) -> None:
    p = f.parts
    for t in nice_ticks(f.y0, f.y1):
        if f.y0 - 1e-12 <= t <= f.y1 + 1e-12:
            y = f.py(t)
            p.append(f'<line x1="{f.left}" y1="{y:.1f}" x2="{f.width - f.right}" '
                     f'y2="{y:.1f}" stroke="#e6e6e6" stroke-width="1"/>')
            label = f"{t * 100:.0f}%" if percent else _fmt(t)
            p.append(_text(f.left - 6, y + 4, label, size=10, anchor="end"))
    for t in nice_ticks(f.x0, f.x1, 8):
        if f.x0 - 1e-12 <= t <= f.x1 + 1e-12:
            x = f.px(t)
            p.append(f'<line x1="{x:.1f}" y1="{f.height - f.bottom}" x2="{x:.1f}" '
                     f'y2="{f.height - f.bottom + 4}" stroke="#666666" stroke-width="1"/>')
            p.append(_text(x, f.height - f.bottom + 16, _fmt(t), size=10))
    p.append(f'<rect x="{f.left}" y="{f.top}" width="{f.width - f.left - f.right}" '
             f'height="{f.height - f.top - f.bottom}" fill="none" stroke="#666666" '
             f'stroke-width="1"/>')
    p.append(_text((f.left + f.width - f.right) / 2, f.height - 10, x_label, size=11))
    p.append(_text(14, (f.top + f.height - f.bottom) / 2, y_label, size=11, rotate=True))


def line_chart(series: Sequence[Series], *, title: str, x_label: str, y_label: str,
               width: int = 720, height: int = 300, y_range: tuple[float, float] | None = None,
               markers: Sequence[Marker] = (), percent: bool = False,
               legend_max: int = 12) -> str:
    """A line chart as an SVG document."""
    values = [(x, y) for s in series for x, y in zip(s.xs, s.ys)
              if y is not None and math.isfinite(y) and math.isfinite(x)]
    f = _Frame(width, height)
    shown = [s for s in series if s.xs]
    if len(shown) <= legend_max:
        f.right = 160 if shown else 16
    f.parts = _open(width, height, title)
    if not values:
        f.parts.append(_text(width / 2, height / 2, "no data recorded", size=12,
                             color="#888888"))
        return "\n".join(f.parts + ["</svg>"])
    xs = [v[0] for v in values] + [m.x for m in markers if m.x is not None]
    ys = [v[1] for v in values] + [m.y for m in markers if m.y is not None]
    f.x0, f.x1 = min(xs), max(xs)
    if f.x1 <= f.x0:
        f.x1 = f.x0 + 1
    if y_range is not None:
        f.y0, f.y1 = y_range
    else:
        lo, hi = min(ys), max(ys)
        pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 0.5
        f.y0 = 0.0 if lo >= 0 and lo - pad < 0 else lo - pad
        f.y1 = hi + pad
    _axes(f, x_label, y_label, percent)
    for n, m in enumerate(markers):
        if m.x is not None:
            x = f.px(m.x)
            f.parts.append(f'<line x1="{x:.1f}" y1="{f.top}" x2="{x:.1f}" '
                           f'y2="{height - f.bottom}" stroke="{m.color}" stroke-width="1" '
                           f'stroke-dasharray="4,3"/>')
            f.parts.append(_text(x + 3, f.top + 11 + 11 * (n % 4), m.label, size=9,
                                 anchor="start", color=m.color))
        elif m.y is not None:
            y = f.py(m.y)
            f.parts.append(f'<line x1="{f.left}" y1="{y:.1f}" x2="{width - f.right}" '
                           f'y2="{y:.1f}" stroke="{m.color}" stroke-width="1" '
                           f'stroke-dasharray="6,3"/>')
            f.parts.append(_text(width - f.right - 4, y - 4, m.label, size=9, anchor="end",
                                 color=m.color))
    legend = short_names([s.name for s in shown], 22)  # different runs keep different names
    for i, s in enumerate(shown):
        color = s.color or PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="6,4"' if s.dashed else ""
        run: list[str] = []
        pts = _downsample(s.xs, s.ys)
        for xv, yv in pts + [(0.0, None)]:
            if yv is None or not math.isfinite(yv) or not math.isfinite(xv):
                if len(run) > 1:
                    f.parts.append(f'<polyline points="{" ".join(run)}" fill="none" '
                                   f'stroke="{color}" stroke-width="1.6"{dash}/>')
                elif len(run) == 1:
                    cx, cy = run[0].split(",")
                    f.parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
                run = []
                continue
            yc = min(max(yv, f.y0), f.y1)
            run.append(f"{f.px(xv):.1f},{f.py(yc):.1f}")
            if s.points:
                f.parts.append(f'<circle cx="{f.px(xv):.1f}" cy="{f.py(yc):.1f}" r="2.5" '
                               f'fill="{color}"/>')
        if len(shown) <= legend_max:
            ly = f.top + 8 + i * 16
            lx = width - f.right + 10
            f.parts.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 18}" y2="{ly}" '
                           f'stroke="{color}" stroke-width="2.5"{dash}/>')
            f.parts.append(_text(lx + 23, ly + 4, legend[i], size=10, anchor="start"))
    return "\n".join(f.parts + ["</svg>"])


def scatter_chart(points: Sequence[tuple[float, float, str]], *, title: str, x_label: str,
                  y_label: str, width: int = 720, height: int = 360) -> str:
    """Labelled points (x, y, label) as an SVG document; dashed lines through 0 on both
    axes when they are in range."""
    f = _Frame(width, height, left=70, right=24)
    f.parts = _open(width, height, title)
    pts = [p for p in points if math.isfinite(p[0]) and math.isfinite(p[1])]
    if not pts:
        f.parts.append(_text(width / 2, height / 2, "no points: nothing to compare with",
                             size=12, color="#888888"))
        return "\n".join(f.parts + ["</svg>"])
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    for lo, hi, attr in ((min(xs), max(xs), "x"), (min(ys), max(ys), "y")):
        pad = (hi - lo) * 0.12 or abs(hi) * 0.12 or 0.01
        setattr(f, f"{attr}0", lo - pad)
        setattr(f, f"{attr}1", hi + pad)
    _axes(f, x_label, y_label, False)
    if f.y0 < 0 < f.y1:
        y = f.py(0.0)
        f.parts.append(f'<line x1="{f.left}" y1="{y:.1f}" x2="{width - f.right}" y2="{y:.1f}" '
                       f'stroke="#999999" stroke-width="1" stroke-dasharray="4,3"/>')
    if f.x0 < 0 < f.x1:
        x = f.px(0.0)
        f.parts.append(f'<line x1="{x:.1f}" y1="{f.top}" x2="{x:.1f}" '
                       f'y2="{height - f.bottom}" stroke="#999999" stroke-width="1" '
                       f'stroke-dasharray="4,3"/>')
    for i, (x, y, label) in enumerate(pts):
        color = PALETTE[i % len(PALETTE)]
        f.parts.append(f'<circle cx="{f.px(x):.1f}" cy="{f.py(y):.1f}" r="5" fill="{color}" '
                       f'stroke="#333333" stroke-width="0.8"/>')
        f.parts.append(_text(f.px(x) + 8, f.py(y) - 6, label, size=10, anchor="start",
                             color=color))
    return "\n".join(f.parts + ["</svg>"])


def _color(v: float) -> str:
    """A perceptually ordered colour for v in [0, 1] (dark blue -> green -> yellow)."""
    stops = ((0.0, (68, 1, 84)), (0.25, (59, 82, 139)), (0.5, (33, 145, 140)),
             (0.75, (94, 201, 98)), (1.0, (253, 231, 37)))
    v = min(1.0, max(0.0, v))
    for (a, ca), (b, cb) in zip(stops, stops[1:]):
        if v <= b:
            t = (v - a) / (b - a)
            rgb = tuple(round(ca[k] + (cb[k] - ca[k]) * t) for k in range(3))
            return "#" + "".join(f"{c:02x}" for c in rgb)
    return "#fde725"


def heatmap(rows: Sequence[Sequence[float | None]], row_labels: Sequence[str],
            col_values: Sequence[float], *, title: str, x_label: str, width: int = 720,
            vmin: float = 0.0, vmax: float = 1.0, empty_label: str = "dropped",
            max_cols: int = 240) -> str:
    """A row-by-column heatmap (e.g. unit x check) as an SVG document."""
    n_rows = len(rows)
    row_h = max(8, min(22, 360 // max(1, n_rows)))
    body_h = max(row_h * max(1, n_rows), 10 * 12 + 26)
    f = _Frame(width, 34 + 46 + body_h, left=110, right=100)
    f.parts = _open(f.width, f.height, title)
    cols = list(range(len(col_values)))
    if len(cols) > max_cols:
        stride = math.ceil(len(cols) / max_cols)
        cols = cols[::stride]
    if not n_rows or not cols:
        f.parts.append(_text(width / 2, f.height / 2, "no data recorded", size=12,
                             color="#888888"))
        return "\n".join(f.parts + ["</svg>"])
    plot_w = f.width - f.left - f.right
    cell_w = plot_w / len(cols)
    top = f.top
    for r, values in enumerate(rows):
        y = top + r * row_h
        f.parts.append(_text(f.left - 6, y + row_h / 2 + 4, row_labels[r][:16], size=10,
                             anchor="end"))
        for c_pos, c in enumerate(cols):
            v = values[c] if c < len(values) else None
            fill = EMPTY_CELL if v is None or not math.isfinite(v) else _color(
                (v - vmin) / ((vmax - vmin) or 1.0))
            f.parts.append(f'<rect x="{f.left + c_pos * cell_w:.2f}" y="{y}" '
                           f'width="{cell_w + 0.3:.2f}" height="{row_h}" fill="{fill}"/>')
    bottom = top + n_rows * row_h
    f.x0, f.x1 = col_values[cols[0]], col_values[cols[-1]]
    for t in nice_ticks(f.x0, f.x1, 8):
        if f.x0 <= t <= f.x1:
            x = f.left + (t - f.x0) / ((f.x1 - f.x0) or 1.0) * plot_w
            f.parts.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" '
                           f'stroke="#666666" stroke-width="1"/>')
            f.parts.append(_text(x, bottom + 16, _fmt(t), size=10))
    f.parts.append(_text(f.left + plot_w / 2, bottom + 32, x_label, size=11))
    lx = f.width - f.right + 16
    steps = 10
    for i in range(steps):
        v = 1 - i / (steps - 1)
        f.parts.append(f'<rect x="{lx}" y="{top + i * 12}" width="14" height="12" '
                       f'fill="{_color(v)}"/>')
    f.parts.append(_text(lx + 18, top + 9, _fmt(vmax), size=9, anchor="start"))
    f.parts.append(_text(lx + 18, top + steps * 12, _fmt(vmin), size=9, anchor="start"))
    f.parts.append(f'<rect x="{lx}" y="{top + steps * 12 + 10}" width="14" height="12" '
                   f'fill="{EMPTY_CELL}"/>')
    f.parts.append(_text(lx + 18, top + steps * 12 + 20, empty_label, size=9, anchor="start"))
    return "\n".join(f.parts + ["</svg>"])
