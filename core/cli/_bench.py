"""``learndrop bench``: one configuration trained four ways, side by side, for each seed.

1. the full network for the same epochs (baseline),
2. Learn&Drop,
3. the full network given Learn&Drop's wall-clock time, its learning-rate schedule fitted to
   that budget (layer-dropping gains can vanish against such a baseline, so it is reported),
4. Learn&Drop given the same budget (``ld-budgeted``): its schedule fitted to the time, and
   up to :data:`BUDGET_EPOCHS` times the epochs, so the time its drops save goes to more
   epochs of the units still training. Runs 3 and 4 are the equal-time comparison.

With ``--seeds N`` every run is repeated with N training seeds on the same data (the data
seed stays fixed); the table gives means and standard deviations, the JSON file keeps each
seed's rows. Time to accuracy is the wall time a run needs to first reach a target
validation accuracy (default: the baseline's final mean minus half a point). Efficiency is
the training-loop time Learn&Drop saved over the baseline divided by the training FLOPs it
saved (1.0: every FLOP not spent became time not spent), given only when the time saved
exceeds its noise.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig
from ..errors import ConfigError, LearnDropError
from ..files import WriteError, atomic_write_text, writable_target
from ..monitor import compare_speed
from ..summary import RunSummary
from ._bench_stats import TARGET_MARGIN, aggregate, format_table
from ._console import Console
from ._running import check_writable_folder

__all__ = ["PRESETS", "BUDGET_EPOCHS", "preset_config", "run_bench", "format_table"]

#: the budgeted Learn&Drop run may train this many times the configured epochs
BUDGET_EPOCHS = 3

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Real data (Debian's dataset-fashion-mnist), fine-tuning as practitioners do it:
    # ResNet-20 first trained (untimed) on the five classes 0-4, then fine-tuned with a new
    # head on the other five (12,000 of their 30,000 training images, all 5,000 test images).
    "cpu-fmnist-finetune": {
        "data": {"dataset": "fashionmnist", "classes": "5-9", "limit": 12000},
        "model": {"name": "resnet20"},
        "optim": {"optimizer": "sgd", "lr": 0.02, "schedule": "cosine"},
        "train": {"epochs": 10, "batch_size": 64, "device": "auto"},
        "drop": {"mode": "cache"},
        "pretrain": {"epochs": 5, "lr": 0.1, "data": {"classes": "0-4"}, "new_head": True},
    },
    # Real data from scratch: ResNet-20 on 12,000 Fashion-MNIST training images, all ten
    # classes, validated on the 10,000 test images.
    "cpu-fmnist-scratch": {
        "data": {"dataset": "fashionmnist", "limit": 12000},
        "model": {"name": "resnet20"},
        "optim": {"optimizer": "sgd", "lr": 0.1, "schedule": "cosine"},
        "train": {"epochs": 10, "batch_size": 64, "device": "auto"},
        "drop": {"mode": "cache"},
    },
    # CIFAR-style ResNet-20 from scratch on generated 16x16 data (188 steps an epoch):
    # a few minutes on 2 CPU cores.
    "cpu-resnet20": {
        "data": {"dataset": "synthetic", "synthetic_samples": 15000, "synthetic_size": 16},
        "model": {"name": "resnet20"},
        "optim": {"optimizer": "sgd", "lr": 0.1, "schedule": "cosine"},
        "train": {"epochs": 12, "batch_size": 64, "device": "auto"},
        "drop": {"mode": "cache"},
    },
    # Fine-tuning on generated data: ResNet-20 first trained (untimed) on another generated
    # task (other classes, data seed + 1), then fine-tuned on this one.
    "cpu-resnet20-finetune": {
        "data": {"dataset": "synthetic", "synthetic_samples": 15000, "synthetic_size": 16},
        "model": {"name": "resnet20"},
        "optim": {"optimizer": "sgd", "lr": 0.02, "schedule": "cosine"},
        "train": {"epochs": 10, "batch_size": 64, "device": "auto"},
        "drop": {"mode": "cache"},
        "pretrain": {"epochs": 6, "lr": 0.1},
    },
    # ResNet-18 (small-input stem) on generated 32x32 data, sized for a GPU.
    "gpu-resnet18": {
        "data": {"dataset": "synthetic", "synthetic_samples": 50000, "synthetic_size": 32},
        "model": {"name": "resnet18"},
        "optim": {"optimizer": "sgd", "lr": 0.1, "schedule": "cosine"},
        "train": {"epochs": 15, "batch_size": 256, "device": "auto"},
        "drop": {"mode": "cache"},
    },
    # seconds, for a smoke check
    "quick-digits": {
        "data": {"dataset": "digits"},
        "model": {"name": "small_cnn"},
        "train": {"epochs": 4, "batch_size": 64},
    },
}


def preset_config(name: str) -> RunConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown bench preset '{name}' (presets: {', '.join(PRESETS)})")
    spec = {k: v for k, v in PRESETS[name].items() if k != "pretrain"}
    return RunConfig.from_dict(spec, source=f"preset {name}")


def pretrain_weights(name: str | None, cfg: RunConfig, quiet: bool) -> str | None:
    """For fine-tuning presets: train the starting weights on another task (untimed).

    The preset's ``pretrain`` section gives the epochs, the learning rate and the data
    settings of that task (default: generated data of another data seed); with
    ``new_head`` the head's weights are left out, so fine-tuning starts with a fresh head.
    """
    spec = PRESETS.get(name or "", {}).get("pretrain")
    if not spec or cfg.model.weights:
        return None
    from ..training import Trainer, save_checkpoint

    pre = cfg.copy()
    pre.drop.enabled = False
    pre.train.seed = cfg.train.seed + 1
    pre.train.epochs = int(spec["epochs"])
    pre.optim.lr = float(spec["lr"])
    if spec.get("data"):
        for key, value in spec["data"].items():
            pre.set(f"data.{key}", value, source=f"preset {name}")
    else:  # another generated task
        pre.data.seed = (cfg.data.seed if cfg.data.seed >= 0 else cfg.train.seed) + 1
    pre.output.name = f"bench-pretrain-{name}-seed{pre.train.seed}"
    if not quiet:
        print(f"== pretraining the starting weights on another task ({pre.train.epochs} "
              f"epochs, untimed)", file=sys.stderr, flush=True)
    trainer = Trainer(pre.check())
    result = trainer.fit()
    if not spec.get("new_head") or trainer.ld is None or trainer.model is None:
        return result.summary.weights
    head = trainer.ld.units[-1].module_names
    state = {k: v for k, v in trainer.model.state_dict().items()
             if not any(k == m or k.startswith(m + ".") for m in head)}
    path = Path(result.summary.output_dir) / "backbone.pt"
    save_checkpoint(path, {"model": state, "epoch": -1})
    return str(path)


class _PeakMemory:
    """Peak resident memory of this process during a run (sampled), or CUDA peak allocated."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda") and torch.cuda.is_available()
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    def __enter__(self) -> _PeakMemory:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True,
                                            name="learndrop-bench-memory")
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            self.peak = int(torch.cuda.max_memory_allocated())
        else:
            self._stop.set()
            if self._thread:
                self._thread.join()


