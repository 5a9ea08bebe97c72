"""TensorBoardCallback: what the event files hold, from the plain API and the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

from learndrop.core import LearnDrop  # noqa: E402
from learndrop.core.cli import main  # noqa: E402
from learndrop.integrations.tensorboard import TensorBoardCallback  # noqa: E402


def _read(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def _scalars(acc: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)]


def _texts(acc: EventAccumulator, tag: str) -> list[tuple[int, str]]:
    return [(e.step, e.tensor_proto.string_val[0].decode())
            for e in acc.Tensors(f"{tag}/text_summary")]


def _hparams(acc: EventAccumulator) -> dict[str, Any]:
    raw = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    data = plugin_data_pb2.HParamsPluginData.FromString(raw)
    out: dict[str, Any] = {}
    for key, value in data.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        out[key] = getattr(value, kind)
    return out


def test_plain_loop_writes_scores_drops_savings_and_metrics(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ld = LearnDrop(model, opt, warmup_epochs=0, checks_per_epoch=1)
    tb = TensorBoardCallback(tmp_path / "run", hparams={"threshold": 0.5, "note": None,
                                                         "units": ["0", "2"]}).attach(ld)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 4, (8,))
    for epoch in range(3):
        for _ in range(2):
            loss = nn.functional.cross_entropy(ld.model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            ld.step()
            tb.log_metrics({"loss/train": loss.item()}, step=ld.step_count)
        ld.end_epoch()
        if epoch == 1:
            ld.drop("conv1")
    tb.close()

    acc = _read(tmp_path / "run")
    assert [s for s, _ in _scalars(acc, "learndrop/score/conv1")] == [2, 4]  # dropped at step 4
    assert [s for s, _ in _scalars(acc, "learndrop/score/conv2")] == [2, 4, 6]
    assert _scalars(acc, "learndrop/units_dropped") == [(2, 0.0), (4, 0.0), (4, 1.0), (6, 1.0)]
    (step, text), = _texts(acc, "learndrop/drops")
    assert step == 4 and "**conv1** dropped at step 4" in text and "manual" in text
    saved = dict(_scalars(acc, "learndrop/train_flops_saved_now"))
    assert saved[2] == 0.0 and 0.0 < saved[6] < 1.0
    assert [s for s, _ in _scalars(acc, "loss/train")] == [1, 2, 3, 4, 5, 6]
    assert _hparams(acc) == {"threshold": 0.5, "note": "", "units": "0,2"}


TINY = ["--dataset", "digits", "--model", "small_cnn", "--epochs", "2", "--batch-size", "64",
        "--data.limit", "256", "--image-size", "8", "--threshold", "1.0", "--patience", "1",
        "--warmup-epochs", "0", "--drop.window", "2", "--drop.trend_tolerance", "10",
        "--drop.settle", "tolerance", "--drop.checks_per_epoch", "1",
        "--no-store", "--quiet"]


def test_command_line_writes_a_run_folder(tmp_path: Path) -> None:
    assert main(["train", *TINY, "--output-dir", str(tmp_path / "runs"), "--run-name", "tiny",
                 "--tensorboard", str(tmp_path / "tb")]) == 0
    acc = _read(tmp_path / "tb" / "tiny")
    assert len(_scalars(acc, "accuracy/val")) == 2
    assert len(_scalars(acc, "loss/train")) == 2
    assert len(_scalars(acc, "learndrop/train_flops_saved_total")) == 2
    assert _scalars(acc, "learndrop/score/block1")[0][1] == 1.0
    hp = _hparams(acc)
    assert hp["drop.threshold"] == 1.0 and hp["model.name"] == "small_cnn"
    assert hp["drop.units"] == ""
    (_, units), = _texts(acc, "learndrop/units")
    assert "| block1 |" in units
    (_, summary), = _texts(acc, "learndrop/summary")
    assert summary.startswith("**finished**")


def test_command_line_without_tensorboard_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name in list(sys.modules):
        if name.startswith(("tensorboard", "torch.utils.tensorboard",
                            "learndrop.integrations.tensorboard")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard fails
    code = main(["train", *TINY, "--output-dir", str(tmp_path), "--tensorboard",
                 str(tmp_path / "tb")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "TensorBoard logging cannot be loaded" in err and "pip install tensorboard" in err
    assert not (tmp_path / "tb").exists() and not any(tmp_path.iterdir())


# ---- a folder that cannot be written, a disk that fills -------------------------------------
@pytest.mark.parametrize("target", ["a file", "the null device", "below a file",
                                    "a read-only file system", "a file, --nproc 2"])
def test_a_folder_that_cannot_be_written_is_refused_before_training(
        target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from factories import one_line, small_tmpfs
    from learndrop.core.cli import _launch

    launched: list[int] = []
    monkeypatch.setattr(_launch, "launch", lambda argv, nproc: launched.append(nproc) or 0)
    (tmp_path / "file").write_text("mine\n")
    folder = {"a file": tmp_path / "file", "the null device": Path("/dev/null"),
              "below a file": tmp_path / "file" / "tb", "a file, --nproc 2": tmp_path / "file",
              "a read-only file system": tmp_path / "ro" / "tb"}[target]
    nproc = ["--nproc", "2"] if "nproc" in target else []

    def run() -> int:
        return main(["train", *TINY, *nproc, "--output-dir", str(tmp_path / "runs"),
                     "--tensorboard", str(folder)])

    if "read-only" in target:
        with small_tmpfs(tmp_path / "ro", "1m", "ro"):
            code = run()
    else:
        code = run()
    line = one_line(capsys.readouterr().err)
    assert code == 2 and "--tensorboard" in line and str(folder) in line
    assert not launched and not (tmp_path / "runs").exists()  # refused before training
    assert (tmp_path / "file").read_text() == "mine\n"


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_disk_that_fills_during_the_run_is_one_line_and_the_run_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    from tensorboard.summary.writer import record_writer

    from factories import store_status

    write = record_writer.RecordWriter.write
    records: list[int] = []

    def fills(self: Any, data: bytes) -> None:  # the disk is full from the 20th record on
        records.append(len(data))
        if len(records) >= 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, data)

    monkeypatch.setattr(record_writer.RecordWriter, "write", fills)
    store = tmp_path / "store.sqlite"
    argv = [a for a in TINY if a not in ("--quiet", "--no-store")]
    code = main(["train", *argv, "--epochs", "3", "--output-dir", str(tmp_path / "runs"),
                 "--run-name", "r", "--store", str(store), "--tensorboard",
                 str(tmp_path / "tb")])
    out, err = capsys.readouterr()
    assert code == 0 and len(records) >= 20
    assert "Traceback" not in err and "failed" not in err, err
    said = [ln for ln in err.splitlines() if "TensorBoard" in ln]
    assert len(said) == 1 and "the disk is full" in said[0], err
    assert "TensorBoard output incomplete" in out and "the disk is full" in out
    assert store_status(store) == [("r", "finished")]
