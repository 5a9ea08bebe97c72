"""Front ends plug into core through entry points, so core names none of their modules.

Groups: ``learndrop.frontends`` (``studio``: the desktop app's ``main(argv)``) and
``learndrop.exporters`` (report writers by format, e.g. ``pdf``), declared in
``pyproject.toml``.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from .errors import LearnDropError

__all__ = ["load_plugin"]


def load_plugin(group: str, name: str, *, what: str, install: str) -> Any:
    """The object entry point ``name`` of ``group`` names; one line saying what to install
    when it is missing or cannot be imported."""
    found = [ep for ep in metadata.entry_points(group=group) if ep.name == name]
    if not found:
        raise LearnDropError(f"{what} is not installed: {install}")
    try:
        return found[0].load()
    except ImportError as exc:
        raise LearnDropError(f"{what} cannot be loaded ({exc}): {install}") from None
