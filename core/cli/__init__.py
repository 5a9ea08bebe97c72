"""The ``learndrop`` command line: parser, exit codes, console output and the bench runner."""

from ._bench import PRESETS, format_table, preset_config, run_bench
from ._launch import run_processes
from ._main import build_config, main

__all__ = ["main", "build_config", "PRESETS", "preset_config", "run_bench", "format_table",
           "run_processes"]