def _row(label: str, seed: int, summary: RunSummary, peak: int, kind: str) -> dict[str, Any]:
    """One run's line (``history`` and ``summary`` are dropped before it is written); its
    savings keep the savings record's names."""
    v = summary.savings
    return {"run": label, "seed": seed, "run_name": summary.run_name,
            "wall_time_s": summary.wall_time_s, "train_time_s": summary.train_time_s,
            "final_accuracy": summary.final_accuracy, "best_accuracy": summary.best_accuracy,
            "forward_flops_saved_total": v.forward_flops_saved_total,
            "train_flops_saved_total": v.train_flops_saved_total,
            "epochs": summary.epochs, "dropped": len(summary.dropped),
            "score_overhead": summary.score_overhead,
            "data_time_share": summary.data_time_share,
            "load_per_cpu": summary.load_per_cpu,
            "step_time_spread_now": v.step_time_spread_now,
            "time_saved_s_total": v.time_saved_s_total,
            "time_saved_low_s_total": v.time_saved_low_s_total,
            "time_saved_high_s_total": v.time_saved_high_s_total,
            "meter_efficiency": v.efficiency_total,
            "peak_memory_mb": peak / 2**20, "peak_memory_kind": kind,
            "history": summary.history, "summary": summary}


class _Runner:
    """Trains the bench's runs one after another, each named after the bench and its role."""

    def __init__(self, quiet: bool, callbacks_factory: Callable[[], list[Any]] | None) -> None:
        self.quiet = quiet
        self.extra = callbacks_factory or (lambda: [])
        self.stamp = time.strftime("%Y%m%d-%H%M%S")
        self.rows: list[dict[str, Any]] = []
        self.names: list[str] = []  # the runs' names in the store

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def run(self, label: str, cfg: RunConfig, budget: float | None) -> dict[str, Any]:
        from ..training import Trainer

        seed = cfg.train.seed
        self.say(f"== {label} (seed {seed})")
        cbs = [Console(self.quiet), *self.extra()]
        cfg.output.name = f"bench-{self.stamp}-{label}-seed{seed}"
        device = cfg.train.device if cfg.train.device != "auto" else (
            "cuda" if torch.cuda.is_available() else "cpu")
        with _PeakMemory(device) as mem:
            result = Trainer(cfg, cbs, time_budget_s=budget).fit()
        if result.status != "finished":
            raise ConfigError(f"the {label} run ended as {result.status}: {result.message}")
        self.names.append(next((c.run_name for c in cbs if getattr(c, "run_name", None)),
                               result.summary.run_name))
        row = _row(label, seed, result.summary, mem.peak,
                   "cuda allocated" if mem.cuda else "rss")
        self.rows.append(row)
        return row


