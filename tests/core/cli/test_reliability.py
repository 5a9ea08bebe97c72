"""Bad input through the command line: one line saying what to fix, never a traceback, and
nothing lost. Also the security rules: safe checkpoint loading, config files that never run
code, no network port."""

from __future__ import annotations

import errno
import json
import os
import pickle
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from factories import RunCli, one_line, tiny_flags, write_images
from learndrop.core.cli import _main as cli_main
from learndrop.core.config import (
    RunConfig,
    field_choices,
    field_info,
    field_paths,
    field_type,
)
from learndrop.core.training import available_devices, load_checkpoint

TINY = tiny_flags(**{"train.log_every": 1})


def store_status(store: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(store) as conn:
        return conn.execute("SELECT name, status FROM runs ORDER BY id").fetchall()


# ---- every config field: a wrong type and an out-of-range value --------------------------------
def _flag_cases() -> list[Any]:
    cases = []
    for path in field_paths():
        hint = field_type(path)
        meta = field_info(path).metadata
        lo, hi = meta.get("min"), meta.get("max")
        if field_choices(path):
            cases.append(pytest.param(path, "no-such-choice", id=f"{path}-choice"))
        elif hint is bool:
            cases.append(pytest.param(path, "maybe", id=f"{path}-type"))
        elif hint is int:
            cases.append(pytest.param(path, "abc", id=f"{path}-type"))
            cases.append(pytest.param(path, "2.5", id=f"{path}-fraction"))
        elif hint is float:
            cases.append(pytest.param(path, "abc", id=f"{path}-type"))
            cases.append(pytest.param(path, "inf", id=f"{path}-inf"))
        if lo is not None:
            below = lo - 1 if hint is int else (lo - 0.5 if lo <= 0 else lo / 2)
            cases.append(pytest.param(path, str(below), id=f"{path}-low"))
        if hi is not None:
            cases.append(pytest.param(path, str(hi + 1 if hint is int else hi * 2 + 1),
                                      id=f"{path}-high"))
    return cases


FLAG_CASES = _flag_cases()


@pytest.mark.parametrize("path,value", FLAG_CASES)
def test_every_field_flag_rejects_bad_values(path: str, value: str,
                                             run_cli: RunCli) -> None:
    # --print-config: if the value were accepted the command would print and exit 0 at once
    code, out, err = run_cli(["train", f"--{path}", value, "--no-store", "--print-config"])
    assert code == 2, (out, err)
    assert f"{path} must be " in one_line(err)  # not "unrecognized arguments: --{path}"


def _wrong_type(path: str) -> Any:
    hint = field_type(path)
    if field_choices(path):
        return 7
    if hint is bool:
        return "maybe"
    if hint in (int, float):
        return "many"
    if hint is str:
        return 3
    return {"not": "a list"}


def test_every_field_in_a_config_file_rejects_a_wrong_type(
        tmp_path: Path, run_cli: RunCli) -> None:
    """In a file a value can have any type: text for numbers, numbers for text, ...

    The same file with the field's default value is accepted, so it is the value's type that
    is refused, and the one line names the file and the field."""
    f = tmp_path / "run.json"
    argv = ["train", "--config", str(f), "--no-store", "--print-config"]
    for path in field_paths():
        section, name = path.split(".")
        f.write_text(json.dumps({section: {name: RunConfig().get(path)}}))
        code, _, err = run_cli(argv)
        assert code == 0, (path, err)
        f.write_text(json.dumps({section: {name: _wrong_type(path)}}))
        code, _, err = run_cli(argv)
        assert code == 2, path
        assert f"run.json: {path} must be " in one_line(err)


# ---- names, files, folders ------------------------------------------------------------------
@pytest.mark.parametrize("argv,fragment", [
    (["--model", "resnet9000"], "unknown model 'resnet9000'"),
    (["--dataset", "imagenet21k"], "unknown data set 'imagenet21k'"),
    (["--model", "vgg11", "--image-size", "16"], "vgg11 needs images of at least 32x32"),
    (["--drop.units", "nope"], "nope"),
    (["--drop.pinned", "nope"], "no unit named 'nope'"),
    (["--run-name", "a/b"], "output.name 'a/b'"),
    (["--run-name", ".."], "output.name '..'"),
])
def test_names_that_do_not_exist(argv: list[str], fragment: str, tmp_path: Path,
                                 run_cli: RunCli) -> None:
    code, _, err = run_cli(["train", *TINY, *argv, "--no-store", "--output-dir",
                            str(tmp_path)])
    assert code == 2
    assert fragment in one_line(err)
    assert not list(tmp_path.rglob("*.pt"))


@pytest.mark.parametrize("name,content,fragment", [
    ("run.toml", "[train]\nepochs = 3\nbogus = 1\n", "unknown setting 'train.bogus'"),
    ("run.json", '{"training": {"epochs": 3}}', "unknown section 'training'"),
    ("run.yaml", "train:\n  epochs: 3\n", "is not valid TOML or JSON"),
    ("run.ini", "[train]\nepochs: three\n", "is not valid TOML or JSON"),
    ("run.toml", "\x00\x01\x02 binary", "is not valid TOML"),
    ("run.cfg", b"\xff\xfe\x00garbage", "cannot read config file"),
    ("run.json", "[1, 2, 3]", "expected a table of sections, got a list"),
    ("run.toml", "train = 3\n", "section 'train' must be a table"),
])
def test_config_files_that_are_not_configs(name: str, content: str | bytes, fragment: str,
                                           tmp_path: Path, run_cli: RunCli) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    code, _, err = run_cli(["train", "--config", str(path), "--no-store"])
    assert code == 2
    line = one_line(err)
    assert name in line and fragment in line, line


def _images(root: Path, classes: tuple[str, ...] = ("cats", "dogs"), n: int = 10) -> None:
    for c in classes:
        write_images(root / c, n)


def _folder_train(root: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["train", "--dataset", "imagefolder", "--data-root", str(root), "--model",
            "small_cnn", "--image-size", "12", "--batch-size", "8", "--epochs", "1",
            "--no-store", "--output-dir", str(tmp_path / "out"), *extra]


def test_data_folder_missing_or_empty(tmp_path: Path,
                                      run_cli: RunCli) -> None:
    cases = {"missing": (tmp_path / "nope", "does not exist")}
    (tmp_path / "empty").mkdir()
    cases["empty"] = (tmp_path / "empty", "no class sub-folders")
    (tmp_path / "noimg" / "a").mkdir(parents=True)
    (tmp_path / "noimg" / "b").mkdir(parents=True)
    (tmp_path / "noimg" / "a" / "readme.txt").write_text("no images here")
    cases["no images"] = (tmp_path / "noimg", "holds no readable images")
    _images(tmp_path / "one", classes=("only",))
    cases["one class"] = (tmp_path / "one", "only one class folder")
    (tmp_path / "afile").write_text("x")
    cases["a file"] = (tmp_path / "afile", "is a file")
    for what, (root, fragment) in cases.items():
        code, _, err = run_cli(_folder_train(root, tmp_path))
        assert code == 2, what
        assert fragment in one_line(err), what


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_data_folder(tmp_path: Path, run_cli: RunCli) -> None:
    root = tmp_path / "data"
    _images(root)
    os.chmod(root, 0)
    try:
        code, _, err = run_cli(_folder_train(root, tmp_path))
    finally:
        os.chmod(root, 0o755)
    assert code == 2
    assert str(root) in one_line(err)


def test_unreadable_data_folder_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          run_cli: RunCli) -> None:
    """What chmod 000 does to anyone but root, simulated so that it runs as root too."""
    root = tmp_path / "data"
    _images(root)
    listdir = Path.iterdir

    def iterdir(self: Path) -> Any:
        if self == root:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return listdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    code, _, err = run_cli(_folder_train(root, tmp_path))
    assert code == 2
    line = one_line(err)
    assert str(root) in line and "Permission denied" in line


def test_unreadable_image_file_simulated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         run_cli: RunCli) -> None:
    from PIL import Image

    root = tmp_path / "data"
    _images(root)
    secret = root / "cats" / "img3.png"
    open_image = Image.open

    def guarded(fp: Any, *a: Any, **k: Any) -> Any:
        if Path(str(fp)) == secret:
            raise PermissionError(errno.EACCES, "Permission denied", str(fp))
        return open_image(fp, *a, **k)

    monkeypatch.setattr(Image, "open", guarded)
    code, _, err = run_cli(_folder_train(root, tmp_path, "--data.bad_files", "stop"))
    assert code == 2 and str(secret) in one_line(err)
    code, _, err = run_cli(_folder_train(root, tmp_path, "--data.bad_files", "skip"))
    assert code == 0 and "skipped 1 unreadable image file(s)" in err


