"""What running out of memory means for a run: the data set, the model itself, or the batch.

A smaller batch only helps when the model fits: out of memory while the data set is read,
while the model is built or moved to the device, on the one-example forward pass that
measures it, with a batch of one, or with weights, gradients and optimizer state that alone
take about all the memory there is, the message names the model (or the data) instead.
"""

from __future__ import annotations

import types

import torch
from torch import nn

from ..config import RunConfig
from ..environment import memory_limit
from ..errors import DeviceError

__all__ = ["out_of_memory_error", "training_bytes", "device_memory"]

#: the share of the memory that weights, gradients and optimizer state may take before the
#: model is said not to fit (activations, the data and PyTorch itself need the rest)
_FITS_SHARE = 0.9
#: the run's setup steps (in training/_setup.py) that read the data or build the model
_SETUP = "learndrop.core.training._setup"
_DATA_STEPS = ("build_data",)
_MODEL_STEPS = ("build_model", "build_parts")  # build_parts measures one example's forward

def out_of_memory_error(cfg: RunConfig, exc: BaseException | None, *,
                        device: torch.device | None = None, model: nn.Module | None = None,
                        optimizer: torch.optim.Optimizer | None = None) -> DeviceError:
    """The one line for running out of memory with ``exc`` (its traceback tells where);
    ``device``, ``model`` and ``optimizer``: the run's, once they are built."""
    bs = cfg.train.batch_size
    where = device.type if device is not None else "the device"
    name = cfg.model.name
    place = _where(exc)
    if place == "data":
        return DeviceError(f"out of memory while reading data set {cfg.data.dataset}: it does "
                           f"not fit in this machine's memory; use part of it (--data.limit) "
                           f"or a smaller --image-size")
    need = training_bytes(model, optimizer) if model is not None else None
    have = device_memory(device) if device is not None else None
    too_big = need is not None and have is not None and need > _FITS_SHARE * have
    if place == "model" or model is None or bs == 1 or too_big:
        size = ""
        if need is not None:
            size = f" (its weights, gradients and optimizer state take {_gib(need)}"
            size += f" of {_gib(have)})" if have is not None else ")"
        return DeviceError(f"out of memory on {where}: model {name} does not fit{size}, even "
                           f"with one image at a time; pick a smaller --model or a device "
                           f"with more memory")
    return DeviceError(f"out of memory on {where} with batch size {bs}: try "
                       f"--batch-size {max(bs // 2, 1)} or a smaller --image-size")


def training_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> int:
    """Bytes that training ``model`` holds whatever the batch: its weights, the gradients of
    the trainable ones and the optimizer's state (counted where it exists, else estimated:
    two tensors per weight for Adam-like optimizers, one for SGD with momentum)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = sum(p.numel() * p.element_size() for p in model.parameters()
                    if p.requires_grad)
    state = 0
    if optimizer is not None:
        for per_param in optimizer.state.values():
            for value in per_param.values():
                if torch.is_tensor(value) and value.dim() > 0:
                    state += value.numel() * value.element_size()
        if not state:
            kind = type(optimizer).__name__.lower()
            momentum = any(g.get("momentum", 0) for g in optimizer.param_groups)
            state = trainable * (2 if "adam" in kind else 1 if momentum or "rms" in kind
                                 else 0)
    return weights + trainable + state


def device_memory(device: torch.device) -> int | None:
    """The bytes of memory ``device`` has for this process (``None`` where unknown)."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device).total_memory)
        if device.type == "cpu":
            return memory_limit()
    except (RuntimeError, AssertionError, ValueError):
        pass
    return None


def _where(exc: BaseException | None) -> str:
    """``data`` or ``model`` when ``exc`` was raised reading the data set or building,
    moving or measuring the model; else ``""`` (training)."""
    tb: types.TracebackType | None = exc.__traceback__ if exc is not None else None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_globals.get("__name__") == _SETUP:
            if frame.f_code.co_name in _DATA_STEPS:
                return "data"
            if frame.f_code.co_name in _MODEL_STEPS:
                return "model"
        tb = tb.tb_next
    return ""

def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


