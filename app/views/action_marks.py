"""What the user did to a run (pin, unpin, drop by hand, pause, resume, stop, cancel), marked
on a chart as a thin vertical line at the epoch position where the run took it, labelled,
with the action in words as its tooltip; the drops the policy undid (reversible drops) the
same way, dashed in the theme's restore colour."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt

from ..theme import Theme

__all__ = ["ActionMarks", "RestoreMarks", "mark_label"]

def mark_label(action: str, unit: str) -> str:
    """The mark's short label in words: "pin conv1", "pause", "resume run" (a stopped run
    continued from its checkpoint)."""
    word = action.replace("_", " ")
    return f"{word} {unit}" if unit else word


class ActionMarks:
    """The user's actions as vertical lines on ``plot``; :meth:`update` adds the new ones of
    ``view.history`` (read each time: a view is handed another run's history),
    ``labelled`` puts the short label on each (else only the tooltip names it)."""

    def __init__(self, plot: pg.PlotItem, view: Any, theme: Theme, *,
                 labelled: bool = True) -> None:
        self.plot, self.view, self.theme, self.labelled = plot, view, theme, labelled
        self.lines: list[pg.InfiniteLine] = []

    def clear(self) -> None:
        for line in self.lines:
            self.plot.removeItem(line)
        self.lines = []

    def restyle(self, theme: Theme) -> None:
        self.theme = theme
        self.clear()
        self.update()

    def _marks(self) -> list[tuple[float, str, str]]:
        """Each mark's epoch position, short label and tooltip, in order."""
        return [(float(a.epoch), mark_label(a.action, a.unit),
                 f"you {a.text} at epoch {a.epoch:.2f}") for a in self.view.history.actions]

    def _pen(self) -> Any:
        return pg.mkPen(self.theme.faded(self.theme.foreground, 150), width=1,
                        style=Qt.PenStyle.DotLine)

    def _label_color(self) -> Any:
        return self.theme.foreground

    def update(self) -> None:
        marks = self._marks()
        if len(self.lines) > len(marks):  # another run: start again
            self.clear()
        pen = self._pen()
        for epoch, label, tip in marks[len(self.lines):]:
            # labels beside the line at its top, staggered so that close marks stay readable
            opts = {"position": 0.97 - 0.06 * (len(self.lines) % 4),
                    "color": self._label_color(), "anchors": [(0, 0), (0, 0)]}
            line = pg.InfiniteLine(pos=epoch, angle=90, movable=False, pen=pen,
                                   label=label if self.labelled else None,
                                   labelOpts=opts)
            line.setToolTip(tip)
            line.setZValue(-5)
            self.plot.addItem(line, ignoreBounds=True)
            self.lines.append(line)

    def positions(self) -> list[tuple[float, str]]:
        """Each mark's epoch position and label (for tests and reports)."""
        return [(float(line.value()), lab.toPlainText() if (lab := getattr(line, "label", None))
                 else "") for line in self.lines]


class RestoreMarks(ActionMarks):
    """The drops the policy undid (``history.restores``) as dashed vertical lines in the
    theme's restore colour, labelled "restore <unit>", the restore's text as tooltip."""

    def _marks(self) -> list[tuple[float, str, str]]:
        return [(float(r.epoch), f"restore {r.unit}", f"{r.text} (epoch {r.epoch:.2f})")
                for r in self.view.history.restores]

    def _pen(self) -> Any:
        return pg.mkPen(self.theme.restore, width=1.5, style=Qt.PenStyle.DashLine)

    def _label_color(self) -> Any:
        return self.theme.restore