def run_bench(cfg: RunConfig, *, preset: str | None = None, output: str | None = None,
              quiet: bool = False, callbacks_factory: Callable[[], list[Any]] | None = None,
              store_args: Any = None, seeds: int = 1,
              target_accuracy: float | None = None) -> dict[str, Any]:
    """Train the four runs for each of ``seeds`` training seeds (``cfg.train.seed``,
    +1, ...; the data seed stays fixed) and return (and write) the comparison as a dict.

    The results file is written after every seed, so a bench cut short (a run stopped from
    the keyboard, a failure) keeps the seeds it finished and says where: ``complete`` says
    whether every planned seed is in it."""
    if seeds < 1:
        raise ConfigError("--seeds must be at least 1")
    runner = _Runner(quiet, callbacks_factory)
    out = Path(output) if output else Path("bench-results") / f"bench-{runner.stamp}.json"
    check_output(out)
    cfg = cfg.copy()
    if cfg.data.seed < 0:  # the same data for every seed
        cfg.data.seed = cfg.train.seed
    weights = pretrain_weights(preset, cfg, quiet)
    if weights:
        cfg.model.weights = weights
    seed_list = [cfg.train.seed + k for k in range(seeds)]
    done: list[int] = []
    for seed in seed_list:
        try:
            _train_seed(runner, cfg, seed)
        except (LearnDropError, KeyboardInterrupt):
            if done:  # said before the error's own line
                print(f"learndrop: the bench stopped in seed {seed}; the {len(done)} of "
                      f"{len(seed_list)} seeds finished before it are in {out}",
                      file=sys.stderr, flush=True)
            raise
        done.append(seed)
        result = _result(runner, cfg, preset, done, seed_list, target_accuracy)
        atomic_write_text(out, json.dumps(result, indent=2, default=str))  # the results first
    if store_args is not None and not getattr(store_args, "no_store", False):
        _group_in_store(getattr(store_args, "store", None), runner.names, out)
    result["output"] = str(out)
    if not quiet:
        print(format_table(result))
    return result


