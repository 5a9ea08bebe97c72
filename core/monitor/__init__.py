"""Numbers derived from a run's events for any front end: the live or replayed
:class:`RunHistory` the app's views and the reports read."""

from ..engine import Condition, verdict
from ._buffers import GrowingArray, ScoreBins, ema_smoothed
from ._history import UNIT_STATES, DropRecord, LogEntry, RunHistory
from ._speed import LOAD_DIFFERENCE, SpeedComparison, compare_speed
from ._whatif import (
    SETTLE_TESTS,
    WHATIF_SETTINGS,
    RecordedRun,
    WhatIf,
    WhatIfUnit,
    prepare_what_if,
    recorded_run,
    what_if,
)

__all__ = ["RunHistory", "LogEntry", "DropRecord", "ScoreBins", "GrowingArray", "UNIT_STATES",
           "ema_smoothed", "LOAD_DIFFERENCE", "SpeedComparison", "compare_speed",
           "WHATIF_SETTINGS", "SETTLE_TESTS", "RecordedRun", "WhatIf", "WhatIfUnit",
           "recorded_run", "what_if",
           "Condition", "verdict", "prepare_what_if"]
