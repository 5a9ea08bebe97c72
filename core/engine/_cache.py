"""Activation cache for ``mode="cache"``: the dropped prefix's output for each sample.

Stored as float16 (or, ``exact``, in the activation's own dtype) in one preallocated tensor
indexed by sample id, on the model's device while
it fits the memory budget, otherwise in host memory, and past that in a file on disk (a
memory-mapped tensor), so the cache never runs the machine out of memory.

The spill file's space is reserved up front: a disk too small for it raises
:class:`CacheSpillError` at once (the caller falls back to freeze) instead of a SIGBUS when a
page of the mapping cannot be written later. The file is unlinked as soon as it is mapped, so
nothing is left behind however the process ends; spill files that older or killed processes
left in the folder are removed when a cache spills again.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import weakref
from pathlib import Path

import torch

__all__ = ["ActivationCache", "CacheSpillError", "SPILL_PREFIX", "remove_stale_spill_files"]

SPILL_PREFIX = "learndrop-cache-"


class CacheSpillError(OSError):
    """The activation cache cannot get its file on disk (the disk is full, say)."""


def remove_stale_spill_files(folder: str | None = None) -> int:
    """Delete spill files left in ``folder`` (default: the temporary folder) by processes
    that are gone. Returns how many were removed."""
    removed = 0
    for path in Path(folder or tempfile.gettempdir()).glob(f"{SPILL_PREFIX}*.bin"):
        parts = path.name[len(SPILL_PREFIX):].split("-", 1)
        if len(parts) == 2 and parts[0].isdigit():
            if _alive(int(parts[0])):
                continue  # its process still uses it
        elif not _older_than(path, 24 * 3600):  # named before the pid was: a day's grace
            continue
        try:
            path.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # pragma: no cover - files there cannot be unlinked in use
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class ActivationCache:
    """Per-sample cached activations of one prefix boundary."""

    def __init__(self, budget_bytes: int, device: torch.device, spill_dir: str | None = None,
                 *, exact: bool = False, host_only: bool = False):
        self.budget = int(budget_bytes)
        self.device = device
        self.spill_dir = spill_dir
        # exact: kept in the activation's own dtype (the evaluation cache, so that a cached
        # evaluation is the evaluation, and a training cache of full precision); host_only:
        # in host memory within the budget, never on the device or in a file
        self.exact = exact
        self.host_only = host_only
        self.dtype = torch.float16
        self.store: torch.Tensor | None = None
        self.filled: torch.Tensor | None = None  # bool, on the host: no device sync to query
        self.shape: tuple[int, ...] | None = None
        self.location = "none"
        self._file: str | None = None

    def clear(self) -> None:
        self.store = None
        self.filled = None
        self.shape = None
        self.location = "none"
        if self._file:
            try:
                os.unlink(self._file)
            except OSError:
                pass
            self._file = None

    def _allocate(self, num_samples: int, shape: tuple[int, ...]) -> None:
        per = int(torch.Size(shape).numel()) * self.dtype.itemsize
        need = per * num_samples
        if self.host_only and need > self.budget:
            raise CacheSpillError(12, f"{need / 2**20:.0f} MiB would exceed the cache budget")
        if self.device.type != "cpu" and need <= self.budget and not self.host_only:
            self.store = torch.empty((num_samples, *shape), dtype=self.dtype,
                                     device=self.device)
            self.location = str(self.device.type)
        elif need <= self.budget:
            self.store = torch.empty((num_samples, *shape), dtype=self.dtype)
            self.location = "host"
        else:
            self.store = self._spill(num_samples, shape, need)
            self.location = "disk"
        self.filled = torch.zeros(num_samples, dtype=torch.bool)
        self.shape = shape

    def _spill(self, num_samples: int, shape: tuple[int, ...], nbytes: int) -> torch.Tensor:
        remove_stale_spill_files(self.spill_dir)
        try:
            fd, path = tempfile.mkstemp(prefix=f"{SPILL_PREFIX}{os.getpid()}-", suffix=".bin",
                                        dir=self.spill_dir)
        except OSError as exc:
            raise CacheSpillError(exc.errno, f"cannot create the cache file: "
                                             f"{exc.strerror or exc}") from None
        try:
            try:  # reserve every block now: a full disk fails here, not as a SIGBUS later
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(fd, 0, max(nbytes, 1))
                else:  # pragma: no cover - macOS, Windows
                    os.ftruncate(fd, max(nbytes, 1))
            finally:
                os.close(fd)
            store = torch.from_file(path, shared=True, size=nbytes // self.dtype.itemsize,
                                    dtype=self.dtype).view(num_samples, *shape)
        except (OSError, RuntimeError) as exc:
            _unlink(path)
            raise CacheSpillError(getattr(exc, "errno", None) or 28,
                                  f"cannot reserve {nbytes / 2**20:.0f} MiB for the cache in "
                                  f"{os.path.dirname(path)}: "
                                  f"{getattr(exc, 'strerror', None) or exc}") from None
        try:
            os.unlink(path)  # the mapping stays; the space returns when it is dropped
        except OSError:  # pragma: no cover - a file in use cannot be unlinked on Windows
            self._file = path
            weakref.finalize(store, _unlink, path)
        return store

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
        if self.exact and self.store is None:
            self.dtype = value.dtype
        if self.store is None or self.shape != shape or self.store.shape[0] < need:
            old_store, old_filled = self.store, self.filled
            if old_store is not None and self.shape == shape and need > num_samples:
                need = max(need, 2 * old_store.shape[0])  # unknown size: grow geometrically
            self._allocate(max(need, 1), shape)
            if old_store is not None and old_filled is not None and self.shape == shape:
                n = old_store.shape[0]
                assert self.store is not None and self.filled is not None
                self.store[:n].copy_(old_store.to(self.store.device))
                self.filled[:n] = old_filled
        assert self.store is not None and self.filled is not None
        half = value.detach().to(self.dtype)
        if self.store.device == half.device:
            self.store[ids.to(self.store.device, non_blocking=True)] = half
        else:
            self.store[ids] = half.to(self.store.device)
        self.filled[ids] = True
        return half.to(value.dtype)

    @property
    def nbytes(self) -> int:
        return 0 if self.store is None else self.store.numel() * self.store.element_size()
