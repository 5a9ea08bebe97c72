"""``learndrop bench``: one configuration trained three ways, side by side.

1. the full network for the same epochs (baseline),
2. Learn&Drop,
3. the full network given Learn&Drop's wall-clock time, its learning-rate schedule fitted to
   that budget (layer-dropping gains can vanish against such a baseline, so it is reported).

Efficiency is the training-loop time Learn&Drop saved over the baseline divided by the
training FLOPs it saved: 1.0 means every FLOP not spent became time not spent.
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

from .. import format as fmt
from ..config import RunConfig
from ..errors import ConfigError
from ..files import atomic_write_text
from ..summary import EpochResult, RunSummary
from ._console import Console

__all__ = ["PRESETS", "preset_config", "run_bench", "format_table"]

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # CIFAR-style ResNet-20 from scratch on generated 16x16 data (188 steps an epoch):
    # a few minutes on 2 CPU cores.
    "cpu-resnet20": {
        "data": {"dataset": "synthetic", "synthetic_samples": 15000, "synthetic_size": 16},
        "model": {"name": "resnet20"},
        "optim": {"optimizer": "sgd", "lr": 0.1, "schedule": "cosine"},
        "train": {"epochs": 12, "batch_size": 64, "device": "auto"},
        "drop": {"mode": "cache"},
    },
    # Fine-tuning, what the method is aimed at: ResNet-20 first trained (untimed) on another
    # generated task (other classes, seed + 1), then fine-tuned on this one.
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
    """For fine-tuning presets: train the starting weights on another task (untimed)."""
    spec = PRESETS.get(name or "", {}).get("pretrain")
    if not spec or cfg.model.weights:
        return None
    from ..training import Trainer

    pre = cfg.copy()
    pre.drop.enabled = False
    pre.train.seed = cfg.train.seed + 1
    pre.train.epochs = int(spec["epochs"])
    pre.optim.lr = float(spec["lr"])
    pre.output.name = f"bench-pretrain-{name}-seed{pre.train.seed}"
    if not quiet:
        print(f"== pretraining the starting weights on another task ({pre.train.epochs} "
              f"epochs, untimed)", file=sys.stderr, flush=True)
    result = Trainer(pre).fit()
    return result.summary.weights


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


def _row(label: str, summary: RunSummary, peak: int, kind: str) -> dict[str, Any]:
    """One run's line of the table (``history`` is dropped before the table is written)."""
    return {"run": label, "run_name": summary.run_name,
            "wall_time_s": summary.wall_time_s, "train_time_s": summary.train_time_s,
            "final_accuracy": summary.final_accuracy, "best_accuracy": summary.best_accuracy,
            "forward_flops_saved": summary.forward_flops_saved,
            "train_flops_saved": summary.train_flops_saved,
            "epochs": summary.epochs, "dropped": len(summary.dropped),
            "score_overhead": summary.score_overhead,
            "peak_memory_mb": peak / 2**20, "peak_memory_kind": kind,
            "history": summary.history}


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

        self.say(f"== {label}")
        cbs = [Console(self.quiet), *self.extra()]
        cfg.output.name = f"bench-{self.stamp}-{label}"
        device = cfg.train.device if cfg.train.device != "auto" else (
            "cuda" if torch.cuda.is_available() else "cpu")
        with _PeakMemory(device) as mem:
            result = Trainer(cfg, cbs, time_budget_s=budget).fit()
        if result.status != "finished":
            raise ConfigError(f"the {label} run ended as {result.status}: {result.message}")
        self.names.append(next((c.run_name for c in cbs if getattr(c, "run_name", None)),
                               result.summary.run_name))
        row = _row(label, result.summary, mem.peak, "cuda allocated" if mem.cuda else "rss")
        self.rows.append(row)
        return row


