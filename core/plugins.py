"""Front ends and integrations plug into core through entry points, so core names none of
their modules.

Groups, declared in ``pyproject.toml``: ``learndrop.frontends`` (``studio``: the desktop
app's ``main(argv)``), ``learndrop.exporters`` (report writers by format, e.g. ``pdf``),
``learndrop.callbacks`` (engine callbacks by name, built from one argument, e.g.
``tensorboard``: ``learndrop train --tensorboard DIR``) and ``learndrop.models`` (model
sources by prefix, e.g. ``timm`` builds ``--model timm:NAME``).
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
