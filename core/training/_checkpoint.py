"""Checkpoints: written atomically, read back with ``torch.load(weights_only=True)`` only."""

from __future__ import annotations

import io
import math
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..files import atomic_write_bytes

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "load_initial_weights",
           "check_resumable", "checkpoint_epoch"]

FORMAT = "learndrop-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Serialise ``payload`` (tensors and plain types only) to ``path`` atomically."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buf)
    return atomic_write_bytes(path, buf.getvalue())


#: whatever torch's reader raises on a file that is not a checkpoint
_UNREADABLE = (pickle.UnpicklingError, RuntimeError, EOFError, OSError, zipfile.BadZipFile,
               ValueError, KeyError, IndexError, TypeError, AttributeError, MemoryError,
               OverflowError)


def _unreadable(exc: BaseException) -> str:
    """Why torch could not read a file, in a few words: the line of its message that names
    the problem, never its advice on how files should be saved or loaded."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if isinstance(exc, pickle.UnpicklingError):
        return next((ln for ln in lines if ln.startswith("Unsupported")),
                    "not a file PyTorch saved")[:120]
    if not isinstance(exc, (RuntimeError, OSError, ValueError, EOFError)):
        return "not a format torch can read"
    text = lines[0] if lines else ""
    if not text or "torch.save" in text or "weights_only" in text:
        return "not a file PyTorch saved" if text else "it ends too soon"
    return text.split(". ")[0][:120]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *,
                    mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Never unpickles arbitrary objects: a file that would need to run code to load is refused.
    ``mmap=True`` maps the tensors from the file instead of reading them (cheap when only the
    plain fields, such as ``epoch``, are needed).
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist: check the path")
    try:
        with warnings.catch_warnings():  # torch's notes on odd pickles: the error says it all
            warnings.simplefilter("ignore")
            data = torch.load(p, map_location=map_location, weights_only=True, mmap=mmap)
    except _UNREADABLE as exc:
        text = str(exc)
        if isinstance(exc, pickle.UnpicklingError) and (
                "GLOBAL" in text or "Unsupported global" in text):
            raise CheckpointError(f"{p} holds Python objects that would run code when loaded; "
                                  f"refusing to load it (only Learn&Drop checkpoints are "
                                  f"accepted)") from None
        raise CheckpointError(f"{p} is damaged or not a checkpoint; refusing to load it "
                              f"({_unreadable(exc)}): resume from another checkpoint or start "
                              f"the run again with learndrop train") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a Learn&Drop checkpoint; resume from a file in a "
                              f"run folder (checkpoint.pt)")
    version = data.get("version", 0)
    if not _is_int(version):
        raise CheckpointError(f"{p} is damaged: its version is {_shown(version)}, not a number")
    if version > VERSION:
        raise CheckpointError(f"{p} was written by a newer Learn&Drop; upgrade to resume it")
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _is_seconds(value: Any) -> bool:
    return _is_number(value) and value >= 0


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def checkpoint_epoch(data: dict[str, Any], path: str | Path) -> int:
    """The number of complete epochs a checkpoint holds; refuses a damaged field."""
    epoch = data.get("epoch", 0)
    if not _is_int(epoch) or epoch < 0:
        raise CheckpointError(f"{path} is damaged: its epoch is {_shown(epoch)}, not a "
                              f"count of epochs; resume from an earlier checkpoint or start "
                              f"the run again")
    return int(epoch)


#: the fields of a resumable checkpoint: (name, required, check, what it must be)
_FIELDS: tuple[tuple[str, bool, Any, str], ...] = (
    ("model", True, lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and torch.is_tensor(t) for k, t in v.items()),
     "a table of tensors"),
    ("optimizer", True, lambda v: isinstance(v, dict) and isinstance(v.get("state"), dict)
     and isinstance(v.get("param_groups"), list), "an optimizer state"),
    ("scaler", True, lambda v: isinstance(v, dict), "a table"),
    ("learndrop", True, lambda v: isinstance(v, dict), "a table"),
    ("config", False, lambda v: isinstance(v, dict), "a table"),
    ("best_accuracy", False, _is_number, "a number"),
    ("elapsed_s", False, _is_seconds, "a number of seconds"),
    ("train_time_s", False, _is_seconds, "a number of seconds"),
    ("data_time_s", False, _is_seconds, "a number of seconds"),
    ("history", False, lambda v: isinstance(v, list) and all(isinstance(h, dict) for h in v),
     "a list of epochs"),
    ("torch_rng", False, lambda v: torch.is_tensor(v) and v.dtype == torch.uint8
     and v.dim() == 1, "a random generator state"),
)


def check_resumable(data: dict[str, Any], path: str | Path) -> int:
    """Check every field a resume uses before any is used; returns the epoch count.

    A damaged field is refused with one line naming it, never half-applied."""
    epoch = checkpoint_epoch(data, path)
    for name, required, ok, what in _FIELDS:
        if name not in data:
            if required:
                raise CheckpointError(f"{path} is damaged: it has no '{name}' field; resume "
                                      f"from a run folder's checkpoint.pt")
            continue
        if not ok(data[name]):
            raise CheckpointError(f"{path} is damaged: its '{name}' field is not {what} "
                                  f"({_shown(data[name])}); resume from an earlier "
                                  f"checkpoint or start the run again")
    return epoch


def load_initial_weights(model: torch.nn.Module, path: str | Path) -> list[str]:
    """Copy matching tensors from a weights file into ``model`` (for fine-tuning).

    Accepts a run's ``final.pt``/``checkpoint.pt`` or a plain state dict, loaded with
    ``weights_only=True``. Tensors whose name or shape does not match (a new head) keep their
    fresh initialisation; returns warnings saying which.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raise CheckpointError(f"model.weights {p} is a folder: give the weights file in it "
                              f"(a run folder's final.pt, say)")
    if p.exists() and not p.is_file():  # reading a FIFO would block, /dev/zero never end
        raise CheckpointError(f"model.weights {p} is not a regular file (a FIFO, device or "
                              f"socket, or a link to one): give a weights file")
    if not p.is_file():
        raise CheckpointError(f"weights file {p} does not exist: check model.weights")
    try:
        with warnings.catch_warnings():  # torch's notes on sparse tensors: refused below
            warnings.simplefilter("ignore")
            data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one line
        raise CheckpointError(f"cannot load weights from {p} ({_unreadable(exc)}); give a "
                              f"state dict saved with torch.save or a run's final.pt") from None
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{p} holds no state dict of tensors: give a file saved with "
                              f"torch.save(model.state_dict()) or a run's final.pt")
    for name, tensor in state.items():
        kind = ("meta (shapes without values)" if tensor.is_meta
                else "sparse" if tensor.layout != torch.strided
                else "complex" if tensor.is_complex() else "")
        if kind:
            raise CheckpointError(f"{p} holds a {kind} tensor ({str(name)[:60]}) that cannot "
                                  f"become model weights: give a state dict of ordinary real "
                                  f"tensors")
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise CheckpointError(f"no tensor in {p} fits model '{type(model).__name__}': pick the "
                              f"same architecture the weights were trained with")
    model.load_state_dict(matched, strict=False)
    fresh = sorted(k for k in own if k not in matched)
    if not fresh:
        return []
    shown = ", ".join(fresh[:4]) + (" ..." if len(fresh) > 4 else "")
    return [f"{len(fresh)} tensors not in {p.name} or of another shape start fresh: {shown}"]
