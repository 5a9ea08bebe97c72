"""Activation cache for ``mode="cache"``: the dropped prefix's output for each sample.

Stored as float16 in one preallocated tensor indexed by sample id, on the model's device while
it fits the memory budget, otherwise in host memory, and past that in a file on disk (a
memory-mapped tensor), so the cache never runs the machine out of memory.
"""

from __future__ import annotations

import os
import tempfile

import torch

__all__ = ["ActivationCache"]


class ActivationCache:
    """Per-sample cached activations of one prefix boundary."""

    def __init__(self, budget_bytes: int, device: torch.device, spill_dir: str | None = None):
        self.budget = int(budget_bytes)
        self.device = device
        self.spill_dir = spill_dir
        self.store: torch.Tensor | None = None
        self.filled: torch.Tensor | None = None  # bool, on the host: no device sync to query
        self.shape: tuple[int, ...] | None = None
        self.location = "none"
        self._file: str | None = None
        self.verified = False

    def clear(self) -> None:
        self.store = None
        self.filled = None
        self.shape = None
        self.location = "none"
        self.verified = False
        if self._file:
            try:
                os.unlink(self._file)
            except OSError:
                pass
            self._file = None

    def _allocate(self, num_samples: int, shape: tuple[int, ...]) -> None:
        per = int(torch.Size(shape).numel()) * 2
        need = per * num_samples
        if self.device.type != "cpu" and need <= self.budget:
            self.store = torch.empty((num_samples, *shape), dtype=torch.float16,
                                     device=self.device)
            self.location = str(self.device.type)
        elif need <= self.budget:
            self.store = torch.empty((num_samples, *shape), dtype=torch.float16)
            self.location = "host"
        else:
            fd, path = tempfile.mkstemp(prefix="learndrop-cache-", suffix=".bin",
                                        dir=self.spill_dir)
            os.close(fd)
            self._file = path
            self.store = torch.from_file(path, shared=True, size=num_samples * per // 2,
                                         dtype=torch.float16).view(num_samples, *shape)
            self.location = "disk"
        self.filled = torch.zeros(num_samples, dtype=torch.bool)
        self.shape = shape

    def covers(self, ids: torch.Tensor) -> bool:
        """Whether every sample in ``ids`` (a host tensor) is cached."""
        if self.filled is None or ids.numel() == 0:
            return False
        if int(ids.max()) >= self.filled.numel():
            return False
        return bool(self.filled[ids].all())

    def get(self, ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        assert self.store is not None
        if self.store.device.type == self.device.type:
            out = self.store[ids.to(self.store.device, non_blocking=True)]
        else:
            out = self.store[ids].to(self.device, non_blocking=True)
        return out.to(dtype)

    def put(self, ids: torch.Tensor, value: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Store ``value`` for ``ids``; returns it rounded to the cache precision, so every
        epoch sees exactly the same prefix output."""
        shape = tuple(value.shape[1:])
        need = max(num_samples, int(ids.max()) + 1)
        if self.store is None or self.shape != shape or self.store.shape[0] < need:
            old_store, old_filled = self.store, self.filled
            self._allocate(max(need, 1), shape)
            if old_store is not None and old_filled is not None and self.shape == shape:
                n = old_store.shape[0]
                assert self.store is not None and self.filled is not None
                self.store[:n].copy_(old_store.to(self.store.device))
                self.filled[:n] = old_filled
        assert self.store is not None and self.filled is not None
        half = value.detach().to(torch.float16)
        if self.store.device == half.device:
            self.store[ids.to(self.store.device, non_blocking=True)] = half
        else:
            self.store[ids] = half.to(self.store.device)
        self.filled[ids] = True
        return half.to(value.dtype)

    @property
    def nbytes(self) -> int:
        return 0 if self.store is None else self.store.numel() * 2
