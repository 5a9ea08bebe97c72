"""Inputs that used to crash or end in "internal error": each now gets one line naming what to
fix, exit 2 (bad input) or 1 (failure). Also --help of every command, Ctrl-C while the engine
loads, a closed stderr and a FIFO given as a config file."""

from __future__ import annotations

import argparse
import io
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
import torch

from factories import RunCli, one_line
from learndrop.core.cli import _main as cli_main
from learndrop.core.cli import main
from learndrop.core.training import load_checkpoint, save_checkpoint

TINY = ["--dataset", "digits", "--model", "small_cnn", "--data.limit", "320", "--image-size",
        "16", "--batch-size", "32", "--epochs", "1", "--quiet"]


# ---- help, signals, streams -------------------------------------------------------------------
def _commands() -> list[str]:
    parser = cli_main._parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(name for name in sub.choices if name != "studio")


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_working_help(command: str,
                                        run_cli: RunCli) -> None:
    code, out, err = run_cli([command, "--help"])
    assert code == 0 and "usage: learndrop" in out and err == ""


def test_help_lists_a_percent_sign(run_cli: RunCli) -> None:
    code, out, _ = run_cli(["train", "--help"])
    assert code == 0 and "50% and 75%" in " ".join(out.split())


def _learndrop(*args: str, **kw: Any) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "learndrop", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


@pytest.mark.parametrize("delay", [0.2, 0.5, 1.0])
def test_ctrl_c_while_the_engine_loads_ends_quietly(delay: float) -> None:
    proc = _learndrop("runs")
    time.sleep(delay)  # importing PyTorch takes seconds: the interrupt lands somewhere in it
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err, err.decode()
    assert proc.returncode in (130, 0), err.decode()  # 0: it had already finished


def test_a_closed_stderr_is_no_crash(tmp_path: Path) -> None:
    proc = _learndrop("train", "--model", "nope", "--no-store",
                      preexec_fn=lambda: os.close(2))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2 and b"Error" not in out


def test_a_fifo_as_config_file_is_refused(tmp_path: Path,
                                          run_cli: RunCli) -> None:
    fifo = tmp_path / "run.toml"
    os.mkfifo(fifo)
    code, _, err = run_cli(["train", "--config", str(fifo), "--no-store"])
    assert code == 2 and "not a regular file" in one_line(err)


# ---- names --------------------------------------------------------------------------------------
@pytest.mark.parametrize("flag,value,fragment", [
    ("--run-name", "a\udcffb", "plain text"),   # a 0xFF byte on the command line
    ("--output-dir", "/tmp/x\udcffy", "plain text"),
    ("--run-name", "n" * 300, "longer than 200"),
    ("--output-dir", "/tmp/" + "d" * 300, "longer than 255"),
    ("--run-name", "two\nlines", "control character"),
    ("--run-name", "tab\there", "control character"),
])
def test_names_that_cannot_name_a_folder(flag: str, value: str, fragment: str, tmp_path: Path,
                                         run_cli: RunCli) -> None:
    code, _, err = run_cli(["train", *TINY, "--no-store", flag, value])
    assert code == 2 and fragment in one_line(err)


def test_a_nul_byte_in_a_config_file_name(tmp_path: Path,
                                          run_cli: RunCli) -> None:
    cfg = tmp_path / "run.json"
    cfg.write_text('{"output": {"name": "a\\u0000b"}}')
    code, _, err = run_cli(["train", "--config", str(cfg), "--no-store"])
    assert code == 2 and "NUL" in one_line(err)


def test_a_newline_in_an_old_run_name_keeps_the_table_whole(
        tmp_path: Path, run_cli: RunCli) -> None:
    store = tmp_path / "store.sqlite"
    assert run_cli(["train", *TINY, "--store", str(store), "--output-dir", str(tmp_path),
                    "--run-name", "r"])[0] == 0
    with sqlite3.connect(store) as conn:  # as an older version could record it
        conn.execute("UPDATE runs SET name = 'two\nlines'")
    code, out, _ = run_cli(["runs", "--store", str(store)])
    assert code == 0 and len(out.strip().splitlines()) == 3 and "two?lines" in out


@pytest.mark.parametrize("ref", ["²", "12345678901234567890", "\udcff", "x" * 5000])
def test_show_with_odd_ids(ref: str, tmp_path: Path,
                           run_cli: RunCli) -> None:
    code, _, err = run_cli(["show", ref, "--store", str(tmp_path / "s.sqlite")])
    assert code == 2 and len(one_line(err)) < 400


def test_a_huge_bad_value_is_not_echoed_whole(run_cli: RunCli) -> None:
    code, _, err = run_cli(["train", "--model", "m" * 2_000_000, "--no-store"])
    assert code == 2 and len(one_line(err)) <= 2100


# ---- data ---------------------------------------------------------------------------------------
def _png(path: Path, size: int = 12, shade: int = 0) -> None:
    from PIL import Image

    Image.new("RGB", (size, size), (shade, 255 - shade, 128)).save(path)


def _classes(root: Path, n: int = 8) -> None:
    for k, c in enumerate(("cats", "dogs")):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _png(root / c / f"{i}.png", shade=60 * k + i)


