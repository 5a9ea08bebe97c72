"""Files that are not a run's own are never deleted or replaced: ``rm`` by absolute path and
only the files a run wrote, ``train --resume`` never adopting a folder or a run, run folders
and runs claimed atomically, ``report -o`` never replacing a device, FIFO or link. Everything
here happens in temporary folders."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from learndrop.core.cli import main
from learndrop.core.runfolder import (
    MARKER,
    FolderInUseError,
    FolderLock,
    claim_run_folder,
    remove_run_files,
)
from learndrop.core.store import RunStore, StoreError

TINY = ["--dataset", "digits", "--model", "small_cnn", "--data.limit", "320", "--image-size",
        "16", "--batch-size", "32", "--epochs", "1"]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def train(store: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code, out, err = run_cli(["train", *TINY, "--quiet", "--store", str(store), *extra],
                             capsys)
    return code, err


# ---- rm ---------------------------------------------------------------------------------------
def test_rm_from_another_folder_never_touches_a_same_named_folder_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store.sqlite"
    proj_a, proj_b = tmp_path / "projA", tmp_path / "projB"
    proj_a.mkdir()
    (proj_b / "out" / "exp1").mkdir(parents=True)
    precious = proj_b / "out" / "exp1" / "results.csv"
    precious.write_text("a,b\n1,2\n")
    monkeypatch.chdir(proj_a)
    assert train(store, "--output-dir", "out", "--run-name", "exp1", capsys=capsys)[0] == 0
    with RunStore(store) as s:
        recorded = s.get_run("exp1").output_dir
    assert recorded == str(proj_a / "out" / "exp1")  # absolute, whatever the working folder
    monkeypatch.chdir(proj_b)
    code, out, _ = run_cli(["rm", "exp1", "--yes", "--store", str(store)], capsys)
    assert code == 0, out
    assert precious.read_text() == "a,b\n1,2\n"
    assert not (proj_a / "out" / "exp1").exists()  # the real run's folder is the one removed


def test_rm_keeps_files_the_run_did_not_write(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store.sqlite"
    assert train(store, "--output-dir", str(tmp_path), "--run-name", "r", capsys=capsys)[0] == 0
    folder = tmp_path / "r"
    assert (folder / "final.pt").is_file() and (folder / MARKER).is_file()
    (folder / "thesis.txt").write_text("three years of work")
    (folder / "notes").mkdir()
    code, out, _ = run_cli(["rm", "r", "--yes", "--store", str(store)], capsys)
    assert code == 0
    assert "kept" in out and "thesis.txt" in out
    assert (folder / "thesis.txt").read_text() == "three years of work"
    assert (folder / "notes").is_dir()
    assert not (folder / "final.pt").exists() and not (folder / "checkpoint.pt").exists()


def test_rm_of_a_row_with_a_relative_folder_touches_no_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Rows written by older versions may hold a path relative to an unknown folder."""
    store = tmp_path / "store.sqlite"
    assert train(store, "--output-dir", str(tmp_path), "--run-name", "old", capsys=capsys)[0] == 0
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE runs SET output_dir = 'old' WHERE name = 'old'")
    monkeypatch.chdir(tmp_path)  # a folder of that relative name exists here
    code, out, _ = run_cli(["rm", "old", "--yes", "--store", str(store)], capsys)
    assert code == 0 and "relative" in out
    assert (tmp_path / "old" / "final.pt").is_file()


def test_remove_run_files_never_follows_links(tmp_path: Path) -> None:
    folder = claim_run_folder(tmp_path / "runs", "x")
    outside = tmp_path / "outside.pt"
    outside.write_bytes(b"not ours")
    (folder / "final.pt").symlink_to(outside)
    assert remove_run_files(folder) == ["final.pt"]
    assert outside.read_bytes() == b"not ours"