def _bad_files(root: Path) -> None:
    _images(root)
    good = (root / "cats" / "img0.png").read_bytes()
    (root / "cats" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "dogs" / "notes.jpg").write_text("this is not an image")
    (root / "dogs" / "empty.png").write_bytes(b"")


def test_bad_image_files_skip_with_a_count(tmp_path: Path,
                                           run_cli: RunCli) -> None:
    root = tmp_path / "data"
    _bad_files(root)
    code, out, err = run_cli(_folder_train(root, tmp_path, "--data.bad_files", "skip"))
    assert code == 0, err
    assert "skipped 3 unreadable image file(s)" in err
    assert "Traceback" not in err and "finished" in out


def test_bad_image_files_stop(tmp_path: Path, run_cli: RunCli) -> None:
    root = tmp_path / "data"
    _bad_files(root)
    code, _, err = run_cli(_folder_train(root, tmp_path, "--data.bad_files", "stop"))
    assert code == 2
    line = one_line(err)
    assert "cannot read image" in line and "data.bad_files" in line


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


def test_checkpoint_of_another_model(tmp_path: Path, run_cli: RunCli) -> None:
    code, out, err = run_cli(["train", *TINY, "--epochs", "1", "--no-store", "--output-dir",
                              str(tmp_path / "a"), "--json", "--quiet"])
    assert code == 0, err
    ck = json.loads(out.strip().splitlines()[-1])["checkpoint"]
    code, _, err = run_cli(["train", *TINY, "--model", "resnet20", "--resume", ck,
                            "--no-store", "--output-dir", str(tmp_path / "b")])
    assert code == 2
    assert "other model settings" in one_line(err)


