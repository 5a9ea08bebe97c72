"""Sweeps: every combination of some settings' values, trained for several seeds (and a
baseline group), recorded in the run store as one sweep, resumable, summed up in one
table."""

from ._plan import BASELINE, SweepJob, SweepPlan, load_sweep_file, parse_values, varies
from ._run import JobState, SweepOutcome, SweepRunner
from ._table import RESULTS, format_sweep_table, run_figures, sweep_rows

__all__ = ["SweepPlan", "SweepJob", "SweepRunner", "JobState", "SweepOutcome", "BASELINE",
           "load_sweep_file", "parse_values", "varies", "sweep_rows", "format_sweep_table",
           "run_figures", "RESULTS"]
