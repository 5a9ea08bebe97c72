"""The command line: bad input is one line and exit 2; runs print their summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from factories import RunCli, one_line, tiny_flags
from learndrop.core.cli import main
from learndrop.core.config import load_config

TINY = [*tiny_flags(**{"data.limit": 256, "drop.warmup_epochs": 0}), "--no-store", "--quiet"]


@pytest.mark.parametrize("argv,fragment", [
    (["train", "--epochs", "0"], "train.epochs must be at least 1"),
    (["train", "--epochs", "two"], "must be an integer"),
    (["train", "--lr", "nan"], "finite"),
    (["train", "--model", "vgg99"], "unknown model 'vgg99'"),
    (["train", "--dataset", "imagenet22k"], "unknown data set"),
    (["train", "--mode", "drop-everything"], "must be one of auto, freeze, cache, skip"),
    (["train", "--device", "tpu"], "must be one of auto, cuda, mps, cpu"),
    (["train", "--no-such-flag"], "unrecognized arguments: --no-such-flag (see learndrop train "
                                  "--help)"),
    (["runs", "--bogus"], "(see learndrop runs --help)"),
    (["train", "--config", "/no/such/file.toml"], "does not exist"),
    (["train", "--dataset", "imagefolder"], "needs data.root"),
    (["train", "--dataset", "imagefolder", "--data-root", "/no/such/folder", "--no-store"],
     "/no/such/folder"),
    (["train", "--mode", "cache", "--augment", "true"], "augmentation"),
    (["train", "--resume", "/no/such/checkpoint.pt", "--no-store"], "does not exist"),
    (["bench", "--preset", "nope"], "unknown bench preset"),
    (["nonsense"], "invalid choice"),
    (["runs", "-n", "0"], "0 is below 1"),
    (["runs", "--limit", "-1"], "-1 is below 1"),
    (["runs", "-n", "x"], "'x' is not a whole number"),
])
def test_bad_input_exits_2_with_one_line(argv: list[str], fragment: str,
                                         run_cli: RunCli) -> None:
    code, _, err = run_cli(argv)
    assert code == 2
    assert fragment in one_line(err)


@pytest.mark.parametrize("command", ["train", "resume", "bench", "models", "datasets", "runs",
                                     "show", "compare", "report", "rm"])
def test_help_of_every_command(command: str, run_cli: RunCli) -> None:
    code, out, err = run_cli([command, "--help"])
    assert code == 0 and err == "", err
    assert out.startswith(f"usage: learndrop {command} ")


def test_bad_config_files(tmp_path: Path, run_cli: RunCli) -> None:
    cases = {  # file: (its text, what the one line says)
        "a.toml": ("[train\nepochs = 3", "a.toml is not valid TOML"),
        "b.json": ("{not json", "b.json is not valid JSON"),
        "c.toml": ("[train]\nepochz = 3\n", "c.toml: unknown setting 'train.epochz'"),
        "d.toml": ("[training]\nepochs = 3\n", "d.toml: unknown section 'training'"),
        "e.toml": ("[train]\nepochs = 'many'\n", "e.toml: train.epochs must be an integer"),
        # a value out of its range is checked after the flags are applied: no file name
        "f.toml": ("[drop]\nthreshold = 7\n", "drop.threshold must be at most 1.0, got 7.0"),
    }
    for name, (text, fragment) in cases.items():
        (tmp_path / name).write_text(text)
        code, _, err = run_cli(["train", "--config", str(tmp_path / name), "--no-store"])
        assert code == 2, name
        assert fragment in one_line(err), name


def test_print_config_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--model", "resnet20", "--epochs", "7", "--mode", "skip",
                 "--drop.ema", "0.5", "--print-config"]) == 0
    text = capsys.readouterr().out
    path = tmp_path / "run.toml"
    path.write_text(text)
    cfg = load_config(path)
    assert (cfg.model.name, cfg.train.epochs, cfg.drop.mode, cfg.drop.ema) == (
        "resnet20", 7, "skip", 0.5)
    assert main(["train", "--config", str(path), "--epochs", "3", "--print-config"]) == 0
    assert "epochs = 3" in capsys.readouterr().out


def test_train_json_summary_is_the_last_line(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", *TINY, "--output-dir", str(tmp_path), "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    for key in ("final_accuracy", "wall_time_s", "dropped", "savings"):
        assert key in summary
    assert "forward_flops_saved_total" in summary["savings"]
    assert summary["dropped"] and 0 < summary["savings"]["train_flops_saved_total"] < 1


@pytest.mark.slow
def test_lists() -> None:
    out = subprocess.run([sys.executable, "-m", "learndrop.core.cli", "models"],
                         capture_output=True, text=True, check=True).stdout
    assert "resnet20" in out and "vgg16" in out
    out = subprocess.run([sys.executable, "-m", "learndrop.core.cli", "datasets"],
                         capture_output=True, text=True, check=True).stdout
    assert "digits" in out and "imagenette" in out


@pytest.mark.slow
def test_no_traceback_from_a_real_process(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "learndrop.core.cli", "train", "--dataset",
                           "imagefolder", "--data-root", str(tmp_path / "missing"),
                           "--no-store"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert f"{tmp_path / 'missing'} does not exist" in one_line(proc.stderr)