# ---- config files never run code ------------------------------------------------------------
def test_config_files_never_evaluate_code(tmp_path: Path, run_cli: RunCli,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a run name holds no slash: the shell payload is relative
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    toml = tmp_path / "evil.toml"
    toml.write_text(f'[data]\nroot = "{payload}"\n[output]\ndir = "{payload}"\n'
                    f'[model]\nname = "{payload}"\n')
    js = tmp_path / "evil.json"
    js.write_text(json.dumps({"drop": {"pinned": [payload], "units": [payload]},
                              "output": {"name": "${touch " + marker.name + "}"}}))
    code, _, err = run_cli(["train", "--config", str(toml), "--no-store", "--print-config"])
    assert code == 2 and f"unknown model '{payload}'" in one_line(err)  # a name, not code
    code, out, err = run_cli(["train", "--config", str(js), "--no-store", "--print-config"])
    assert code == 0 and payload in out, err  # kept as plain text
    assert not marker.exists()


# ---- no network -------------------------------------------------------------------------------
def _own_socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    return inodes


def _bound_sockets(inodes: set[str]) -> list[str]:
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            state, inode = cols[3], cols[9]
            if inode in inodes and (table.startswith("udp") or state == "0A"):
                found.append(f"{table} {cols[1]} state {state}")
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_nothing_listens_on_a_network_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           run_cli: RunCli) -> None:
    from learndrop.core.events import Callback

    seen: list[list[str]] = []

    class Probe(Callback):
        def on_epoch_end(self, ev: Any) -> None:  # while the run and the store are open
            seen.append(_bound_sockets(_own_socket_inodes()))

    monkeypatch.setattr(cli_main, "Console", lambda quiet: Probe())
    code, _, err = run_cli(["train", *TINY, "--epochs", "2", "--store",
                            str(tmp_path / "s.sqlite"), "--output-dir", str(tmp_path / "o")])
    assert code == 0, err
    assert len(seen) == 2 and seen == [[], []], seen
    assert _bound_sockets(_own_socket_inodes()) == []
