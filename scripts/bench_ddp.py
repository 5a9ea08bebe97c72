"""Data-parallel benchmark: the full network and Learn&Drop, each as one ``learndrop train
--nproc N`` run, side by side: time per step before and after the drops (rank 0's measured
median) and the gradient bytes all-reduced per step.

    python scripts/bench_ddp.py [--nproc 2] [-- extra learndrop train flags]

The defaults are a small CPU run (digits, small_cnn at width 2, 1,200 samples of 16 px, batch
32 per process, 8 epochs; drops settle from the third epoch). Anything after ``--`` is passed
to both runs (``-- --device cuda --model resnet18 --dataset cifar10``).
"""

from __future__ import annotations

import argparse
import json
import os
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


def _ms(v: Any) -> str:
    return f"{v * 1000:.2f}" if isinstance(v, (int, float)) else "n/a"


def _kb(v: Any) -> str:
    return f"{v / 1000:.1f}" if isinstance(v, (int, float)) else "n/a"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("extra", nargs="*", help="more learndrop train flags, after --")
    args = p.parse_args()
    flags = [*DEFAULTS, *args.extra]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, baseline in (("baseline", True), ("learndrop", False)):
            s, wall = _run(args.nproc, flags, baseline, os.path.join(tmp, name))
            v = s["savings"]  # the savings record at the run's end
            after = v["step_time_s_now"] if s["dropped"] else v["full_step_time_s_now"]
            rows.append([name, f"{wall:.1f}", f"{s['train_time_s']:.1f}",
                         _ms(v["full_step_time_s_now"]), _ms(after),
                         _kb(v["full_allreduce_bytes_per_step_now"]),
                         _kb(v["allreduce_bytes_per_step_now"]),
                         f"{v['allreduce_bytes_saved_total'] * 100:.1f}%",
                         f"{v['train_flops_saved_total'] * 100:.1f}%", str(len(s["dropped"])),
                         f"{s['final_accuracy'] * 100:.2f}%"])
    head = ["run", "wall s", "train s", "ms/step before drops", "ms/step after drops",
            "all-reduce kB/step before", "all-reduce kB/step after",
            "all-reduce volume saved", "train FLOPs saved", "units dropped", "val acc"]
    print(f"{args.nproc} processes; flags: {' '.join(flags)}")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
