"""``learndrop sweep``: every combination of some settings' values, for several seeds, as one
sweep in the run store; and ``learndrop sweeps``, the sweeps the store holds.

A setting flag given several values separated by commas varies that setting
(``--threshold 0.5,0.6,0.7``, ``--drop.patience 1,2``); a TOML sweep file (``--sweep FILE``)
can give the same in its ``[vary]`` table. Ctrl-C stops the sweep after the current
batch; ``learndrop sweep --resume NAME`` trains the runs it has not finished.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..config import RunConfig, load_config
from ..errors import ConfigError
from ..store import SWEEP_KIND, RunStore
from ..sweep import (
    JobState,
    SweepPlan,
    SweepRunner,
    format_sweep_table,
    load_sweep_file,
    parse_values,
    sweep_rows,
    varies,
)
from ..training import RunControl, check_config
from ._console import Console
from ._flags import add_config_flags, positive_int
from ._running import install_signal_handlers

__all__ = ["add_commands", "plan_from_args"]


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep", help="train every combination of some settings' values, for several seeds",
        description="Train every combination of the settings given several values "
                    "(--threshold 0.5,0.6,0.7, any --section.name flag), or of a sweep "
                    "file's [vary] table, once per seed; the runs are recorded in the run "
                    "store as one sweep. Ctrl-C stops it; --resume continues it.")
    add_config_flags(p)
    p.add_argument("--sweep", metavar="FILE", help="TOML sweep file: [vary] settings = "
                   "[values], [sweep] seeds/baseline/name, and config sections as the base")
    p.add_argument("--seeds", type=positive_int, default=None, metavar="N",
                   help="train every combination with N training seeds (default 1)")
    p.add_argument("--baseline", action="store_true", default=None,
                   help="also train the full network (no drops) for each seed, to compare "
                   "speed-up and accuracy against")
    p.add_argument("--parallel", type=positive_int, default=1, metavar="N",
                   help="train N runs at a time, each in its own process (default 1)")
    p.add_argument("--name", metavar="NAME", help="the sweep's name in the store "
                   "(default: model-dataset-time)")
    p.add_argument("--resume", metavar="SWEEP", help="continue the sweep of this name or id: "
                   "train the runs it has not finished, with the settings it was started with")
    p.add_argument("--json", action="store_true", help="print the table's rows as JSON last")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--store", metavar="PATH", help="run store file (default: LEARNDROP_HOME)")
    p.set_defaults(func=cmd_sweep)

    r = subparsers.add_parser("sweep-report", help="write a sweep's report (HTML or PDF)",
                              description="Write a sweep's report: the grouped table, the "
                              "trade-off scatter and the overlaid learning scores.")
    r.add_argument("sweep", metavar="SWEEP", help="the sweep's name or id (see learndrop "
                   "sweeps)")
    r.add_argument("-o", "--output", metavar="FILE", required=True,
                   help="where to write it: a .html or .pdf file")
    r.add_argument("--store", metavar="PATH", help="run store file (default: LEARNDROP_HOME)")
    r.set_defaults(func=cmd_sweep_report)

    s = subparsers.add_parser("sweeps", help="list the sweeps in the run store")
    s.add_argument("--store", metavar="PATH", help="run store file (default: LEARNDROP_HOME)")
    s.set_defaults(func=cmd_sweeps)


def plan_from_args(args: argparse.Namespace) -> tuple[SweepPlan, str | None]:
    """The sweep the flags and the sweep file describe, and its name if one was given."""
    cfg = load_config(args.config) if getattr(args, "config", None) else RunConfig()
    axes: list[tuple[str, tuple[Any, ...]]] = []
    options: dict[str, Any] = {}
    if args.sweep:
        sections, file_axes, options = load_sweep_file(args.sweep)
        for section, values in sections.items():
            if not isinstance(values, dict):
                raise ConfigError(f"the sweep file {args.sweep}: '{section}' must be a table "
                                  f"of settings")
            for key, value in values.items():
                cfg.set(f"{section}.{key}", value, source=f"sweep file {args.sweep}")
        axes += file_axes
    for key, value in vars(args).items():
        if not key.startswith("set:") or value is None:
            continue
        path = key[4:]
        if "," in str(value) and varies(path):
            axes = [a for a in axes if a[0] != path]
            axes.append((path, parse_values(path, str(value), "command line")))
        else:
            axes = [a for a in axes if a[0] != path]
            cfg.set(path, value, source="command line")
    seeds = args.seeds if args.seeds is not None else int(options.get("seeds", 1))
    baseline = bool(args.baseline if args.baseline is not None
                    else options.get("baseline", False))
    plan = SweepPlan(check_config(cfg), tuple(axes), seeds, baseline)
    for job in plan.jobs()[:1]:  # the model and data set of a varied combination, checked
        check_config(job.config)
    return plan, args.name or options.get("name")


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.resume:
        runner = SweepRunner(None, args.store, resume=args.resume)
        _refuse_settings_with_resume(args, runner.name)
    else:
        plan, name = plan_from_args(args)
        runner = SweepRunner(plan, args.store, name=name)
    plan = runner.plan
    quiet = args.quiet
    total = len(runner.states)
    left = len(runner.left())

    def say(text: str) -> None:
        if not quiet:
            print(text, file=sys.stderr, flush=True)

    say(f"sweep {runner.name} (id {runner.sweep_id}): {total} runs"
        + (f", {total - left} already finished" if left < total else "")
        + (f", {args.parallel} at a time" if args.parallel > 1 else ""))
    started = time.monotonic()

    def change(st: JobState) -> None:
        done = sum(s.state in ("finished", "failed", "stopped") for s in runner.states)
        what = ", ".join(f"{p.split('.', 1)[1]}={v}" for p, v in
                         zip(plan.paths if st.job.role == "run" else
                             [p for p in plan.paths if not p.startswith("drop.")],
                             st.job.values))
        what = " ".join(w for w in ("baseline" if st.job.role != "run" else "", what,
                                    f"seed {st.job.seed}") if w)
        tail = f": {st.message}" if st.state == "failed" and st.message else ""
        say(f"[{done}/{total} done, {time.monotonic() - started:.0f} s] {what}: "
            f"{st.state}{tail}")

    control = RunControl()
    install_signal_handlers(control)
    outcome = runner.run(parallel=args.parallel, control=control, on_change=change,
                         callbacks=lambda job: [Console(True)])
    rows = sweep_rows(plan, runner.runs())
    if not quiet:
        print(f"sweep {runner.name}: {outcome.done} of {total} runs finished")
        print(format_sweep_table(plan, rows))
    for st in outcome.failed:
        print(f"learndrop: run {st.run_name or st.job.index + 1} failed: {st.message}",
              file=sys.stderr)
    if outcome.stopped or outcome.done < total:
        print(f"learndrop: the sweep is not complete ({outcome.done} of {total} runs "
              f"finished); continue it with: learndrop sweep --resume {runner.name}",
              file=sys.stderr)
    if args.json:
        print(json.dumps({"sweep": runner.name, "id": runner.sweep_id, "runs": total,
                          "finished": outcome.done, "rows": rows}, default=str))
    if outcome.failed:
        return 1
    return 130 if outcome.stopped else 0


def _refuse_settings_with_resume(args: argparse.Namespace, name: str) -> None:
    """A resumed sweep trains with the settings it was started with: a setting given beside
    --resume would be ignored, so it is refused instead."""
    given = [key[4:] for key, value in vars(args).items()
             if key.startswith("set:") and value is not None]
    given += [f"--{key}" for key in ("config", "sweep", "seeds", "baseline", "name")
              if getattr(args, key, None) is not None]
    if given:
        raise ConfigError(f"--resume continues sweep '{name}' with the settings it was started "
                          f"with; leave out {', '.join(given)} (or start a new sweep with "
                          f"--name)")


def cmd_sweeps(args: argparse.Namespace) -> int:
    with RunStore(args.store) as store:
        groups = store.list_groups(SWEEP_KIND)
    if not groups:
        print("no sweeps in the run store yet: start one with learndrop sweep")
        return 0
    print(f"{'id':>4}  {'name':<32} {'runs':>5}  created")
    for g in groups:
        print(f"{g.id:>4}  {g.label:<32} {len(g.run_names):>5}  "
              f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(g.created))}")
    return 0


def cmd_sweep_report(args: argparse.Namespace) -> int:
    from ..report import build_sweep_report, export_sweep

    with RunStore(args.store) as store:
        report = build_sweep_report(store, args.sweep)
    path = export_sweep(report, args.output)
    print(f"wrote {path}")
    return 0