def run_bench(cfg: RunConfig, *, preset: str | None = None, output: str | None = None,
              quiet: bool = False, callbacks_factory: Callable[[], list[Any]] | None = None,
              store_args: Any = None) -> dict[str, Any]:
    """Train the three runs and return (and write) the comparison table as a dict."""
    runner = _Runner(quiet, callbacks_factory)
    weights = pretrain_weights(preset, cfg, quiet)
    if weights:
        cfg = cfg.copy()
        cfg.model.weights = weights
    base_cfg = cfg.copy()
    base_cfg.drop.enabled = False
    ld_cfg = cfg.copy()
    ld_cfg.drop.enabled = True
    base = runner.run("baseline", base_cfg, None)
    ld = runner.run("learndrop", ld_cfg, None)
    timed = runner.run("time-matched", base_cfg.copy(), ld["wall_time_s"])
    result = _compare(runner.rows, base, ld, timed)
    result = {"preset": preset, "created": runner.stamp, "config": cfg.to_dict(),
              "machine": _machine(cfg), **result, "runs": runner.names}
    if store_args is not None and not getattr(store_args, "no_store", False):
        from ..store import RunStore

        with RunStore(getattr(store_args, "store", None)) as store:
            store.create_group("bench", runner.names)
    out = Path(output) if output else Path("bench-results") / f"bench-{runner.stamp}.json"
    atomic_write_text(out, json.dumps(result, indent=2, default=str))
    result["output"] = str(out)
    if not quiet:
        print(format_table(result))
    return result


def _compare(rows: list[dict[str, Any]], base: dict[str, Any], ld: dict[str, Any],
             timed: dict[str, Any]) -> dict[str, Any]:
    """Each row against the baseline, and the figures of Learn&Drop against the others."""
    for row in rows:
        row["speedup"] = base["wall_time_s"] / row["wall_time_s"]
        row["time_ratio"] = row["wall_time_s"] / base["wall_time_s"]
        row["accuracy_delta"] = row["final_accuracy"] - base["final_accuracy"]
    measured = 1.0 - ld["train_time_s"] / base["train_time_s"] if base["train_time_s"] else 0.0
    predicted = ld["train_flops_saved"]
    hist: tuple[EpochResult, ...] = base["history"]
    half = max(base["epochs"] // 2, 1)
    improving = len(hist) >= 2 and hist[-1].val_accuracy > hist[half - 1].val_accuracy
    return {
        "rows": [{k: v for k, v in r.items() if k != "history"} for r in rows],
        "speedup": ld["speedup"], "time_ratio": ld["time_ratio"],
        "accuracy_delta": ld["accuracy_delta"],
        "time_matched_accuracy_delta": ld["final_accuracy"] - timed["final_accuracy"],
        "measured_train_time_saved": measured, "predicted_train_time_saved": predicted,
        "efficiency": measured / predicted if predicted > 0.01 else None,
        "score_overhead": ld["score_overhead"],
        "baseline_improves_in_second_half": improving,
        "baseline_val_accuracy_by_epoch": [h.val_accuracy for h in hist],
    }


def _machine(cfg: RunConfig) -> dict[str, Any]:
    return {"platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
            "device": ("cuda: " + torch.cuda.get_device_name(0))
            if torch.cuda.is_available() and cfg.train.device in ("auto", "cuda") else "cpu"}


def format_table(result: dict[str, Any]) -> str:
    head = (f"{'run':<13} {'wall s':>8} {'speedup':>8} {'acc':>7} {'d acc':>7} "
            f"{'fwd FLOPs-':>10} {'train FLOPs-':>12} {'peak MB':>8}")
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['run']:<13} {r['wall_time_s']:>8.1f} {r['speedup']:>7.2f}x "
                     f"{fmt.percent(r['final_accuracy'], 2):>7} "
                     f"{r['accuracy_delta'] * 100:>+6.2f} "
                     f"{fmt.percent(r['forward_flops_saved']):>10} "
                     f"{fmt.percent(r['train_flops_saved']):>12} "
                     f"{r['peak_memory_mb']:>8.0f}")
    eff = result["efficiency"]
    lines.append(f"efficiency (train time saved / train FLOPs saved): "
                 f"{'n/a' if eff is None else f'{eff:.2f}'}; score checks "
                 f"{fmt.percent(result['score_overhead'], 2)} of step time; baseline still "
                 f"improving in "
                 f"its second half: "
                 f"{'yes' if result['baseline_improves_in_second_half'] else 'no'}")
    return "\n".join(lines)
