"""``learndrop whatif RUN``: what another drop policy would have done to a recorded run.

It replays the run's score history with the engine's own drop rule
(:func:`learndrop.core.monitor.what_if`) and prints, per unit, the check and epoch it would
drop at next to when it did, and the training FLOPs each would have saved up to the end of
the recorded history.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .. import format as fmt
from ..engine import ORDERS, SETTLE_TESTS
from ..monitor import WhatIf, recorded_run, what_if
from ..store import RunStore

__all__ = ["add_command"]

#: flag -> (setting, type, help)
_FLAGS: dict[str, tuple[str, Any, str]] = {
    "--threshold": ("threshold", float, "settled at or below this learning score"),
    "--patience": ("patience", int, "settled checks in a row before a drop"),
    "--confidence": ("confidence", float, "settle=noise: confidence that a trend is not flat; "
                     "reversible: that a loss rose"),
    "--trend-tolerance": ("trend_tolerance", float,
                          "settle=tolerance: a trend within this counts as flat"),
    "--window": ("window", int, "checks the trend is fitted over"),
    "--warmup-epochs": ("warmup_epochs", float, "epochs before any drop (fractions allowed)"),
    "--keep-last": ("keep_last", int, "units before the head that always train"),
    "--ema": ("ema", float, "EMA smoothing of the scores (0: off)"),
}


def add_command(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "whatif", help="replay a recorded run's scores under another drop policy",
        description="Replay a recorded run's score history under another drop policy and "
                    "say when each unit would have dropped. Settings not given keep the "
                    "run's own. Exact until the first decision that differs from the "
                    "recorded run.")
    p.add_argument("run", metavar="RUN", help="run name, unique start of one, or id")
    for flag, (_, kind, text) in _FLAGS.items():
        p.add_argument(flag, type=kind, default=None, help=text)
    p.add_argument("--order", choices=ORDERS, default=None,
                   help="prefix: front to back only; any: any settled unit")
    p.add_argument("--settle", choices=SETTLE_TESTS, default=None,
                   help="noise: a trend is flat within its own noise; tolerance: within "
                        "--trend-tolerance")
    p.add_argument("--reversible", choices=("on", "off"), default=None,
                   help="replay the run's restores (on) or leave them out (off)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--store", metavar="PATH",
                   help="run store file (default: the one in LEARNDROP_HOME)")
    p.set_defaults(func=cmd_whatif)


def cmd_whatif(args: argparse.Namespace) -> int:
    with RunStore(args.store) as store:
        events = store.load_events(args.run)
        name = store.get_run(args.run).name
    settings = {setting: getattr(args, flag[2:].replace("-", "_"))
                for flag, (setting, _, _) in _FLAGS.items()}
    settings["order"] = args.order
    settings["settle"] = args.settle
    settings["reversible"] = None if args.reversible is None else args.reversible == "on"
    # a baseline's dropping is off: asking it what-if means asking with dropping on
    result = what_if(recorded_run(events), enabled=True, **settings)
    if args.json:
        print(json.dumps({"run": name, **result.to_dict()}))
    else:
        print(_text(name, result))
    return 0


def _epoch(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _text(name: str, r: WhatIf) -> str:
    changed = [f"{k} {getattr(r.recorded_policy, k)} -> {getattr(r.policy, k)}"
               for k in ("threshold", "patience", "settle", "confidence", "trend_tolerance",
                         "window", "warmup_epochs", "order", "keep_last", "ema", "reversible")
               if getattr(r.policy, k) != getattr(r.recorded_policy, k)]
    policy = ", ".join(changed) if changed else "the run's own (unchanged)"
    out = [f"What if: run {name}, {r.checks} score checks, mode {r.mode}",
           f"  policy: {policy}", ""]
    width = max([len(u.name) for u in r.units] + [4])
    out.append(f"  {'UNIT':<{width}}  {'WOULD DROP (epoch)':>18}  {'DROPPED (epoch)':>15}")
    for u in r.units:
        would = _epoch(u.drop_epoch) + ("  ?" if u.unknown else "")
        out.append(f"  {u.name:<{width}}  {would:>18}  {_epoch(u.recorded_drop_epoch):>15}")
    out += ["", f"  training FLOPs saved: {fmt.percent(r.train_flops_saved)} "
                f"(recorded: {fmt.percent(r.recorded_train_flops_saved)})"]
    if r.first_difference is None:
        out.append("  every decision is the recorded run's: the prediction is exact")
    else:
        out.append(f"  exact until epoch {_epoch(r.first_difference_epoch)} (check "
                   f"{r.first_difference + 1}), the first decision that differs from the "
                   f"recorded run; after it the network would have trained differently")
    if any(u.unknown for u in r.units):
        out.append("  ?: the recorded run dropped this unit, so its history ends there")
    if r.mode == "cache":
        out.append("  cache mode: FLOPs are estimated (the cache counted as filled one "
                   "epoch after each drop)")
    return "\n".join(out)
