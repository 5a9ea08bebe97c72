"""The run store: every run's config, events and summary in one SQLite file, and the
callback that records a run into it."""

from ._db import RunNotFoundError, StoreError, inspect_store
from ._events import EpochStart, RunMessage, WallClock
from ._recorder import StoreRecorder, replay
from ._runs import STATUSES, GroupRecord, RunRecord, RunStore, default_store_path
from ._sweeps import SWEEP_KIND

__all__ = ["RunStore", "RunRecord", "GroupRecord", "StoreError", "RunNotFoundError",
           "EpochStart", "RunMessage", "WallClock", "STATUSES", "default_store_path",
           "inspect_store", "StoreRecorder", "replay", "SWEEP_KIND"]
