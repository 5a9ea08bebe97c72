"""The app's remembered settings: the last used run configuration, the window's layout and
the reader's view choices (the score plot's scale and smoothing, the event log's filter).

Stored as TOML under :func:`learndrop.core.paths.config_home`. Reading is lenient: a damaged
file or a value that no longer fits falls back to the default for that part, with a log line;
it never stops the app from starting.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from learndrop.core.config import RunConfig, config_to_toml
from learndrop.core.errors import LearnDropError
from learndrop.core.paths import config_home

__all__ = ["settings_path", "load_last_config", "save_last_config", "load_window_layout",
           "save_window_layout", "load_view_options", "save_view_options"]

log = logging.getLogger(__name__)

FILE_NAME = "studio-last-run.toml"
LAYOUT_FILE = "studio-window.toml"
VIEW_FILE = "studio-view.toml"


def settings_path() -> Path:
    """Where the last used configuration is kept."""
    return config_home() / FILE_NAME


def load_last_config(path: Path | None = None) -> RunConfig:
    """The last used configuration, or the defaults when there is none or it is damaged."""
    p = path or settings_path()
    cfg = RunConfig()
    if not p.exists():
        return cfg
    try:
        data: Any = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        log.warning("ignoring damaged settings file %s (%s); using defaults", p, exc)
        return cfg
    if not isinstance(data, dict):
        log.warning("ignoring settings file %s: not a table; using defaults", p)
        return cfg
    for section, values in data.items():
        if not isinstance(values, dict):
            log.warning("settings file %s: ignoring [%s], not a table", p, section)
            continue
        for name, value in values.items():
            try:
                cfg.set(f"{section}.{name}", value, source=p.name)
            except LearnDropError as exc:
                log.warning("settings file: ignoring %s", exc)
    return cfg


def save_last_config(cfg: RunConfig, path: Path | None = None) -> bool:
    """Remember ``cfg`` for the next start; returns False (and logs) when it cannot."""
    from learndrop.core.files import atomic_write_text

    p = path or settings_path()
    try:
        atomic_write_text(p, config_to_toml(cfg))
    except LearnDropError as exc:
        log.warning("could not save the app settings: %s", exc)
        return False
    return True


def load_window_layout() -> tuple[bytes, bytes]:
    """The saved window geometry and dock layout (empty when none or damaged)."""
    p = config_home() / LAYOUT_FILE
    if not p.exists():
        return b"", b""
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
        return bytes.fromhex(str(data.get("geometry", ""))), bytes.fromhex(
            str(data.get("state", "")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValueError) as exc:
        log.warning("ignoring damaged window layout %s (%s)", p, exc)
        return b"", b""


def save_window_layout(geometry: bytes, state: bytes) -> None:
    """Remember the window's size, position and docks for the next start."""
    from learndrop.core.files import atomic_write_text

    text = f'geometry = "{geometry.hex()}"\nstate = "{state.hex()}"\n'
    try:
        atomic_write_text(config_home() / LAYOUT_FILE, text)
    except LearnDropError as exc:
        log.warning("could not save the window layout: %s", exc)


def load_view_options() -> dict[str, dict[str, Any]]:
    """The view choices by view (``{"score_plot": {"log_scale": True, ...}}``); empty when
    none were saved or the file is damaged."""
    p = config_home() / VIEW_FILE
    if not p.exists():
        return {}
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        log.warning("ignoring damaged view settings %s (%s)", p, exc)
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)}


def save_view_options(options: dict[str, dict[str, Any]]) -> None:
    """Remember the view choices (booleans, numbers and short texts) for the next start."""
    from learndrop.core.files import atomic_write_text

    lines: list[str] = []
    for view, values in options.items():
        lines.append(f"[{view}]")
        for key, value in values.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, (int, float)):
                lines.append(f"{key} = {value}")
            elif isinstance(value, str):
                lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    try:
        atomic_write_text(config_home() / VIEW_FILE, "\n".join(lines))
    except LearnDropError as exc:
        log.warning("could not save the view settings: %s", exc)
