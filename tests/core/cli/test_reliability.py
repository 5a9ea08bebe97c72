"""Bad input through the command line: one line saying what to fix, never a traceback, and
nothing lost. Also the security rules: config files that never run code, no network port
(checkpoints that are not ours: test_training_faults.py)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import pytest

from factories import RunCli, one_line, tiny_flags, write_images
from learndrop.core.cli import _main as cli_main
from learndrop.core.config import (
    RunConfig,
    field_choices,
    field_info,
    field_paths,
    field_type,
)

TINY = tiny_flags(**{"train.log_every": 1})


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
    if path == "train.time_budget":
        return True  # a number is taken as seconds
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
