"""``learndrop sweep``: every combination for every seed, one sweep in the store, the grouped
table against the baseline, stop and resume, sweep files, parallel runs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factories import RunCli
from learndrop.core.config import RunConfig
from learndrop.core.store import SWEEP_KIND, RunStore
from learndrop.core.sweep import SweepPlan, SweepRunner, sweep_rows
from learndrop.core.training import RunControl

TINY = ["--model", "small_cnn", "--dataset", "digits", "--epochs", "1", "--data.limit", "96",
        "--image-size", "16", "--batch-size", "32"]


def tiny(tmp_path: Path, store: Path, quiet: bool = True) -> list[str]:
    return [*TINY, *(["--quiet"] if quiet else []), "--output-dir", str(tmp_path / "runs"),
            "--store", str(store)]


def test_sweep_trains_every_combination_once_per_seed(run_cli: RunCli, tmp_path: Path,
                                                      store_path: Path) -> None:
    code, out, err = run_cli(["sweep", *tiny(tmp_path, store_path, False), "--threshold", "0.5,0.9",
                              "--seeds", "2", "--baseline", "--name", "th", "--json"])
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["sweep"] == "th" and result["runs"] == 6 and result["finished"] == 6
    rows = result["rows"]
    assert [(r["role"], r["values"]) for r in rows] == [
        ("baseline", {}), ("run", {"drop.threshold": 0.5}), ("run", {"drop.threshold": 0.9})]
    assert all(r["seeds"] == 2 and len(r["runs"]) == 2 for r in rows)
    with RunStore(store_path) as store:
        (group,) = store.list_groups(SWEEP_KIND)
        runs = store.group_runs(group.id)
    assert group.label == "th" and len(runs) == 6
    assert {r.group_id for r in runs} == {group.id}
    assert sorted((r.drop_enabled, r.config["drop"]["threshold"], r.config["train"]["seed"])
                  for r in runs) == [(False, 0.7, 0), (False, 0.7, 1), (True, 0.5, 0),
                                     (True, 0.5, 1), (True, 0.9, 0), (True, 0.9, 1)]
    assert {r.config["data"]["seed"] for r in runs} == {0}  # the same data for every seed
    by_name = {r.name: r for r in runs}
    base_wall = sum(by_name[n].wall_time_s for n in rows[0]["runs"]) / 2
    th = rows[1]
    assert th["wall_time_s"] == pytest.approx(
        sum(by_name[n].wall_time_s for n in th["runs"]) / 2)
    assert th["speedup"] == pytest.approx(base_wall / th["wall_time_s"])
    base_acc = sum(by_name[n].final_val_accuracy or 0 for n in rows[0]["runs"]) / 2
    assert th["accuracy_delta"] == pytest.approx(th["final_accuracy"] - base_acc)
    table = out.split("\n")
    assert any(line.startswith("(baseline)") and "2/2" in line for line in table)
    assert any(line.startswith("0.9 ") for line in table)
    assert "speed-up" in out
    assert "[6/6 done" in err and "baseline seed 1: finished" in err
    # its report: the grouped table, the trade-off scatter (a point per combination)
    report = tmp_path / "th.html"
    code, out, err = run_cli(["sweep-report", "th", "-o", str(report), "--store",
                              str(store_path)])
    assert code == 0, err
    page = report.read_text()
    assert "threshold=0.5" in page and "threshold=0.9" in page and "baseline" in page
    trade = page.split("Trade-off: time saved against accuracy", 1)[1].split("</svg>", 1)[0]
    assert trade.count("<circle") == 2
    code, _, err = run_cli(["sweep-report", "th", "-o", str(tmp_path / "x.txt"), "--store",
                            str(store_path)])
    assert code == 2 and "end it in .html or .pdf" in err


def test_a_stopped_sweep_resumes_keeping_its_finished_runs(run_cli: RunCli, tmp_path: Path,
                                                           store_path: Path) -> None:
    base = RunConfig.from_dict({"model": {"name": "small_cnn"},
                                "data": {"dataset": "digits", "limit": 96, "image_size": 16},
                                "train": {"epochs": 1, "batch_size": 32},
                                "output": {"dir": str(tmp_path / "runs")}})
    plan = SweepPlan(base, (("drop.patience", (1, 2, 3)),))
    runner = SweepRunner(plan, store_path, name="stop-me")
    control = RunControl()

    def stop_after_first(state: object) -> None:
        if getattr(state, "state", "") == "finished":
            control.stop()

    outcome = runner.run(control=control, on_change=stop_after_first)
    assert outcome.stopped and outcome.done == 1
    first = runner.finished_runs()
    assert len(first) == 1
    (kept,) = next(iter(first.values()))

    code, out, err = run_cli(["sweep", "--resume", "stop-me", "--store", str(store_path),
                              "--json", "--quiet"])
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["finished"] == 3
    with RunStore(store_path) as store:
        runs = store.group_runs(outcome.sweep_id)
    finished = [r for r in runs if r.status == "finished"]
    assert len(finished) == 3 and kept.id in {r.id for r in finished}  # not trained again
    assert sorted(r.config["drop"]["patience"] for r in finished) == [1, 2, 3]
    rows = sweep_rows(plan, runs)
    assert [r["seeds"] for r in rows] == [1, 1, 1]
    # resuming a complete sweep trains nothing and gives the same table
    code, out, err = run_cli(["sweep", "--resume", str(outcome.sweep_id), "--store",
                              str(store_path), "--json", "--quiet"])
    assert code == 0 and "3 already finished" not in err  # quiet
    with RunStore(store_path) as store:
        assert len(store.group_runs(outcome.sweep_id)) == len(runs)


def test_resume_refuses_settings_it_would_not_take(run_cli: RunCli, tmp_path: Path,
                                                  store_path: Path) -> None:
    """A resumed sweep trains with the settings it was started with: a setting given with
    --resume is refused in one line, not silently ignored, and nothing is trained."""
    base = RunConfig.from_dict({"model": {"name": "small_cnn"},
                                "data": {"dataset": "digits", "limit": 96, "image_size": 16},
                                "train": {"epochs": 1, "batch_size": 32},
                                "output": {"dir": str(tmp_path / "runs")}})
    SweepRunner(SweepPlan(base, (("drop.threshold", (0.5, 0.6)),)), store_path, name="kept")
    for extra in (["--epochs", "5"], ["--threshold", "0.8,0.9"], ["--seeds", "2"],
                  ["--baseline"], ["--name", "other"]):
        code, _, err = run_cli(["sweep", "--resume", "kept", "--store", str(store_path),
                                "--quiet", *extra])
        assert code == 2, (extra, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "--resume" in err and extra[0].lstrip("-") in err, err
    with RunStore(store_path) as store:
        (group,) = store.list_groups(SWEEP_KIND)
        assert store.group_runs(group.id) == []


def test_a_sweep_file_and_parallel_runs(run_cli: RunCli, tmp_path: Path,
                                        store_path: Path) -> None:
    file = tmp_path / "sweep.toml"
    file.write_text(
        '[sweep]\nseeds = 1\nname = "from-file"\n\n'
        '[vary]\n"optim.lr" = [0.05, 0.1]\n\n'
        '[model]\nname = "small_cnn"\n\n'
        '[data]\ndataset = "digits"\nlimit = 96\nimage_size = 16\n\n'
        '[train]\nepochs = 1\nbatch_size = 32\n', encoding="utf-8")
    code, out, err = run_cli(["sweep", "--sweep", str(file), "--parallel", "2",
                              "--output-dir", str(tmp_path / "runs"), "--store",
                              str(store_path), "--json"])
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["sweep"] == "from-file" and result["finished"] == 2
    assert [r["values"] for r in result["rows"]] == [{"optim.lr": 0.05}, {"optim.lr": 0.1}]
    assert "2 at a time" in err and "[2/2 done" in err
    with RunStore(store_path) as store:
        runs = store.group_runs(result["id"])
    assert sorted(r.config["optim"]["lr"] for r in runs) == [0.05, 0.1]


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--threshold", "0.5,abc"], "drop.threshold"),
    (["--threshold", "0.5,0.5"], "twice"),
    ([], "nothing to sweep"),
    (["--drop.enabled", "true,false", "--baseline"], "cannot vary in a sweep with a baseline"),
    (["--threshold", "0.5,0.7", "--train.seed", "1,2"], "--seeds"),
    (["--resume", "nope"], "no sweep 'nope'"),
    (["--threshold", "0.5,0.7", "--model", "no_such_model"], "no_such_model"),
])
def test_bad_sweeps_are_one_line(run_cli: RunCli, tmp_path: Path, store_path: Path,
                                 argv: list[str], fragment: str) -> None:
    code, out, err = run_cli(["sweep", *tiny(tmp_path, store_path)[:-2], "--store",
                              str(store_path), *argv])
    assert code == 2, err
    assert fragment in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_sweep_files_are_one_line(run_cli: RunCli, tmp_path: Path,
                                      store_path: Path) -> None:
    file = tmp_path / "bad.toml"
    for text, fragment in (('[vary]\n"drop.nonsense" = [1, 2]\n', "unknown setting"),
                           ('[vary]\nthreshold = 0.5\n', "must be a list"),
                           ('[vary]\nthreshold = []\n', "lists no value"),
                           ('[model]\nname = "small_cnn"\n', "needs a [vary] table"),
                           ("[vary\n", "not valid TOML")):
        file.write_text(text, encoding="utf-8")
        code, _, err = run_cli(["sweep", "--sweep", str(file), "--store", str(store_path)])
        assert code == 2 and fragment in err, err
    code, _, err = run_cli(["sweep", "--sweep", str(tmp_path / "none.toml")])
    assert code == 2 and "cannot read the sweep file" in err


@pytest.mark.parametrize(("entry", "fragment"), [
    ('seeds = "x"', "seeds must be a whole number"),
    ("seeds = 1.5", "seeds must be a whole number"),
    ("seeds = [1]", "seeds must be a whole number"),
    ("seeds = true", "seeds must be a whole number"),
    ('baseline = "no"', "baseline must be true or false"),
    ("baseline = 1", "baseline must be true or false"),
    ("name = 5", "name must be text"),
    ('name = ""', "name must be text"),
])
def test_bad_sweep_options_are_one_line(run_cli: RunCli, tmp_path: Path, store_path: Path,
                                        entry: str, fragment: str) -> None:
    """The [sweep] table's values are checked like settings: a wrong type is one line, never
    an internal error, and never read as something else (the text "no" as a baseline)."""
    file = tmp_path / "sweep.toml"
    file.write_text(f'[sweep]\n{entry}\n\n[vary]\n"drop.threshold" = [0.5, 0.6]\n',
                    encoding="utf-8")
    code, _, err = run_cli(["sweep", "--sweep", str(file), *tiny(tmp_path, store_path)])
    assert code == 2, err
    assert fragment in err and "[sweep]" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_sweep_names_are_unique_and_listed(run_cli: RunCli, tmp_path: Path,
                                           store_path: Path) -> None:
    plan = SweepPlan(RunConfig(), (("drop.threshold", (0.5, 0.6)),))
    SweepRunner(plan, store_path, name="one")
    code, _, err = run_cli(["sweep", *tiny(tmp_path, store_path), "--threshold", "0.5,0.6",
                            "--name", "one"])
    assert code == 2 and "already exists" in err and "--resume one" in err
    code, out, _ = run_cli(["sweeps", "--store", str(store_path)])
    assert code == 0 and "one" in out


def test_which_flags_vary_with_commas() -> None:
    from learndrop.core.sweep import varies

    assert varies("drop.threshold") and varies("drop.mode") and varies("train.epochs")
    # text and lists may hold commas themselves: they vary only in a sweep file
    assert not varies("data.classes") and not varies("drop.pinned")
