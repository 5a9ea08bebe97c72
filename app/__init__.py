"""Learn&Drop Studio, the desktop app (PySide6 + pyqtgraph).

The app renders what the engine in :mod:`learndrop.core` reports. :mod:`.services` hold
everything without widgets: training runs in a worker ``QThread``, engine callbacks become Qt
signals in the bridge, and the run library is the one door to the run store. The widgets only
draw and ask: :mod:`.panels` (run setup, live view, run history) compose :mod:`.views`, and
:mod:`.dialogs` hold the rest; :mod:`.main_window` builds and wires them all. Start it with
``learndrop studio`` or ``learndrop-studio``.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Open the main window (see :func:`learndrop.app.main.main`)."""
    from .main import main as _main

    return _main(argv)
