"""The versions and machine a run ran on: stored with each run, shown in reports and bench
results."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

__all__ = ["environment_info", "machine_name", "machine_load"]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_name(device: str = "") -> str:
    """What a time measured on this machine depends on: host, CPU model and count, and
    ``device`` (the device plan's description): ``host: CPU x 2, cpu``."""
    return f"{platform.node()}: {_cpu_model()} x {os.cpu_count() or '?'}, {device or '?'}"


def machine_load() -> float | None:
    """The machine's load now: the 1-minute load average per CPU (runnable processes per
    CPU, this one included); ``None`` where the system does not say."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except (OSError, AttributeError):
        return None


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
