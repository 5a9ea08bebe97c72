"""The versions and machine a run ran on: stored with each run, shown in reports and bench
results."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata

__all__ = ["environment_info", "machine_name", "machine_load", "memory_limit"]


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


def memory_limit() -> int | None:
    """The bytes of memory this process may use at most: the least of the machine's
    physical memory, the address-space limit (``ulimit -v``) and the control group's limit
    (a container's); ``None`` where none of them can be read."""
    limits: list[int] = []
    try:
        limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY and soft > 0:
            limits.append(int(soft))
    except (ImportError, OSError, ValueError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < 2**60:  # "max", or v1's "no limit" number
            limits.append(int(text))
    return min(limits) if limits else None


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
