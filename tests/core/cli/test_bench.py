"""``learndrop bench``: seeds, means and spreads, time to accuracy, efficiency above noise,
the Fashion-MNIST presets and their pretraining, the missing-data line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from factories import write_idx_set
from learndrop.core.cli import PRESETS, main, preset_config
from learndrop.core.cli._bench import pretrain_weights, run_bench
from learndrop.core.cli._bench_stats import aggregate, format_table, mean_sd, time_to_accuracy
from learndrop.core.data import idx
from learndrop.core.events import Callback
from learndrop.core.summary import EpochResult, RunSummary


def history(accs: list[float], epoch_time: float = 10.0) -> tuple[EpochResult, ...]:
    return tuple(EpochResult(epoch=e, val_accuracy=a, epoch_time_s=epoch_time,
                             elapsed_s=2.0 + epoch_time * (e + 1))
                 for e, a in enumerate(accs))


# ---- time to accuracy, means, spreads --------------------------------------------------------
def test_time_to_accuracy() -> None:
    h = history([0.5, 0.8, 0.79, 0.9])
    assert time_to_accuracy(h, 0.8) == 22.0  # the end of the second epoch
    assert time_to_accuracy(h, 0.95) is None
    old = tuple(EpochResult(epoch=e, val_accuracy=a, epoch_time_s=5.0)  # no elapsed_s
                for e, a in enumerate([0.5, 0.9]))
    assert time_to_accuracy(old, 0.85) == 10.0


def test_mean_sd() -> None:
    assert mean_sd([1.0, 3.0]) == (2.0, math.sqrt(2.0))
    assert mean_sd([4.0, None]) == (4.0, None) and mean_sd([]) == (None, None)


def _row(role: str, seed: int, wall: float, acc: float, accs: list[float],
         flops: float = 0.0, own: float | None = None) -> dict[str, Any]:
    return {"run": role, "seed": seed, "run_name": f"{role}-{seed}", "wall_time_s": wall,
            "train_time_s": wall - 2.0, "final_accuracy": acc, "best_accuracy": acc,
            "forward_flops_saved_total": flops, "train_flops_saved_total": flops,
            "epochs": len(accs), "dropped": 0, "score_overhead": 0.001, "data_time_share": 0.02,
            "load_per_cpu": 1.0, "meter_efficiency": own,
            "peak_memory_mb": 100.0, "peak_memory_kind": "rss",
            "history": history(accs, epoch_time=wall / len(accs))}


def test_aggregate_means_spreads_and_targets() -> None:
    rows = []
    for seed, jitter in ((0, 0.0), (1, 2.0), (2, -2.0)):
        rows.append(_row("baseline", seed, 100.0 + jitter, 0.90 + jitter / 1000,
                         [0.6, 0.8, 0.88, 0.90 + jitter / 1000]))
        rows.append(_row("learndrop", seed, 50.0 + jitter / 2, 0.899,
                         [0.6, 0.8, 0.89, 0.899], flops=0.55))
        rows.append(_row("time-matched", seed, 50.5, 0.87, [0.7, 0.87]))
        rows.append(_row("ld-budgeted", seed, 50.4, 0.884, [0.7, 0.8, 0.884], flops=0.5))
    figures = aggregate(rows, target=0.895)
    base, ld, timed, budgeted = figures["rows"]
    assert budgeted["run"] == "ld-budgeted"
    assert figures["budgeted_accuracy_delta"] == pytest.approx(0.014)
    assert "at the time-matched budget: Learn&Drop +1.40 points" in format_table(
        {"seeds": [0, 1, 2], "target_accuracy": 0.895, **figures})
    assert base["wall_time_s"] == pytest.approx(100.0) and base["wall_time_s_sd"] == 2.0
    assert ld["speedup"] == pytest.approx(2.0) and figures["speedup"] == pytest.approx(2.0)
    assert (figures["speedup_min"], figures["speedup_max"]) == (2.0, 2.0)
    assert figures["accuracy_delta"] == pytest.approx(-0.001)
    assert figures["time_matched_accuracy_delta"] == pytest.approx(0.029)
    # time to 89.5%: every baseline and Learn&Drop run reaches it, the time-matched never
    assert ld["target_reached"] == 3 and ld["time_to_target_s"] == pytest.approx(52.0)
    assert base["time_to_target_s"] == pytest.approx(102.0)
    assert timed["target_reached"] == 0 and timed["time_to_target_s"] is None
    # 50% of the training time saved for 55% of the FLOPs, well above the seeds' noise
    assert figures["efficiency"] == pytest.approx((1 - 48 / 98) / 0.55)
    assert figures["measured_train_time_saved_noise"] < 0.05
    assert figures["baseline_val_accuracy_by_epoch"][-1] == pytest.approx(0.90)
    text = format_table({"seeds": [0, 1, 2], "target_accuracy": 0.895, "caveats": ["x"],
                         **figures})
    assert "3 seeds" in text and "89.50%" in text and "never" in text
    assert "100.0 \u00b1 2.0" in text and "caution: x" in text


def test_efficiency_needs_a_saving_above_noise() -> None:
    rows = []
    for seed, wall_b, wall_l in ((0, 100.0, 60.0), (1, 60.0, 100.0)):
        rows.append(_row("baseline", seed, wall_b, 0.9, [0.9]))
        rows.append(_row("learndrop", seed, wall_l, 0.9, [0.9], flops=0.5))
    figures = aggregate(rows, target=0.89)
    assert figures["efficiency"] is None  # the seeds disagree: no efficiency
    assert figures["efficiency_source"] == "between runs"
    one = aggregate([_row("baseline", 0, 100.0, 0.9, [0.9]),
                     _row("learndrop", 0, 60.0, 0.9, [0.9], flops=0.5, own=None)], 0.89)
    assert one["efficiency"] is None  # one seed: the run's own meter decides
    # one seed whose baseline ran on a slower machine: the loop times between the runs
    # would say 3.2; the Learn&Drop run's own before/after step times say 0.9
    one_ok = aggregate([_row("baseline", 0, 160.0, 0.9, [0.9]),
                        _row("learndrop", 0, 60.0, 0.9, [0.9], flops=0.2, own=0.9)], 0.89)
    assert one_ok["efficiency"] == pytest.approx(0.9)
    assert one_ok["efficiency_source"] == "within the run"
    text = format_table({"seeds": [0], "target_accuracy": 0.89, **one_ok})
    assert "efficiency 0.90 (within the run)" in text


# ---- the bench end to end ----------------------------------------------------------------
TINY = ["--data.limit", "96", "--image-size", "16", "--epochs", "2", "--batch-size", "32",
        "--no-store", "--quiet"]


def test_bench_with_seeds_writes_per_seed_rows(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    code = main(["bench", "--preset", "quick-digits", "--seeds", "2", *TINY,
                 "--output-dir", str(tmp_path / "runs"), "--output", str(out), "--json"])
    assert code == 0
    result = json.loads(out.read_text())
    roles = ["baseline", "learndrop", "time-matched", "ld-budgeted"]
    assert result["seeds"] == [0, 1] and len(result["runs_by_seed"]) == 8
    assert result["complete"] is True and result["seeds_planned"] == [0, 1]
    assert [r["run"] for r in result["runs_by_seed"]] == roles * 2
    assert [r["seed"] for r in result["runs_by_seed"]] == [0] * 4 + [1] * 4
    assert result["config"]["data"]["seed"] == 0  # one data seed for every training seed
    assert [r["run"] for r in result["rows"]] == roles
    budgeted = [r for r in result["runs_by_seed"] if r["run"] == "ld-budgeted"]
    assert all(r["epochs"] >= 1 for r in budgeted)
    assert result["budgeted_accuracy_delta"] is not None
    base = [r for r in result["runs_by_seed"] if r["run"] == "baseline"]
    assert result["rows"][0]["wall_time_s"] == pytest.approx(
        sum(r["wall_time_s"] for r in base) / 2)
    mean_acc = sum(r["final_accuracy"] for r in base) / 2
    assert result["target_accuracy"] == pytest.approx(mean_acc - 0.005)
    assert all(0 <= r["data_time_share"] < 0.5 for r in result["runs_by_seed"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["seeds"] == [0, 1]


def _tiny_digits(tmp_path: Path) -> Any:
    cfg = preset_config("quick-digits")
    for key, value in (("data.limit", 96), ("data.image_size", 16), ("train.epochs", 2),
                       ("train.batch_size", 32), ("output.dir", str(tmp_path / "runs"))):
        cfg.set(key, value, source="test")
    return cfg


class _Interrupt(Callback):
    def on_epoch_end(self, event: Any) -> None:
        raise KeyboardInterrupt


def test_a_bench_cut_short_keeps_the_seeds_it_finished(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Stopped from the keyboard in the second seed: the file holds the first seed's
    comparison, and one line says where it is."""
    made: list[int] = []

    def callbacks() -> list[Callback]:
        made.append(1)
        return [_Interrupt()] if len(made) == 6 else []  # seed 1's Learn&Drop run

    out = tmp_path / "bench.json"
    with pytest.raises(KeyboardInterrupt):
        run_bench(_tiny_digits(tmp_path), preset="quick-digits", output=str(out), quiet=True,
                  callbacks_factory=callbacks, seeds=2)
    said = capsys.readouterr().err.strip().splitlines()
    assert said == [f"learndrop: the bench stopped in seed 1; the 1 of 2 seeds finished "
                    f"before it are in {out}"]
    result = json.loads(out.read_text())
    assert result["complete"] is False
    assert result["seeds"] == [0] and result["seeds_planned"] == [0, 1]
    assert [r["run"] for r in result["runs_by_seed"]] == [
        "baseline", "learndrop", "time-matched", "ld-budgeted"]
    assert [r["run"] for r in result["rows"]] == [r["run"] for r in result["runs_by_seed"]]


