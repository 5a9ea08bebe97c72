"""The step timer on a GPU: CUDA events (what the engine uses there) against the host's clock.

Trains a ResNet-18 (the registry's small-image one) for a few hundred steps under
Learn&Drop and times every step twice: by the engine's own step clock (CUDA events on a CUDA
device) and by the host's clock with ``torch.cuda.synchronize()`` before and after the step.
Their medians should agree within a few percent; without the synchronisation the host's
clock would time kernel launches only, which is why the engine uses events. Also reports the
peak device memory. Writes one JSON object to ``--out``.

Usage::

    python scripts/gpu_timer_check.py --out timer.json [--device cuda] [--steps 300]

On a machine without CUDA, ``--device cpu`` runs the same code with the host clock (a check
of the script itself, not of the timer).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from learndrop.core import LearnDrop, get_model
from learndrop.core.engine._timing import make_step_clock  # the clock under test


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = get_model("resnet18", num_classes=10, in_channels=3, image_size=32).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(args.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    ld = LearnDrop(model, opt, example_input=x[:2])
    clock = make_step_clock(device)
    engine: list[float] = []
    host: list[float] = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(args.steps):
        if step == args.steps // 2:
            ld.drop(ld.units[1].name)  # half the steps with a dropped unit: two costs timed
        _sync(device)
        t0 = time.perf_counter()
        clock.begin()
        loss = F.cross_entropy(ld.model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ld.step()
        engine.extend(seconds for _, seconds in clock.end(step))
        _sync(device)
        host.append(time.perf_counter() - t0)
    engine.extend(seconds for _, seconds in clock.flush())
    warm = 20  # the first steps include kernel selection and allocation
    e, h = engine[warm:], host[warm:len(engine)]
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "clock": type(clock).__name__, "steps": len(e),
        "engine_median_ms": statistics.median(e) * 1e3 if e else None,
        "host_synced_median_ms": statistics.median(h) * 1e3 if h else None,
        "peak_memory_mb": (torch.cuda.max_memory_allocated(device) / 2**20
                           if device.type == "cuda" else None),
    }
    if e and h:
        result["engine_over_host"] = result["engine_median_ms"] / result["host_synced_median_ms"]
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
