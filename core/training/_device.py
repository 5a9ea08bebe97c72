"""Device selection: ``auto|cuda|mps|cpu``, with a clear error for one that is absent."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import DeviceError

__all__ = ["available_devices", "resolve_device", "DevicePlan"]


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Devices present on this machine, best first (always ends with ``cpu``)."""
    out = []
    if torch.cuda.is_available():
        out.append("cuda")
    if _mps_available():
        out.append("mps")
    out.append("cpu")
    return out


@dataclass(frozen=True)
class DevicePlan:
    device: torch.device
    amp: bool
    amp_dtype: torch.dtype
    channels_last: bool

    @property
    def description(self) -> str:
        name = self.device.type
        if self.device.type == "cuda":
            name = f"cuda ({torch.cuda.get_device_name(self.device)})"
        extras = [x for x, on in (("mixed precision", self.amp),
                                  ("channels_last", self.channels_last)) if on]
        return name + (f", {', '.join(extras)}" if extras else "")


def resolve_device(device: str = "auto", amp: str = "auto",
                   channels_last: str = "auto") -> DevicePlan:
    """Turn the config's device settings into a concrete plan.

    Mixed precision and channels_last default to on with CUDA only, where they pay off
    (tensor cores); on CPU they usually slow convolutions down.
    """
    present = available_devices()
    if device == "auto":
        device = present[0]
    elif device not in present:
        raise DeviceError(f"device '{device}' was asked for but is not available on this "
                          f"machine (available: {', '.join(present)}); use --device auto")
    dev = torch.device(device)
    is_cuda = dev.type == "cuda"
    use_amp = is_cuda if amp == "auto" else amp == "on"
    if use_amp and dev.type == "cpu":
        amp_dtype = torch.bfloat16
    elif use_amp and is_cuda and torch.cuda.is_bf16_supported():
        amp_dtype = torch.bfloat16
    else:
        amp_dtype = torch.float16
    use_cl = is_cuda if channels_last == "auto" else channels_last == "on"
    return DevicePlan(dev, use_amp, amp_dtype, use_cl)
