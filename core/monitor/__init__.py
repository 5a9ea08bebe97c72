"""Numbers derived from a run's events for any front end: the live or replayed
:class:`RunHistory` the app's views and the reports read."""

from ._history import (
                       UNIT_STATES,
                       DropRecord,
                       GrowingArray,
                       LogEntry,
                       RunHistory,
                       ScoreBins,
                       ema_smoothed,
)

__all__ = ["RunHistory", "LogEntry", "DropRecord", "ScoreBins", "GrowingArray", "UNIT_STATES",
           "ema_smoothed"]
