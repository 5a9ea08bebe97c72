"""The panels: the main window's parts, each composing views and asking services.

:class:`SetupPanel` is the run setup form, :class:`LivePanel` the live view of a run,
:class:`HistoryPanel` the run history (with :class:`RunTable`, its table)."""

from .history_panel import HistoryPanel
from .live_panel import LivePanel
from .run_table import RunTable, RunTableModel
from .setup_fields import form_words
from .setup_panel import SetupPanel

__all__ = ["HistoryPanel", "LivePanel", "RunTable", "RunTableModel", "SetupPanel",
           "form_words"]
