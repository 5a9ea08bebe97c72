"""Faults while training through the command line: absent devices, out of memory, NaN losses,
full disks, failing writes and checkpoints that are not ours. One line saying what to fix,
never a traceback, and the last good checkpoint kept."""

from __future__ import annotations

import errno
import json
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from factories import RunCli, one_line, store_status, tiny_flags
from learndrop.core.training import available_devices, load_checkpoint

TINY = tiny_flags(**{"train.log_every": 1})


# ---- devices and memory ---------------------------------------------------------------------
@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_absent_device(device: str, run_cli: RunCli) -> None:
    if device in available_devices():
        pytest.skip(f"{device} is present here")
    code, _, err = run_cli(["train", *TINY, "--device", device, "--no-store"])
    assert code == 2
    assert f"device '{device}'" in one_line(err)


def _arm_model(monkeypatch: pytest.MonkeyPatch, hook: Any) -> None:
    """Every model built from now on gets ``hook`` as a forward hook on its head."""
    import learndrop.core.models as models

    build = models.get_model

    def get_model(*args: Any, **kwargs: Any) -> torch.nn.Module:
        model = build(*args, **kwargs)
        model.fc.register_forward_hook(hook)
        return model

    monkeypatch.setattr(models, "get_model", get_model)


def test_out_of_memory_keeps_the_last_good_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        run_cli: RunCli) -> None:
    out, store = tmp_path / "out", tmp_path / "store.sqlite"

    def oom(module: torch.nn.Module, args: Any, output: Any) -> None:
        if module.training and list(out.glob("*/checkpoint.pt")):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    _arm_model(monkeypatch, oom)
    code, _, err = run_cli(["train", *TINY, "--store", str(store), "--output-dir", str(out),
                            "--quiet"])
    assert code == 2
    line = one_line(err)
    assert "out of memory" in line and "--batch-size 16" in line
    [folder] = out.iterdir()
    assert load_checkpoint(folder / "checkpoint.pt")["epoch"] == 1
    assert store_status(store) == [(folder.name, "failed")]
    # nothing lost: with memory to spare again the run continues where it stopped, in the
    # same folder and the same stored run (also after the run was renamed in the store)
    monkeypatch.undo()
    from learndrop.core.store import RunStore

    with RunStore(store) as st:
        st.rename_run(folder.name, "renamed")
    code, _, err = run_cli(["resume", "renamed", "--store", str(store), "--quiet"])
    assert code == 0, err
    assert store_status(store) == [("renamed", "finished")]
    assert load_checkpoint(folder / "checkpoint.pt")["epoch"] == 4
    assert [p.name for p in out.iterdir()] == [folder.name]


def _poison(out: Path, after_checkpoint: bool) -> Any:
    def hook(module: torch.nn.Module, args: Any, output: torch.Tensor) -> Any:
        if module.training and torch.is_grad_enabled() and (
                not after_checkpoint or list(out.glob("*/checkpoint.pt"))):
            return output * float("inf")
        return None

    return hook


def test_nan_loss_names_the_step_and_the_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        run_cli: RunCli) -> None:
    out, store = tmp_path / "out", tmp_path / "store.sqlite"
    _arm_model(monkeypatch, _poison(out, after_checkpoint=True))
    code, _, err = run_cli(["train", *TINY, "--store", str(store), "--output-dir", str(out),
                            "--quiet"])
    assert code == 1
    line = one_line(err)
    [folder] = out.iterdir()
    assert "NaN or infinite at step 11 (epoch 2)" in line
    assert str(folder / "checkpoint.pt") in line
    assert load_checkpoint(folder / "checkpoint.pt")["epoch"] == 1
    assert store_status(store) == [(folder.name, "failed")]


def test_nan_loss_before_any_checkpoint_then_resume_says_start_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        run_cli: RunCli) -> None:
    out, store = tmp_path / "out", tmp_path / "store.sqlite"
    _arm_model(monkeypatch, _poison(out, after_checkpoint=False))
    code, _, err = run_cli(["train", *TINY, "--store", str(store), "--output-dir", str(out),
                            "--quiet"])
    assert code == 1
    assert "no checkpoint was written yet" in one_line(err)
    [(name, status)] = store_status(store)
    assert status == "failed"
    code, _, err = run_cli(["resume", name, "--store", str(store)])
    assert code == 2
    line = one_line(err)
    assert "no checkpoint yet" in line and "learndrop train --config" in line


def test_resume_errors(tmp_path: Path, run_cli: RunCli) -> None:
    store = tmp_path / "store.sqlite"
    code, _, err = run_cli(["resume", "nothing-like-this", "--store", str(store)])
    assert code == 2 and "no run 'nothing-like-this'" in one_line(err)
    (tmp_path / "not-a-store").write_bytes(b"definitely not sqlite" * 50)
    code, _, err = run_cli(["resume", "x", "--store", str(tmp_path / "not-a-store")])
    assert code == 2 and "not a Learn&Drop run store" in one_line(err)


# ---- where things are written -----------------------------------------------------------------
def test_output_folder_below_a_regular_file(tmp_path: Path,
                                            run_cli: RunCli) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    for target in (blocker, blocker / "sub"):
        code, _, err = run_cli(["train", *TINY, "--no-store", "--output-dir", str(target)])
        assert code == 2
        line = one_line(err)
        assert "cannot create the run folder" in line and "--output-dir" in line
    assert blocker.read_text() == "keep me"


