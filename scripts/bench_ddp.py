"""Data-parallel benchmark: the full network and Learn&Drop, each as one ``learndrop train
--nproc N`` run, side by side: time per step before and after the drops (rank 0's measured
median) and the gradient bytes all-reduced per step.

    python scripts/bench_ddp.py [--nproc 2] [--seeds 3] [-- extra learndrop train flags]

The defaults are a small CPU run (digits, small_cnn at width 2, 1,200 samples of 16 px, batch
32 per process, 8 epochs; drops settle from the third epoch). Anything after ``--`` is passed
to both runs (``-- --device cuda --model resnet18 --dataset cifar10``). Each run is repeated
with ``--seeds`` seeds on the same data (``--data.seed 0``), the two runs of a seed back to
back, and the table gives each figure's mean and standard deviation over the seeds, with the
machine's load average during the runs (measure on a quiet machine).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

DEFAULTS = ["--dataset", "digits", "--model", "small_cnn", "--model.width", "2",
            "--data.limit", "1200", "--image-size", "16", "--batch-size", "32",
            "--epochs", "8", "--threshold", "1.0", "--patience", "1", "--warmup-epochs", "2",
            "--drop.window", "2", "--drop.trend_tolerance", "10", "--train.log_every", "1000",
            "--device", "cpu"]


def _run(nproc: int, flags: list[str], baseline: bool, out: str) -> tuple[dict[str, Any], float]:
    cmd = [sys.executable, "-m", "learndrop", "train", "--nproc", str(nproc), *flags,
           "--output-dir", out, "--no-store", "--quiet", "--json"]
    if baseline:
        cmd.append("--baseline")
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1]), wall


def _times(value: Any, scale: float) -> float:
    """``value`` times ``scale``; NaN where the run did not measure it (too few steps)."""
    return value * scale if isinstance(value, (int, float)) else math.nan


def _row(s: dict[str, Any], wall: float) -> dict[str, float]:
    """One run's figures (the savings record at the run's end)."""
    v = s["savings"]
    after = v["step_time_s_now"] if s["dropped"] else v["full_step_time_s_now"]
    return {"wall s": wall, "train s": s["train_time_s"],
            "ms/step before drops": _times(v["full_step_time_s_now"], 1000),
            "ms/step after drops": _times(after, 1000),
            "all-reduce kB/step before": v["full_allreduce_bytes_per_step_now"] / 1000,
            "all-reduce kB/step after": v["allreduce_bytes_per_step_now"] / 1000,
            "all-reduce volume saved %": v["allreduce_bytes_saved_total"] * 100,
            "train FLOPs saved %": v["train_flops_saved_total"] * 100,
            "units dropped": len(s["dropped"]),
            "val acc %": s["final_accuracy"] * 100}


def _spread(values: list[float]) -> str:
    """Mean and sample standard deviation over the seeds (the mean alone for one seed)."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {statistics.stdev(values):.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--seeds", type=int, default=3,
                   help="seeds 0 .. N-1 of each run, on the same data (default 3)")
    p.add_argument("extra", nargs="*", help="more learndrop train flags, after --")
    args = p.parse_args()
    if args.seeds < 1:
        p.error("--seeds must be 1 or more")
    flags = [*DEFAULTS, *args.extra]
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "learndrop": []}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):  # the two runs of a seed back to back
            for name, baseline in (("baseline", True), ("learndrop", False)):
                out = os.path.join(tmp, f"{name}-{seed}")
                s, wall = _run(args.nproc, [*flags, "--seed", str(seed), "--data.seed", "0"],
                               baseline, out)
                runs[name].append(_row(s, wall))
                load.append(os.getloadavg()[0])
    head = list(runs["baseline"][0])
    print(f"{args.nproc} processes, seeds 0-{args.seeds - 1} (mean ± standard deviation); "
          f"load average {min(load):.1f} to {max(load):.1f} during the runs; "
          f"flags: {' '.join(flags)}")
    print("| run | " + " | ".join(head) + " |")
    print("|" + "---|" * (len(head) + 1))
    for name, rows in runs.items():
        print(f"| {name} | " + " | ".join(_spread([r[k] for r in rows]) for k in head) + " |")


if __name__ == "__main__":
    main()
