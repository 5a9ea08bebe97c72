"""How each unit's weights and output move during a full-network run of a bench preset.

The drop rule judges "settled" from how far a unit's parameters move between checks. This
script measures what that movement is made of, on a plain run (nothing dropped) with
``--checks-per-epoch`` checks an epoch. At every check it keeps a copy of each unit's
parameters; after the run it reports, per unit and per epoch (the value at the epoch's last
check):

- ``drift``: ``||theta_t - theta_{t-K}||^2 / sum ||theta_i - theta_{i-1}||^2`` over the last
  ``K`` (``--window``) checks. Steps with no common direction (a random walk) give 1 in
  expectation, steps all in one direction give ``K``, a walk pulled back towards a point
  gives less than 1. It has no scale, so it means the same on any model and data.
- ``moved``: how far the unit's output (the prefix's output up to and including the unit)
  moved since the previous check, on a fixed probe batch of training images:
  ``||h_t - h_{t-1}|| / ||h_t||``.
- ``to_final``: how far that output still is from the run's final one,
  ``||h_t - h_end|| / ||h_end||``: what freezing the prefix there would fix for good.

The outputs are computed after the run from the kept parameters, with batch statistics
(train-mode batch norm) on the probe batch, so no running statistics need keeping. The head
has no ``moved`` or ``to_final`` (its output is the logits).

Usage::

    python scripts/trajectories.py --preset cpu-fmnist-finetune [--seed 0] [--epochs 10]
        [--checks-per-epoch 4] [--window 4] [--probe 512] [--json out.json]

A fine-tuning preset first trains its starting weights, as ``learndrop bench`` does. On two
CPU cores, about 12 minutes for ``cpu-fmnist-finetune`` (its pretraining included) and 8 for
``cpu-fmnist-scratch``. The run's folder is made like any trainer run's; it is not recorded in
the run store.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from learndrop.core.cli._bench import preset_config, pretrain_weights
from learndrop.core.events import Callback, ScoreCheck
from learndrop.core.training import Trainer


class _Snapshots(Callback):
    """Each unit's flat parameters (on the CPU) at every score check."""

    def __init__(self) -> None:
        self.trainer: Trainer | None = None
        self.checks: list[list[torch.Tensor]] = []
        self.epochs: list[float] = []

    def on_scores(self, event: ScoreCheck) -> None:
        assert self.trainer is not None and self.trainer.ld is not None
        self.checks.append([_flat(u.parameters()) for u in self.trainer.ld.units])
        self.epochs.append(event.epoch)


def _flat(params: list[torch.nn.Parameter]) -> torch.Tensor:
    return parameters_to_vector(params).detach().float().cpu() if params else torch.zeros(0)


def drift_ratios(series: list[torch.Tensor], window: int) -> list[float | None]:
    """The drift ratio at each check (None before ``window`` steps are known)."""
    out: list[float | None] = [None] * min(window, len(series))
    for t in range(window, len(series)):
        path = sum(float((series[i] - series[i - 1]).square().sum())
                   for i in range(t - window + 1, t + 1))
        disp = float((series[t] - series[t - window]).square().sum())
        out.append(disp / path if path > 0 else None)
    return out


@torch.no_grad()
def output_motion(trainer: Trainer, checks: list[list[torch.Tensor]], probe: int
                  ) -> dict[int, tuple[list[float | None], list[float]]]:
    """Per unit (not the head): ``moved`` and ``to_final`` at each check."""
    model, ld, bundle = trainer.model, trainer.ld, trainer.parts.bundle
    assert model is not None and ld is not None
    device = next(model.parameters()).device
    xs = torch.stack([bundle.train[i][0] for i in range(min(probe, len(bundle.train)))])
    xs = xs.to(device)
    units = [u for u in ld.units if not u.is_head and u.last_module is not None]
    seen: dict[int, torch.Tensor] = {}
    hooks = [u.last_module.register_forward_hook(  # type: ignore[union-attr]
        lambda _m, _i, out, k=u.index: seen.__setitem__(k, out.detach().flatten(1).float()))
        for u in units]
    outputs: list[dict[int, torch.Tensor]] = []
    model.train()
    try:
        for params in checks:
            for u in ld.units:
                if u.parameters():
                    vector_to_parameters(params[u.index].to(device), u.parameters())
            seen.clear()
            model(xs)
            outputs.append({k: v.cpu() for k, v in seen.items()})
    finally:
        for h in hooks:
            h.remove()
    motion = {}
    for u in units:
        hs = [o[u.index] for o in outputs]
        moved = [None] + [float((hs[t] - hs[t - 1]).norm() / hs[t].norm())
                          for t in range(1, len(hs))]
        to_final = [float((h - hs[-1]).norm() / hs[-1].norm()) for h in hs]
        motion[u.index] = (moved, to_final)
    return motion


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="cpu-fmnist-finetune")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=0, help="0: the preset's")
    ap.add_argument("--checks-per-epoch", type=int, default=4)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--probe", type=int, default=512)
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    cfg = preset_config(args.preset)
    if cfg.data.seed < 0:
        cfg.data.seed = cfg.train.seed
    cfg.train.seed = args.seed
    if args.epochs:
        cfg.train.epochs = args.epochs
    weights = pretrain_weights(args.preset, cfg, quiet=True)
    if weights:
        cfg.model.weights = weights
    cfg.drop.enabled = False
    cfg.drop.checks_per_epoch = args.checks_per_epoch
    cfg.drop.check_every = 0
    snaps = _Snapshots()
    trainer = Trainer(cfg.check(), [snaps])
    snaps.trainer = trainer
    result = trainer.fit()
    assert trainer.ld is not None
    motion = output_motion(trainer, snaps.checks, args.probe)

    per_epoch = [max(i for i, e in enumerate(snaps.epochs) if e <= k + 1 + 1e-9)
                 for k in range(cfg.train.epochs)]
    report: dict[str, Any] = {"preset": args.preset, "seed": args.seed,
                              "checks_per_epoch": args.checks_per_epoch,
                              "window": args.window, "check_epochs": snaps.epochs,
                              "val_accuracy": [h.val_accuracy for h in result.summary.history],
                              "units": {}}
    print(f"{args.preset}, seed {args.seed}: val accuracy by epoch "
          + " ".join(f"{a:.4f}" for a in report["val_accuracy"]))
    tables: dict[str, list[str]] = {"drift": [], "moved": [], "to_final": []}
    for u in trainer.ld.units:
        drift = drift_ratios([c[u.index] for c in snaps.checks], args.window)
        moved, to_final = motion.get(u.index, ([], []))
        report["units"][u.name] = {"drift": drift, "moved": moved, "to_final": to_final}
        for key, series in (("drift", drift), ("moved", moved), ("to_final", to_final)):
            if series:
                cells = [series[i] for i in per_epoch]
                tables[key].append(f"{u.name:12s} " + " ".join(
                    "    -" if v is None else f"{v:5.2f}" for v in cells))
    head = f"{'epoch':12s} " + " ".join(f"{k + 1:5d}" for k in range(cfg.train.epochs))
    for key, rows in tables.items():
        print(f"\n{key}\n{head}\n" + "\n".join(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