def test_report_to_a_path_that_cannot_be_written(tmp_path: Path,
                                                 run_cli: RunCli) -> None:
    store = tmp_path / "store.sqlite"
    code, _, err = run_cli(["train", *TINY, "--epochs", "1", "--store", str(store),
                            "--output-dir", str(tmp_path / "out"), "--quiet"])
    assert code == 0, err
    [(name, _)] = store_status(store)
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    code, _, err = run_cli(["report", name, "--store", str(store), "-o",
                            str(blocker / "report.html")])
    assert code == 1  # a write that failed, as a full disk (exit 2 is for bad input)
    assert "cannot write" in one_line(err)
    assert blocker.read_text() == "keep me"


def test_full_disk_while_writing_a_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              run_cli: RunCli) -> None:
    """The second checkpoint hits a full disk: one line, the first one intact, no temp left."""
    from learndrop.core import files as _io

    out, store = tmp_path / "out", tmp_path / "store.sqlite"
    real_fsync = _io.os.fsync

    def fsync(fd: int) -> None:
        name = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if name.name.startswith(".checkpoint.pt.") and (name.parent / "checkpoint.pt").exists():
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(_io.os, "fsync", fsync)
    code, _, err = run_cli(["train", *TINY, "--store", str(store), "--output-dir", str(out),
                            "--quiet"])
    assert code == 1
    line = one_line(err)
    assert "the disk is full" in line and "checkpoint.pt" in line
    [folder] = out.iterdir()
    assert load_checkpoint(folder / "checkpoint.pt")["epoch"] == 1
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))
    assert store_status(store) == [(folder.name, "failed")]


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_atomic_write_failures_leave_the_old_file(tmp_path: Path, failing: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from learndrop.core import files as _io

    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"the previous, complete file")

    def boom(*a: Any, **k: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if failing == "fsync":
        monkeypatch.setattr(_io.os, "fsync", boom)
    elif failing == "replace":
        monkeypatch.setattr(_io.os, "replace", boom)

    def write(fh: Any) -> None:
        fh.write(b"half a new fi")
        if failing == "write":
            boom()
        fh.write(b"le")

    with pytest.raises(_io.WriteError, match="the disk is full; nothing was overwritten"):
        _io.atomic_write(target, write)
    assert target.read_bytes() == b"the previous, complete file"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


# ---- checkpoints that are not ours ------------------------------------------------------------
class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_checkpoints_that_are_not_ours(tmp_path: Path,
                                       run_cli: RunCli) -> None:
    marker = tmp_path / "pwned"
    files = {
        "evil.pt": pickle.dumps({"format": "learndrop-checkpoint", "x": _Evil(marker)}),
        "random.pt": os.urandom(4096),
        "empty.pt": b"",
        "text.pt": b"just some text\n",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    evil_zip = tmp_path / "evil-zip.pt"  # the same payload in torch's own zip format
    torch.save({"format": "learndrop-checkpoint", "x": _Evil(marker)}, evil_zip)
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    expected = {"evil.pt": "refusing", "evil-zip.pt": "run code",
                "random.pt": "not a", "empty.pt": "not a", "text.pt": "not a",
                "foreign.pt": "not a Learn&Drop checkpoint"}
    for name, fragment in expected.items():
        with warnings.catch_warnings(record=True) as caught:  # they would print to stderr
            warnings.simplefilter("always")
            code, _, err = run_cli(["train", *TINY, "--resume", str(tmp_path / name),
                                    "--no-store", "--output-dir", str(tmp_path / "out")])
        assert code == 2, name
        line = one_line(err)
        assert name in line and fragment in line, line
        assert not caught, [str(w.message) for w in caught]
    assert not marker.exists(), "loading a checkpoint ran code"
    assert not (tmp_path / "out").exists()


def test_a_damaged_run_checkpoint_says_what_to_do(tmp_path: Path, run_cli: RunCli,
                                                  store_path: Path) -> None:
    """``learndrop resume RUN`` whose checkpoint.pt was damaged (junk, cut short): one line
    naming the file and what to do, without PyTorch's advice on how to save files."""
    code, _, err = run_cli(["train", *TINY, "--epochs", "1", "--run-name", "hurt", "--quiet",
                            "--output-dir", str(tmp_path / "runs"), "--store", str(store_path)])
    assert code == 0, err
    ck = tmp_path / "runs" / "hurt" / "checkpoint.pt"
    whole = ck.read_bytes()
    for damage in (b"junk\n", whole[: len(whole) // 3]):
        ck.write_bytes(damage)
        code, _, err = run_cli(["resume", "hurt", "--epochs", "2", "--quiet", "--store",
                                str(store_path)])
        line = one_line(err)
        assert code == 2 and str(ck) in line and "damaged" in line, line
        assert "learndrop train" in line, line  # what to do
        assert "torch.save" not in line and "weights_only" not in line, line
        assert ck.read_bytes() == damage  # left as it was


def test_weights_that_are_not_a_torch_file_say_so_plainly(tmp_path: Path,
                                                          run_cli: RunCli) -> None:
    weights = tmp_path / "notes.toml"
    weights.write_text("[train]\nepochs = 1\n")
    code, _, err = run_cli(["train", *TINY, "--model.weights", str(weights), "--no-store",
                            "--output-dir", str(tmp_path / "out")])
    line = one_line(err)
    assert code == 2 and str(weights) in line, line
    assert "PyTorch 2.6" not in line and "weights_only" not in line, line
    assert "torch.save" in line  # what to give instead


def test_checkpoint_of_another_model(tmp_path: Path, run_cli: RunCli) -> None:
    code, out, err = run_cli(["train", *TINY, "--epochs", "1", "--no-store", "--output-dir",
                              str(tmp_path / "a"), "--json", "--quiet"])
    assert code == 0, err
    ck = json.loads(out.strip().splitlines()[-1])["checkpoint"]
    code, _, err = run_cli(["train", *TINY, "--model", "resnet20", "--resume", ck,
                            "--no-store", "--output-dir", str(tmp_path / "b")])
    assert code == 2
    assert "other model settings" in one_line(err)