def test_a_bench_stopped_in_its_first_seed_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    with pytest.raises(KeyboardInterrupt):
        run_bench(_tiny_digits(tmp_path), preset="quick-digits", output=str(out), quiet=True,
                  callbacks_factory=lambda: [_Interrupt()])
    assert not out.exists() and capsys.readouterr().err == ""


@pytest.mark.parametrize("where", ["under_a_file", "a_folder", "a_device"])
def test_an_output_that_cannot_be_written_is_refused_before_any_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    """The results file's path is checked first: a bench is not trained for minutes and
    then lost because its --output cannot be written."""
    (tmp_path / "notes.txt").write_text("mine")
    out = {"under_a_file": tmp_path / "notes.txt" / "bench.json",
           "a_folder": tmp_path, "a_device": Path("/dev/null")}[where]
    runs = tmp_path / "runs"
    code = main(["bench", "--preset", "quick-digits", *TINY, "--output-dir", str(runs),
                 "--output", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("learndrop: error: --output") and str(out) in err
    assert not runs.exists()  # nothing trained
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_bench_flags(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, fragment in ((["--seeds", "0"], "below 1"), (["--seeds", "x"], "whole number"),
                           (["--target-accuracy", "90"], "share between 0 and 1")):
        with pytest.raises(SystemExit) as exit_info:
            main(["bench", "--preset", "quick-digits", *argv])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert fragment in err and len(err.strip().splitlines()) == 1


# ---- the Fashion-MNIST presets ----------------------------------------------------------------
def test_fmnist_presets_use_the_default_policy_and_real_data() -> None:
    for name in ("cpu-fmnist-finetune", "cpu-fmnist-scratch"):
        cfg = preset_config(name)
        assert cfg.data.dataset == "fashionmnist" and cfg.model.name == "resnet20"
        assert set(PRESETS[name]["drop"]) == {"mode"}  # no per-preset tuning of the policy
        assert cfg.optim.schedule == "cosine"
    assert preset_config("cpu-fmnist-finetune").data.classes == "5-9"
    assert PRESETS["cpu-fmnist-finetune"]["pretrain"]["data"] == {"classes": "0-4"}


@pytest.fixture
def small_fmnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Small generated Fashion-MNIST files where the system copy would be."""
    folder = tmp_path / "fashion-mnist"
    write_idx_set(folder, n_train=120, n_test=40, gz=True)
    monkeypatch.setitem(idx.SYSTEM_FOLDERS, "fashionmnist", (folder,))
    monkeypatch.setenv("LEARNDROP_HOME", str(tmp_path / "home"))
    return folder


def test_finetune_pretrains_on_the_other_classes_with_a_new_head(
        small_fmnist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = dict(PRESETS["cpu-fmnist-finetune"]["pretrain"], epochs=1)
    monkeypatch.setitem(PRESETS["cpu-fmnist-finetune"], "pretrain", spec)
    cfg = preset_config("cpu-fmnist-finetune")
    cfg.data.image_size = 16
    cfg.train.batch_size = 32
    cfg.output.dir = str(tmp_path / "runs")
    weights = pretrain_weights("cpu-fmnist-finetune", cfg, quiet=True)
    assert weights is not None and weights.endswith("backbone.pt")
    state = torch.load(weights, weights_only=True)["model"]
    assert state and not any(k.startswith("fc.") for k in state)  # the head starts fresh
    pre = json.loads((Path(weights).parent / "summary.json").read_text())
    pre_summary = RunSummary.from_dict(pre)
    assert pre_summary.mode == "baseline" and pre_summary.epochs == 1
    config = (Path(weights).parent / "config.toml").read_text()
    assert 'classes = "0-4"' in config


def test_missing_fashion_mnist_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(idx.SYSTEM_FOLDERS, "fashionmnist", (tmp_path / "none",))
    monkeypatch.setenv("LEARNDROP_HOME", str(tmp_path / "home"))
    assert main(["bench", "--preset", "cpu-fmnist-finetune", "--no-store", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "apt-get install dataset-fashion-mnist" in err