def check_output(out: Path) -> None:
    """Refuse (one line, before any run trains) a results path that cannot be written: a
    folder, a device, a path below a file, a folder that is not writable."""
    try:
        writable_target(out)
    except WriteError as exc:
        raise ConfigError(f"--output {exc}") from None
    check_writable_folder(str(out.parent), f"--output {out}: its folder")


def _train_seed(runner: _Runner, cfg: RunConfig, seed: int) -> None:
    """The four runs of one training seed."""
    base_cfg = cfg.copy()
    base_cfg.drop.enabled = False
    base_cfg.train.seed = seed
    ld_cfg = cfg.copy()
    ld_cfg.drop.enabled = True
    ld_cfg.train.seed = seed
    runner.run("baseline", base_cfg, None)
    ld = runner.run("learndrop", ld_cfg, None)
    runner.run("time-matched", base_cfg.copy(), ld["wall_time_s"])
    budgeted = ld_cfg.copy()  # the same budget: what Learn&Drop does with equal time
    budgeted.train.epochs = ld_cfg.train.epochs * BUDGET_EPOCHS
    runner.run("ld-budgeted", budgeted, ld["wall_time_s"])


def _result(runner: _Runner, cfg: RunConfig, preset: str | None, done: list[int],
            planned: list[int], target_accuracy: float | None) -> dict[str, Any]:
    """The comparison over the seeds whose four runs are done."""
    rows = [r for r in runner.rows if r["seed"] in done]
    base_acc = [r["final_accuracy"] for r in rows if r["run"] == "baseline"]
    target = target_accuracy if target_accuracy is not None else (
        sum(base_acc) / len(base_acc) - TARGET_MARGIN)
    figures = aggregate(rows, target)
    return {"preset": preset, "created": runner.stamp, "config": cfg.to_dict(),
            "machine": _machine(cfg), "seeds": list(done), "seeds_planned": list(planned),
            "complete": len(done) == len(planned), "target_accuracy": target,
            **figures, "caveats": _caveats(rows),
            "runs_by_seed": [{k: v for k, v in r.items() if k not in ("history", "summary")}
                             for r in rows],
            "runs": runner.names}


def _caveats(rows: list[dict[str, Any]]) -> list[str]:
    """Why a seed's speed-up over its baseline is not a result (other load, noise)."""
    out = []
    base = {r["seed"]: r["summary"] for r in rows if r["run"] == "baseline"}
    for r in rows:
        if r["run"] != "learndrop":
            continue
        c = compare_speed(r["summary"], base[r["seed"]])
        if c.caveats:
            out.append(f"seed {r['seed']}: speed-up {c.text}")
    return out


def _machine(cfg: RunConfig) -> dict[str, Any]:
    return {"platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
            "device": ("cuda: " + torch.cuda.get_device_name(0))
            if torch.cuda.is_available() and cfg.train.device in ("auto", "cuda") else "cpu"}


def _group_in_store(store_path: str | None, names: list[str], results: Path) -> None:
    """Link the bench's runs in the store. Runs the store could not take (kept in a journal,
    or lost: the command's exit code says which) cannot be linked; the results file has them
    all, so that is a warning, not a failure."""
    from ..errors import LearnDropError
    from ..store import RunStore

    try:
        with RunStore(store_path) as store:
            store.create_group("bench", names)
    except LearnDropError as exc:
        print(f"learndrop: warning: the bench's runs are not linked in the run store ({exc}); "
              f"its results are in {results}", file=sys.stderr)

