"""What every live view offers the live panel: the history it reads, and three calls."""

from __future__ import annotations

from typing import Protocol

from learndrop.core.monitor import RunHistory

__all__ = ["LiveView"]


class LiveView(Protocol):
    """A view of one :class:`~learndrop.core.monitor.RunHistory` (swapped when a new run is
    shown): ``refresh`` draws what changed (everything with ``force``), ``restyle`` follows the
    palette, ``reset`` empties the view."""

    history: RunHistory

    def refresh(self, force: bool = False) -> None: ...

    def restyle(self) -> None: ...

    def reset(self) -> None: ...
