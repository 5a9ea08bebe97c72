"""Opening the what-if explorer on a stored run: its events read through the run library,
replayed into a history for the score curves, and the explorer's request for a new run passed
on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import QWidget

from learndrop.core.errors import LearnDropError
from learndrop.core.monitor import RunHistory, recorded_run

from ..dialogs import WhatIfDialog
from ..services import RunLibrary

__all__ = ["open_what_if"]


def open_what_if(library: RunLibrary, run_id: int, label: str, parent: QWidget | None,
                 on_run: Callable[[int, Any], object]) -> WhatIfDialog:
    """The explorer for stored run ``run_id`` (a run still training: as far as it is
    stored); raises :class:`~learndrop.core.errors.LearnDropError` with a one-line reason
    when the run cannot be explored."""
    events = library.events(run_id)
    run = recorded_run(events)
    if not run.checks:
        raise LearnDropError(f"{label} has no score checks yet: nothing to replay")
    history = RunHistory()
    library.replay(run_id, history)
    view = WhatIfDialog(run_id, label, run, history, parent)
    view.run_requested.connect(on_run)
    return view
