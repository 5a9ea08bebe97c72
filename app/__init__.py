"""Learn&Drop Studio, the desktop app (PySide6 + pyqtgraph).

The app renders what the engine in :mod:`learndrop.core` reports: training runs in a worker
``QThread`` (:mod:`.worker`), engine callbacks become Qt signals in :mod:`.bridge`, and widgets
only draw. Start it with ``learndrop studio`` or ``learndrop-studio``.
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Open the main window (see :func:`learndrop.app.main.main`)."""
    from .main import main as _main

    return _main(argv)
