"""Opening the run history's windows on stored runs: the what-if explorer (its events read
through the run library, replayed into a history for the score curves, its request for a new
run passed on) and many runs side by side."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from learndrop.core.config import RunConfig
from learndrop.core.errors import LearnDropError
from learndrop.core.monitor import RunHistory, recorded_run

from ..dialogs import RunsDialog, SweepDialog, WhatIfDialog
from ..services import RunLibrary

__all__ = ["open_what_if", "open_side_by_side", "open_sweep"]


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


def open_side_by_side(library: RunLibrary, run_ids: list[int], parent: QWidget | None,
                      on_open: Callable[[int], object]) -> RunsDialog:
    """Runs ``run_ids`` side by side; raises
    :class:`~learndrop.core.errors.LearnDropError` when there are none or one cannot be
    read."""
    if not run_ids:
        raise LearnDropError("there are no runs to show side by side")
    view = RunsDialog(library.load_runs(run_ids), parent)
    view.open_requested.connect(on_open)
    return view


def open_sweep(history: Any, base: RunConfig, parent: QWidget | None) -> SweepDialog:
    """The sweep dialog on the form's settings ``base``, recording into the store of the run
    history ``history`` (a :class:`~.history_panel.HistoryPanel`), whose side-by-side view
    shows the sweep's runs; kept until closed."""
    view = SweepDialog(base, history.library.recording_path(), parent)
    view.runs_requested.connect(history.side_by_side)
    view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    view.show()
    return view
