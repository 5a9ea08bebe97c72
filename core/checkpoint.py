"""Checkpoints: written atomically, read back with ``torch.load(weights_only=True)`` only."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ._io import atomic_write_bytes
from .errors import CheckpointError

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint"]

FORMAT = "learndrop-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Serialise ``payload`` (tensors and plain types only) to ``path`` atomically."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu"
                    ) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Never unpickles arbitrary objects: a file that would need to run code to load is refused.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist: check the path")
    try:
        data = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(f"{p} holds Python objects that would run code when loaded; "
                                  f"refusing to load it (only Learn&Drop checkpoints are "
                                  f"accepted)") from None
        raise CheckpointError(f"{p} is not a readable checkpoint ({first})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{p} is damaged or not a checkpoint ({first[:120]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a Learn&Drop checkpoint; resume from a file in a "
                              f"run folder (checkpoint.pt)")
    if int(data.get("version", 0)) > VERSION:
        raise CheckpointError(f"{p} was written by a newer Learn&Drop; upgrade to resume it")
    return data
