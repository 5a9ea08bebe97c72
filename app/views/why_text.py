"""The "why not yet" list of a unit as rich text: one line per condition of the drop rule,
a tick where it is met, a cross where it holds the unit back, and the verdict."""

from __future__ import annotations

import html
from collections.abc import Sequence

from learndrop.core.monitor import Condition, verdict

from ..theme import Theme

__all__ = ["why_html", "why_lines"]

_MET, _NOT = "\u2713", "\u2717"


def why_lines(conditions: Sequence[Condition], dropped: bool) -> list[str]:
    """Plain lines: the verdict, then "✓ Score ≤ threshold: 0.42 ≤ 0.7" for each."""
    out = [verdict(conditions, dropped)]
    for c in conditions:
        out.append(f"{_MET if c.met else _NOT} {c.label}: {c.value}")
    return out


def why_html(conditions: Sequence[Condition], dropped: bool, theme: Theme) -> str:
    ok, no = theme.states["learning"].name(), theme.error.name()
    rows = [f"<b>{html.escape(verdict(conditions, dropped))}</b>"]
    for c in conditions:
        mark = (f"<span style='color:{ok}'>{_MET}</span>" if c.met
                else f"<span style='color:{no}'>{_NOT}</span>")
        rows.append(f"{mark} {html.escape(c.label)}: {html.escape(c.value)}")
    return "<br>".join(rows)
