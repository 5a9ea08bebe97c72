"""The activation cache's spill file: reserved up front (a full disk falls back to freeze with
a warning, never a SIGBUS), unlinked as soon as it is mapped, stale ones removed."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from factories import small_tmpfs
from learndrop.core.engine._cache import (
    SPILL_PREFIX,
    ActivationCache,
    CacheSpillError,
    remove_stale_spill_files,
)


def spill_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{SPILL_PREFIX}*"))


def test_a_spilled_cache_leaves_no_file(tmp_path: Path) -> None:
    cache = ActivationCache(0, torch.device("cpu"), str(tmp_path))
    ids = torch.arange(8)
    value = torch.randn(8, 4, 5, 5)
    cache.put(ids, value, 8)
    assert cache.location == "disk" and spill_files(tmp_path) == []
    assert torch.equal(cache.get(ids, torch.float32), value.half().float())


def test_a_spilled_cache_of_full_precision_keeps_the_values(tmp_path: Path) -> None:
    cache = ActivationCache(0, torch.device("cpu"), str(tmp_path), exact=True)
    ids = torch.arange(8)
    value = torch.randn(8, 4, 5, 5, dtype=torch.float64)
    assert torch.equal(cache.put(ids, value, 8), value)
    assert cache.location == "disk" and cache.store is not None
    assert cache.store.dtype == torch.float64
    assert torch.equal(cache.get(ids, torch.float64), value)


def test_a_full_disk_raises_at_once_and_leaves_nothing(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    cache = ActivationCache(0, torch.device("cpu"), str(tmp_path))
    with pytest.raises(CacheSpillError, match="No space left"):
        cache.put(torch.arange(4), torch.randn(4, 3), 4)
    assert spill_files(tmp_path) == []


def test_stale_spill_files_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / f"{SPILL_PREFIX}999999999-abcd.bin"
    mine = tmp_path / f"{SPILL_PREFIX}{os.getpid()}-efgh.bin"
    other = tmp_path / "someone-else.bin"
    for f in (dead, mine, other):
        f.write_bytes(b"x")
    assert remove_stale_spill_files(str(tmp_path)) == 1
    assert not dead.exists() and mine.exists() and other.exists()


@pytest.fixture
def small_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "small", "256k") as mnt:
        monkeypatch.setattr(tempfile, "tempdir", str(mnt))
        yield mnt


def test_cache_mode_on_a_small_tmpdir_falls_back_to_freeze(small_tmpdir: Path) -> None:
    from learndrop.core.config import RunConfig
    from learndrop.core.events import Callback
    from learndrop.core.training import Trainer

    warnings: list[str] = []

    class Warnings(Callback):
        def on_warning(self, message: str) -> None:
            warnings.append(message)

    cfg = RunConfig()
    for path, value in (("data.dataset", "digits"), ("data.limit", 640),
                        ("data.image_size", 32), ("train.batch_size", 64),
                        ("train.epochs", 6), ("train.log_every", 1), ("drop.mode", "cache"),
                        ("drop.cache_budget_mb", 1), ("drop.threshold", 1.0),
                        ("drop.patience", 1), ("drop.warmup_epochs", 1), ("drop.window", 2),
                        ("drop.trend_tolerance", 10.0), ("drop.settle", "tolerance")):
        cfg.set(path, value)
    cfg.output.dir = str(small_tmpdir.parent / "runs")
    result = Trainer(cfg, [Warnings()]).fit()
    assert result.status == "finished"
    assert result.summary.dropped, "the settings are meant to drop a unit"
    assert any("does not fit" in w and "freeze" in w for w in warnings), warnings
    assert spill_files(small_tmpdir) == []