def _folder_train(root: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["train", "--dataset", "imagefolder", "--data-root", str(root), "--model",
            "small_cnn", "--image-size", "12", "--batch-size", "4", "--epochs", "1",
            "--no-store", "--quiet", "--output-dir", str(tmp_path / "out"), *extra]


def _bomb(path: Path) -> None:
    """A tiny PNG whose header claims 60,000 x 60,000 pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _truncated_jpeg(path: Path) -> None:
    from PIL import Image

    buf = io.BytesIO()
    g = torch.Generator().manual_seed(1)
    arr = (torch.rand(64, 64, 3, generator=g) * 255).to(torch.uint8).numpy()
    Image.fromarray(arr).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])


@pytest.mark.parametrize("make", [_bomb, _truncated_jpeg])
def test_bad_images_are_skipped_and_named(make: Any, tmp_path: Path,
                                          run_cli: RunCli) -> None:
    root = tmp_path / "data"
    _classes(root)
    bad = root / "cats" / ("bad.png" if make is _bomb else "bad.jpg")
    make(bad)
    code, _, err = run_cli(_folder_train(root, tmp_path, "--data.bad_files", "skip"))
    assert code == 0, err
    code, _, err = run_cli(_folder_train(root, tmp_path, "--data.bad_files", "stop"))
    assert code == 2 and str(bad) in one_line(err)


def test_folders_nested_very_deep(tmp_path: Path, run_cli: RunCli) -> None:
    root = tmp_path / "data"
    _classes(root)
    deep = root / "cats"
    for _ in range(1500):
        deep = deep / "d"
        deep.mkdir()
    _png(deep / "deep.png")
    try:
        code, _, err = run_cli(_folder_train(root, tmp_path))
        assert code == 0, err
    finally:  # a recursive delete (pytest's own clean-up) cannot go this deep
        (deep / "deep.png").unlink()
        while deep != root / "cats":
            deep.rmdir()
            deep = deep.parent


def test_damaged_mnist_files_are_called_damaged(tmp_path: Path,
                                                run_cli: RunCli) -> None:
    code, _, err = run_cli(["train", "--dataset", "mnist", "--data-root", str(tmp_path),
                            "--no-store"])
    assert code == 2 and "not found" in one_line(err)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(os.urandom(4096))
    code, _, err = run_cli(["train", "--dataset", "mnist", "--data-root", str(tmp_path),
                            "--no-store"])
    assert code == 2 and "damaged" in one_line(err)


# ---- weights and checkpoints ----------------------------------------------------------------
def _state() -> dict[str, torch.Tensor]:
    from learndrop.core.models import get_model

    model = get_model("small_cnn", num_classes=10, in_channels=1, image_size=16)
    return model.state_dict()


@pytest.mark.parametrize("kind", ["meta", "sparse", "complex", "folder"])
def test_weights_that_cannot_be_weights(kind: str, tmp_path: Path,
                                        run_cli: RunCli) -> None:
    path = tmp_path / "w.pt"
    state = _state()
    name = next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 1)
    if kind == "meta":
        state[name] = torch.empty_like(state[name], device="meta")
    elif kind == "sparse":
        state[name] = state[name].to_sparse()
    elif kind == "complex":
        state[name] = state[name].to(torch.complex64)
    if kind == "folder":
        path.mkdir()
    else:
        torch.save(state, path)
    code, _, err = run_cli(["train", *TINY, "--no-store", "--model.weights", str(path),
                            "--output-dir", str(tmp_path / "out")])
    line = one_line(err)
    assert code == 2 and (kind in line or (kind == "folder" and "is a folder" in line)), line


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ck")
    assert main(["train", *TINY, "--no-store", "--output-dir", str(out), "--run-name",
                 "r"]) == 0
    return out / "r" / "checkpoint.pt"


@pytest.mark.parametrize("field,value", [
    ("epoch", "abc"), ("epoch", float("nan")), ("epoch", -3), ("learndrop", []),
    ("torch_rng", torch.zeros(7, dtype=torch.uint8)), ("torch_rng", "seed"), ("history", 5),
    ("best_accuracy", "x"), ("elapsed_s", float("inf")), ("optimizer", {"state": 1}),
    ("model", {"w": 3}), ("version", "two"),
])
def test_damaged_checkpoint_fields_are_refused(field: str, value: Any, checkpoint: Path,
                                               tmp_path: Path,
                                               run_cli: RunCli) -> None:
    data = load_checkpoint(checkpoint)
    data[field] = value
    bad = tmp_path / "checkpoint.pt"
    save_checkpoint(bad, {k: v for k, v in data.items() if k not in ("format",)})
    if field == "version":  # save_checkpoint writes its own version: put the bad one back
        raw = torch.load(bad, weights_only=True)
        raw["version"] = value
        torch.save(raw, bad)
    code, _, err = run_cli(["train", *TINY, "--epochs", "3", "--no-store", "--resume",
                            str(bad), "--output-dir", str(tmp_path / "out")])
    line = one_line(err)
    assert code == 2 and str(bad) in line and "damaged" in line, line


def test_resume_refuses_fewer_epochs_than_done(tmp_path: Path,
                                               run_cli: RunCli) -> None:
    store = tmp_path / "store.sqlite"
    assert run_cli(["train", *TINY, "--epochs", "3", "--store", str(store), "--output-dir",
                    str(tmp_path), "--run-name", "r"])[0] == 0
    code, _, err = run_cli(["resume", "r", "--epochs", "2", "--store", str(store)])
    assert code == 2 and "already trained 3 epochs" in one_line(err)
    code, out, _ = run_cli(["runs", "--json", "--store", str(store)])
    assert '"status": "finished"' in out and '"epochs": 3' in out


def test_cpu_out_of_memory_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                    run_cli: RunCli) -> None:
    from learndrop.core.training import Trainer

    def oom(self: Any) -> str:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:114] . DefaultCPUAllocator: not "
                           "enough memory: you tried to allocate 98765432100 bytes.")

    monkeypatch.setattr(Trainer, "_train", oom)
    code, _, err = run_cli(["train", *TINY, "--no-store", "--output-dir", str(tmp_path)])
    assert code == 2 and "out of memory" in one_line(err) and "--batch-size 16" in err
