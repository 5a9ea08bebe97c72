"""Colours shared by the live views, following the system's light or dark palette.

Every view asks :func:`current_theme` when it is built and again from :meth:`restyle` when
the palette changes, so plots, the network strip and the log agree on what "dropped" or
"settling" looks like. The state colours are mid-tones that read on white and on near-black.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

__all__ = [
    "STATE_LABELS",
    "Theme",
    "apply_plot_theme",
    "current_theme",
    "depth_colormap",
    "depth_colors",
    "depth_gradient_css",
    "is_dark",
    "score_colormap",
]

#: the unit states in legend order, with their human label
STATE_LABELS: dict[str, str] = {
    "learning": "Learning",
    "settling": "Settling",
    "dropped": "Dropped",
    "pinned": "Pinned",
    "kept": "Always trained",
}


@dataclass(frozen=True)
class Theme:
    dark: bool
    background: QColor
    foreground: QColor
    muted: QColor  # secondary text, grid, faded curves
    threshold: QColor
    error: QColor
    warning: QColor
    states: dict[str, QColor]
    restore: QColor  # a drop undone (reversible drops), on the charts and in the log

    def state_color(self, state: str) -> QColor:
        return self.states.get(state, self.muted)

    def faded(self, color: QColor, alpha: int = 70) -> QColor:
        c = QColor(color)
        c.setAlpha(alpha)
        return c


def is_dark(palette: QPalette | None = None) -> bool:
    """True when the window colour of ``palette`` (default: the application's) is dark."""
    if palette is None:
        app = QApplication.instance()
        palette = app.palette() if isinstance(app, QApplication) else QPalette()
    return palette.color(QPalette.ColorRole.Window).lightnessF() < 0.5


def current_theme(palette: QPalette | None = None) -> Theme:
    dark = is_dark(palette)
    if dark:
        return Theme(
            dark=True,
            background=QColor("#1e1f22"),
            foreground=QColor("#dcdde0"),
            muted=QColor("#80838a"),
            threshold=QColor("#f2a33a"),
            error=QColor("#ff6b6b"),
            warning=QColor("#f2b13a"),
            states={
                "learning": QColor("#3fa7f5"),
                "settling": QColor("#f0a830"),
                "dropped": QColor("#5d6168"),
                "pinned": QColor("#b27ef2"),
                "kept": QColor("#3fae8a"),
            },
            restore=QColor("#26c6da"),
        )
    return Theme(
        dark=False,
        background=QColor("#ffffff"),
        foreground=QColor("#25262a"),
        muted=QColor("#9a9ca3"),
        threshold=QColor("#d9822b"),
        error=QColor("#c62828"),
        warning=QColor("#a86400"),
        states={
            "learning": QColor("#1f78c8"),
            "settling": QColor("#e08a00"),
            "dropped": QColor("#b4b7bd"),
            "pinned": QColor("#8a4fd8"),
            "kept": QColor("#2e8b6e"),
        },
        restore=QColor("#00838f"),
    )


def apply_plot_theme(widget: pg.GraphicsView | pg.PlotWidget, theme: Theme) -> None:
    """Background and axis colours of one pyqtgraph widget."""
    widget.setBackground(theme.background)
    items = []
    if isinstance(widget, pg.PlotWidget):
        items = [widget.getPlotItem()]
    elif isinstance(widget, pg.GraphicsLayoutWidget):
        items = [it for it in widget.ci.items if isinstance(it, pg.PlotItem)]
    for plot in items:
        for name in ("left", "bottom", "right", "top"):
            axis = plot.getAxis(name)
            axis.setPen(theme.muted)
            axis.setTextPen(theme.foreground)
        plot.titleLabel.setAttr("color", theme.foreground.name())


# Depth ramps: blue at the input through teal and green to warm colours at the output. Each
# theme drops the end that would vanish into its background.
_DEPTH_LIGHT = ["#2c3e9e", "#1f78c8", "#13a39a", "#5ab044", "#d6a21c", "#d9532b"]
_DEPTH_DARK = ["#4f7cff", "#3fb6f5", "#3fd0b0", "#8fd14f", "#f2c230", "#ff7a4d"]


def depth_colormap(theme: Theme) -> pg.ColorMap:
    stops = _DEPTH_DARK if theme.dark else _DEPTH_LIGHT
    return pg.ColorMap(np.linspace(0.0, 1.0, len(stops)), [QColor(c) for c in stops])


def depth_colors(n: int, theme: Theme) -> list[QColor]:
    """One colour per unit from input (index 0) to output."""
    cmap = depth_colormap(theme)
    if n <= 0:
        return []
    pos = np.linspace(0.0, 1.0, n) if n > 1 else np.array([0.0])
    return [cmap.map(float(p), mode=pg.ColorMap.QCOLOR) for p in pos]


def depth_gradient_css(theme: Theme) -> str:
    """A ``qlineargradient`` for a style sheet, to label the depth colours."""
    stops = _DEPTH_DARK if theme.dark else _DEPTH_LIGHT
    parts = ", ".join(f"stop:{i / (len(stops) - 1):.2f} {c}" for i, c in enumerate(stops))
    return f"qlineargradient(x1:0, y1:0, x2:1, y2:0, {parts})"


def score_colormap() -> pg.ColorMap:
    """Heatmap colours for learning scores 0..1 (perceptually even, readable on both)."""
    return pg.colormap.get("viridis")
