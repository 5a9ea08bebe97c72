"""Where Learn&Drop keeps things: ``LEARNDROP_HOME`` or the platform's user data folder."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = ["data_home", "runs_home", "datasets_home", "config_home"]


def data_home() -> Path:
    """The folder holding the run store and one sub-folder per run."""
    env = os.environ.get("LEARNDROP_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("learndrop"))


def runs_home() -> Path:
    return data_home() / "runs"


def datasets_home() -> Path:
    """Default folder for downloadable data sets when ``data.root`` is empty."""
    return data_home() / "datasets"


def config_home() -> Path:
    """The app's own settings (last used run configuration, window layout)."""
    env = os.environ.get("LEARNDROP_HOME")
    return (Path(env).expanduser() / "settings") if env else Path(
        platformdirs.user_config_dir("learndrop"))
