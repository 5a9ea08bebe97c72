"""The versions and machine a run ran on: stored with each run, shown in reports and bench
results."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

__all__ = ["environment_info"]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def environment_info(device: str = "") -> dict[str, str]:
    """Python, PyTorch, torchvision and Learn&Drop versions, the platform, the CPU threads
    PyTorch uses and ``device`` (the device plan's description)."""
    torch_mod = sys.modules.get("torch")
    torch_version = str(getattr(torch_mod, "__version__", "")) if torch_mod else ""
    threads = str(torch_mod.get_num_threads()) if torch_mod else str(os.cpu_count() or "")
    return {
        "python": platform.python_version(),
        "torch": torch_version or _version("torch"),
        "torchvision": _version("torchvision"),
        "learndrop": _version("learndrop"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_threads": threads,
        "device": device,
    }
