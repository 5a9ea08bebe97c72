"""Out of memory names what does not fit: the model itself (building it, moving it to the
device, one image at a time, weights and optimizer state that take about all the memory) or
the batch. Memory is never really exhausted here: the allocator's error is raised instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from factories import RunCli, one_line, tiny_flags


def _oom(*_: Any) -> None:
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def _built(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    """Every model built from now on goes through ``change`` first."""
    import learndrop.core.models as models

    build = models.get_model

    def get_model(*args: Any, **kwargs: Any) -> torch.nn.Module:
        model = build(*args, **kwargs)
        change(model)
        return model

    monkeypatch.setattr(models, "get_model", get_model)


def _train(run_cli: RunCli, tmp_path: Path, **changes: Any) -> str:
    code, _, err = run_cli(["train", *tiny_flags(**changes), "--no-store", "--quiet",
                            "--output-dir", str(tmp_path)])
    assert code == 2
    return one_line(err)


def _training_forward_fails(model: torch.nn.Module) -> None:
    def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
        if module.training and torch.is_grad_enabled():
            _oom()

    model.fc.register_forward_hook(hook)


def test_a_model_that_cannot_be_moved_to_the_device_does_not_fit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli) -> None:
    _built(monkeypatch, lambda model: setattr(model, "to", _oom))
    line = _train(run_cli, tmp_path)
    assert "model small_cnn does not fit" in line and "--batch-size" not in line
    assert "smaller --model" in line


def test_out_of_memory_with_one_image_at_a_time_is_the_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli) -> None:
    _built(monkeypatch, _training_forward_fails)
    line = _train(run_cli, tmp_path, **{"train.batch_size": 1, "data.limit": 40})
    assert "does not fit" in line and "--batch-size" not in line


def test_weights_and_optimizer_state_larger_than_memory_is_the_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli) -> None:
    from learndrop.core.training import _memory

    monkeypatch.setattr(_memory, "device_memory", lambda device: 2**20)  # a 1 MiB device
    _built(monkeypatch, _training_forward_fails)
    line = _train(run_cli, tmp_path)
    assert "model small_cnn does not fit" in line and "of 0.0 GiB" in line
    assert "--batch-size" not in line


def test_a_batch_too_large_still_says_which_batch_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli) -> None:
    _built(monkeypatch, _training_forward_fails)
    line = _train(run_cli, tmp_path)
    assert "with batch size 32: try --batch-size 16" in line


def test_out_of_memory_reading_the_data_names_the_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli) -> None:
    import learndrop.core.data as data

    def no_memory(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr(data, "build_datasets", no_memory)
    line = _train(run_cli, tmp_path)
    assert "reading data set digits" in line and "--batch-size" not in line


def test_a_timm_model_too_large_for_memory_is_not_called_wrong_for_the_images(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli) -> None:
    pytest.importorskip("timm")
    import timm

    def huge(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 7420000000 bytes.")

    monkeypatch.setattr(timm, "create_model", huge)
    line = _train(run_cli, tmp_path, **{"model.name": "timm:vit_gigantic_patch14_224",
                                        "data.image_size": 8})
    assert "cannot build" not in line and "8x8" not in line
    assert "model timm:vit_gigantic_patch14_224 does not fit" in line