# ---- resume never adopts a folder or a run ------------------------------------------------------
def test_train_resume_never_adopts_a_user_folder(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store.sqlite"
    assert train(store, "--output-dir", str(tmp_path / "runs"), "--run-name", "src",
                 "--epochs", "1", capsys=capsys)[0] == 0
    ck = tmp_path / "runs" / "src" / "checkpoint.pt"
    user = tmp_path / "D" / "important"
    user.mkdir(parents=True)
    (user / "thesis.txt").write_text("mine")
    code, err = train(store, "--resume", str(ck), "--epochs", "2", "--output-dir",
                      str(tmp_path / "D"), "--run-name", "important", capsys=capsys)
    assert code == 0, err
    assert sorted(p.name for p in user.iterdir()) == ["thesis.txt"]
    assert (tmp_path / "D" / "important-2" / "final.pt").is_file()
    with RunStore(store) as s:
        run = s.get_run("important")
    assert run.output_dir == str(tmp_path / "D" / "important-2")
    assert run_cli(["rm", run.name, "--yes", "--store", str(store)], capsys)[0] == 0
    assert (user / "thesis.txt").read_text() == "mine"


def test_train_resume_never_overwrites_another_run(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store.sqlite"
    runs = tmp_path / "runs"
    assert train(store, "--output-dir", str(runs), "--run-name", "src", capsys=capsys)[0] == 0
    assert train(store, "--output-dir", str(runs), "--run-name", "runA", "--seed", "7",
                 capsys=capsys)[0] == 0
    weights = (runs / "runA" / "final.pt").read_bytes()
    with RunStore(store) as s:
        before = s.load_events("runA")
    code, err = train(store, "--resume", str(runs / "src" / "checkpoint.pt"), "--epochs", "2",
                      "--output-dir", str(runs), "--run-name", "runA", capsys=capsys)
    assert code == 0, err
    assert (runs / "runA" / "final.pt").read_bytes() == weights
    with RunStore(store) as s:
        assert s.load_events("runA") == before
        names = sorted(r.name for r in s.list_runs())
        assert s.get_run("runA-2").output_dir == str(runs / "runA-2")
    assert names == ["runA", "runA-2", "src"]


# ---- claims are atomic ---------------------------------------------------------------------------
def test_run_folders_are_claimed_atomically(tmp_path: Path) -> None:
    got: list[Path] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        got.append(claim_run_folder(tmp_path / "out", "same"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 8
    assert sorted(p.name for p in got) == sorted(["same", *(f"same-{k}" for k in range(2, 9))])


def test_two_trainings_with_one_name_get_two_folders(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store.sqlite"
    codes: list[int] = []
    barrier = threading.Barrier(2)

    def one() -> None:
        from learndrop.core.config import RunConfig
        from learndrop.core.store import StoreRecorder
        from learndrop.core.training import Trainer

        cfg = RunConfig()
        for flag, value in zip(TINY[::2], TINY[1::2]):
            cfg.set({"--dataset": "data.dataset", "--model": "model.name",
                     "--data.limit": "data.limit", "--image-size": "data.image_size",
                     "--batch-size": "train.batch_size", "--epochs": "train.epochs"}[flag],
                    value)
        cfg.output.dir, cfg.output.name = str(tmp_path / "out"), "same"
        trainer = Trainer(cfg, [StoreRecorder(store)])
        trainer.prepare()
        barrier.wait()
        codes.append(0 if trainer.fit().status == "finished" else 1)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [0, 0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["same", "same-2"]
    with RunStore(store) as s:
        dirs = sorted(r.output_dir for r in s.list_runs())
    assert dirs == [str(tmp_path / "out" / "same"), str(tmp_path / "out" / "same-2")]


def test_a_locked_run_folder_is_refused(tmp_path: Path) -> None:
    folder = claim_run_folder(tmp_path, "r")
    with FolderLock(folder):
        with pytest.raises(FolderInUseError, match="in use by another training"):
            FolderLock(folder).acquire()
    with FolderLock(folder) as again:  # released: free again
        assert again.held


def test_two_resumes_of_one_run_never_train_together(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store.sqlite"
    assert train(store, "--output-dir", str(tmp_path), "--run-name", "r", "--epochs", "1",
                 capsys=capsys)[0] == 0
    with RunStore(store) as s:
        s.claim_run("r")  # as a first `learndrop resume r` of this process does
        with pytest.raises(StoreError, match="still running"):
            s.claim_run("r")
        s.release_run("r", "finished", "training finished")
        assert s.get_run("r").status == "finished"
    with FolderLock(tmp_path / "r"):  # another process trains in the folder
        code, _, err = run_cli(["resume", "r", "--epochs", "2", "--quiet", "--store",
                                str(store)], capsys)
    assert code == 1 and "in use by another training" in err
    with RunStore(store) as s:
        assert s.get_run("r").status == "finished"  # the refused resume changed nothing
    code, _, err = run_cli(["resume", "r", "--epochs", "2", "--quiet", "--store", str(store)],
                           capsys)
    assert code == 0, err


# ---- report -o ----------------------------------------------------------------------------------
@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    store = tmp_path / "store.sqlite"
    assert main(["train", *TINY, "--quiet", "--store", str(store), "--output-dir",
                 str(tmp_path / "runs"), "--run-name", "r"]) == 0
    return store


def test_report_never_replaces_a_fifo_or_a_device(recorded: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    targets = [fifo]
    device = tmp_path / "null-device"
    try:  # a character device node like the null device, made in the temporary folder
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        targets.append(device)
    except (PermissionError, OSError):
        pass
    for target in targets:
        for fmt in ("html", "json", "csv"):
            code, _, err = run_cli(["report", "r", "--format", fmt, "-o", str(target),
                                    "--store", str(recorded)], capsys)
            assert code != 0 and "not a regular file" in err, (target, fmt, err)
            mode = target.lstat().st_mode
            assert stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def test_report_writes_through_a_link(recorded: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    code, _, err = run_cli(["report", "r", "-o", str(link), "--store", str(recorded)], capsys)
    assert code == 0, err
    assert link.is_symlink() and real.read_text().startswith("{")


def test_report_to_standard_output(recorded: Path,
                                   capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    code = main(["report", "r", "--format", "json", "-o", "-", "--store", str(recorded)])
    out = capfdbinary.readouterr().out
    assert code == 0 and out.lstrip().startswith(b"{") and b"wrote" not in out


def test_a_report_refuses_to_compare_a_run_with_itself(recorded: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    out = tmp_path / "self.html"
    code, _, err = run_cli(["report", "r", "--compare", "r", "-o", str(out),
                            "--store", str(recorded)], capsys)
    assert code != 0 and "--compare 'r' is the report's own run 'r'" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
