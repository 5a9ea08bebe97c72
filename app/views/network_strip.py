"""The network as a strip of blocks, input on the left, one block per unit.

Block widths follow each unit's share of the forward FLOPs, with a minimum so that tiny units
stay clickable; colours show the unit's state. Hover shows details, a click selects the unit
and the context menu asks the engine to pin, unpin or drop it.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QContextMenuEvent,
    QHelpEvent,
    QMouseEvent,
    QPainter,
    QPen,
)
from PySide6.QtWidgets import QMenu, QSizePolicy, QToolTip, QWidget

from learndrop.core.format import count as format_count
from learndrop.core.format import percent as format_percent
from learndrop.core.monitor import RunHistory

from ..theme import STATE_LABELS, Theme, current_theme

#: the strip's caption, from the longest wording to the shortest
CAPTIONS = ("width = share of forward FLOPs \u00b7 right-click a unit to pin or drop it",
            "width = FLOPs share \u00b7 right-click to pin or drop",
            "right-click to pin or drop")

__all__ = ["NetworkStrip", "block_widths"]


def block_widths(shares: list[float], total: float, min_width: float) -> list[float]:
    """Widths summing to ``total``: ``min_width`` each plus the rest split by ``shares``."""
    n = len(shares)
    if n == 0:
        return []
    min_width = min(min_width, total / n)
    spare = max(0.0, total - n * min_width)
    weight = sum(max(0.0, s) for s in shares)
    if weight <= 0:
        return [total / n] * n
    return [min_width + spare * max(0.0, s) / weight for s in shares]


class NetworkStrip(QWidget):
    """Units as coloured blocks; emits selection and pin/unpin/drop requests."""

    unit_selected = Signal(str)
    unit_action_requested = Signal(str, str)  # action ("pin", "unpin", "drop"), unit name

    def __init__(self, history: RunHistory, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.theme: Theme = current_theme()
        self.selected: str | None = None
        self.actions_enabled = False
        #: the caption as last painted (the longest wording that fit)
        self.caption = CAPTIONS[0]
        self._rects: list[QRectF] = []
        self._painted_states: list[str] = []
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    # ---- geometry ----------------------------------------------------------------------------
    def sizeHint(self) -> QSize:
        fh = self.fontMetrics().height()
        return QSize(40 * fh, int(fh * 4.2))

    def minimumSizeHint(self) -> QSize:
        return QSize(10 * self.fontMetrics().height(), self.sizeHint().height())

    def _layout(self) -> None:
        units = self.history.units
        fm = self.fontMetrics()
        pad = fm.height() * 0.3
        top = pad
        height = fm.height() * 2.2
        width = self.width() - 2 * pad
        # wide enough to hover and click the head and tiny units (when there is room)
        widths = block_widths([u.flops_share for u in units], width, self.min_block_width())
        x = pad
        self._rects = []
        for w in widths:
            self._rects.append(QRectF(x, top, w, height))
            x += w

    def min_block_width(self) -> float:
        """The narrowest a unit's block gets while the strip has room for all at this width:
        about a finger's breadth of text."""
        return max(14.0, self.fontMetrics().height() * 1.4)

    def unit_at(self, pos: QPoint) -> int | None:
        """Index of the unit under ``pos`` (widget coordinates), or None."""
        self._layout()
        for i, r in enumerate(self._rects):
            if r.left() <= pos.x() < r.right() and r.top() <= pos.y() <= r.bottom():
                return i
        return None

    def block_rect(self, i: int) -> QRectF:
        self._layout()
        return self._rects[i]

    # ---- state -------------------------------------------------------------------------------
    def state_of(self, i: int) -> str:
        return self.history.unit_state(i)

    def color_of(self, i: int) -> QColor:
        return self.theme.state_color(self.state_of(i))

    def set_selected(self, name: str | None) -> None:
        self.selected = name
        self.update()

    def set_actions_enabled(self, on: bool) -> None:
        """Offer pin/unpin/drop only while a run can act on them."""
        self.actions_enabled = on

    def restyle(self) -> None:
        self.theme = current_theme(self.palette())
        self.update()

    def reset(self) -> None:
        self.selected = None
        self._painted_states = []
        self.update()

    def refresh(self, force: bool = False) -> None:
        """Repaint when a unit's state changed (not on every score check)."""
        states = self.history.unit_states()
        if force or states != self._painted_states:
            self._painted_states = states
            self.update()

    # ---- painting ----------------------------------------------------------------------------
    def paintEvent(self, _event: QEvent) -> None:
        self._layout()
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        t = self.theme
        fm = self.fontMetrics()
        units = self.history.units
        if not units:
            p.setPen(t.muted)
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No run yet")
            return
        edge = QPen(t.background, 1)
        for i, (u, r) in enumerate(zip(units, self._rects)):
            state = self.state_of(i)
            color = t.state_color(state)
            p.setPen(edge)
            p.setBrush(QBrush(color))
            p.drawRoundedRect(r.adjusted(0.5, 0.5, -0.5, -0.5), 2, 2)
            if state == "dropped":
                p.setBrush(QBrush(t.faded(t.foreground, 60), Qt.BrushStyle.BDiagPattern))
                p.drawRect(r.adjusted(1, 1, -1, -1))
            label = u.name
            if r.width() > fm.horizontalAdvance(label[:3]) + 4:
                p.setPen(_text_on(color))
                text = fm.elidedText(label, Qt.TextElideMode.ElideRight, int(r.width()) - 4)
                p.drawText(r, Qt.AlignmentFlag.AlignCenter, text)
        if self.selected is not None and self.history.has_unit(self.selected):
            r = self._rects[self.history.unit_index(self.selected)]
            p.setPen(QPen(t.foreground, 2.5))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRoundedRect(r.adjusted(-1, -1, 1, 1), 3, 3)
        self._paint_legend(p)
        p.end()

    def _paint_legend(self, p: QPainter) -> None:
        fm = self.fontMetrics()
        t = self.theme
        y = self._rects[0].bottom() + fm.height() * 0.45
        x = self._rects[0].left()
        box = fm.height() * 0.7
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        for state, label in STATE_LABELS.items():
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(t.state_color(state))
            p.drawRect(QRectF(x, y + (fm.height() - box) / 2, box, box))
            p.setPen(t.foreground)
            x += box + fm.averageCharWidth() * 0.8
            p.drawText(QRectF(x, y, fm.horizontalAdvance(label) + 2, fm.height()),
                       Qt.AlignmentFlag.AlignVCenter, label)
            x += fm.horizontalAdvance(label) + fm.averageCharWidth() * 2.5
        p.setPen(t.muted)
        room = self.width() - x
        # the longest wording that fits whole: a cut caption reads as a mistake
        hint = next((h for h in CAPTIONS if fm.horizontalAdvance(h) <= room), "")
        self.caption = hint
        p.drawText(QRectF(x, y, max(0.0, room), fm.height()),
                   Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, hint)

    # ---- interaction -------------------------------------------------------------------------
    def tooltip_text(self, i: int) -> str:
        h = self.history
        u = h.units[i]
        score = h.latest_score(i)
        lines = [f"<b>{u.name}</b>{' (head)' if u.is_head else ''}",
                 f"parameters: {format_count(u.params)}",
                 (f"forward FLOPs: {format_count(u.forward_flops)} "
                  f"({format_percent(u.flops_share)} of the network)"),
                 f"latest score: {'n/a' if score is None else f'{score:.3f}'}",
                 f"state: {STATE_LABELS.get(self.state_of(i), self.state_of(i)).lower()}"]
        if i in h.drop_of:
            d = h.drop_of[i]
            lines.append(f"dropped at step {d.step} (epoch {d.epoch:.2f}, {d.reason})")
        elif (back := next((r for r in reversed(h.restores) if r.index == i), None)):
            lines.append(f"{back.text} (epoch {back.epoch:.2f})")
        return "<br>".join(lines)

    def event(self, ev: QEvent) -> bool:
        if ev.type() == QEvent.Type.ToolTip and isinstance(ev, QHelpEvent):
            i = self.unit_at(ev.pos())
            if i is None:
                QToolTip.hideText()
            else:
                QToolTip.showText(ev.globalPos(), self.tooltip_text(i), self)
            return True
        return super().event(ev)

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            i = self.unit_at(ev.position().toPoint())
            if i is not None:
                self.select_index(i)
        super().mousePressEvent(ev)

    def select_index(self, i: int) -> None:
        name = self.history.units[i].name
        self.set_selected(name)
        self.unit_selected.emit(name)

    def menu_for(self, i: int) -> QMenu:
        """The context menu of unit ``i`` (its actions emit :attr:`unit_action_requested`)."""
        u = self.history.units[i]
        state = self.state_of(i)
        menu = QMenu(self)
        title = menu.addAction(u.name)
        title.setEnabled(False)
        menu.addSeparator()
        if u.is_head:
            menu.addAction("The head always trains").setEnabled(False)
            return menu
        if state == "dropped":
            menu.addAction("Already dropped").setEnabled(False)
            return menu
        if state == "pinned":
            self._add(menu, "Unpin", "unpin", u.name)
        else:
            self._add(menu, "Pin unit", "pin", u.name)
            self._add(menu, "Drop now", "drop", u.name)
        if not self.actions_enabled:
            for action in menu.actions()[2:]:
                action.setEnabled(False)
                action.setToolTip("Only while a run is training")
        return menu

    def _add(self, menu: QMenu, text: str, action: str, unit: str) -> None:
        act = menu.addAction(text)
        act.setData(action)
        act.triggered.connect(lambda _checked=False: self.unit_action_requested.emit(action, unit))

    def contextMenuEvent(self, ev: QContextMenuEvent) -> None:
        i = self.unit_at(ev.pos())
        if i is None:
            return
        self.select_index(i)
        self.menu_for(i).exec(ev.globalPos())


def _text_on(color: QColor) -> QColor:
    """Black or white, whichever reads better on ``color``."""
    lum = 0.299 * color.redF() + 0.587 * color.greenF() + 0.114 * color.blueF()
    return QColor("#111111") if lum > 0.6 else QColor("#ffffff")
