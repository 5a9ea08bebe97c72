"""Command-line access to the run store: ``runs``, ``show``, ``compare``, ``report``, ``rm``.

``add_commands(subparsers)`` adds them to the ``learndrop`` command; each handler returns an
exit code and raises :class:`~learndrop.core.errors.LearnDropError` with a one-line message
for anything the user can fix.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import format as fmt
from ..errors import LearnDropError
from ..files import writable_target
from ..report import (
    FORMATS,
    Report,
    build_report,
    export,
    format_for,
    json_safe,
    load_run,
    report_dict,
)
from ..report import tables as t
from ..store import RunRecord, RunStore
from ._flags import positive_int

__all__ = ["add_commands"]

_SUFFIX = {"html": ".html", "pdf": ".pdf", "csv": ".csv", "json": ".json", "tensorboard": ""}


def add_commands(subparsers: Any) -> None:
    """Add the run store's commands to an ``argparse`` subparsers object."""
    def store_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--store", metavar="PATH",
                       help="run store file (default: the one in LEARNDROP_HOME)")

    p = subparsers.add_parser("runs", help="list the recorded runs")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--status", choices=("running", "finished", "stopped", "cancelled",
                                        "failed", "interrupted"), help="only runs with it")
    p.add_argument("-n", "--limit", type=positive_int, default=None, metavar="N",
                   help="only the N newest runs")
    store_flag(p)
    p.set_defaults(func=cmd_runs)

    p = subparsers.add_parser("show", help="everything about one run")
    p.add_argument("run", metavar="RUN", help="run name, unique start of one, or id")
    p.add_argument("--json", action="store_true", help="print the full record as JSON")
    store_flag(p)
    p.set_defaults(func=cmd_show)

    p = subparsers.add_parser("compare", help="two runs side by side")
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    store_flag(p)
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser("report", help="export a run's report (html, pdf, csv, json, "
                                             "tensorboard)")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--compare", metavar="RUN_B", action="append",
                   help="compare with this run (repeat for more; default: its benchmark "
                        "group's other runs)")
    p.add_argument("--format", choices=FORMATS,
                   help="report format (default: from the output's suffix, else html)")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="file to write, - for standard output (a folder for tensorboard; "
                        "default: RUN-report.FORMAT)")
    store_flag(p)
    p.set_defaults(func=cmd_report)

    p = subparsers.add_parser("rm", help="delete a run and the files it wrote")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p.add_argument("--keep-files", action="store_true",
                   help="delete the record only, keep the run's folder")
    store_flag(p)
    p.set_defaults(func=cmd_rm)


def _open(args: argparse.Namespace) -> RunStore:
    return RunStore(getattr(args, "store", None))


def _printable(cell: object) -> str:
    """A cell on one line: control characters (a newline in an old run's name) become '?'."""
    return "".join("?" if ord(c) < 32 or ord(c) == 127 else c for c in str(cell))


def _table(head: Sequence[str], rows: Sequence[Sequence[str]],
           right: frozenset[int] = frozenset()) -> str:
    rows = [[_printable(c) for c in r] for r in rows]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def _pairs(rows: Sequence[tuple[str, str]]) -> str:
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def _run_json(r: RunRecord) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "display_name": r.display_name, "status": r.status,
            "model": r.model, "dataset": r.dataset, "mode": r.mode if r.drop_enabled
            else "baseline", "epochs": r.epochs_done, "epochs_planned": r.epochs_planned,
            "final_accuracy": r.final_val_accuracy, "wall_time_s": r.wall_time_s,
            "train_flops_saved_total": r.train_flops_saved_total, "created": r.created,
            "output_dir": r.output_dir, "group_id": r.group_id, "note": r.note}


def cmd_runs(args: argparse.Namespace) -> int:
    with _open(args) as store:
        runs = store.list_runs(status=args.status)
        path = store.path
        if store.replayed:
            print(f"learndrop: added {len(store.replayed)} run(s) kept in journals while the "
                  f"store could not be written: {', '.join(store.replayed)}", file=sys.stderr)
    if args.limit is not None:
        runs = runs[:args.limit]
    if args.json:
        print(json.dumps(json_safe([_run_json(r) for r in runs]), default=str))
        return 0
    if not runs:
        print(f"no runs recorded in {path} yet: 'learndrop train' records one")
        return 0
    rows = [[r.name, r.status, r.model, r.dataset, f"{r.epochs_done}/{r.epochs_planned}",
             fmt.percent(r.final_val_accuracy), fmt.duration(r.wall_time_s),
             fmt.percent(r.train_flops_saved_total) if r.drop_enabled else "baseline"]
            for r in runs]
    print(_table(["NAME", "STATUS", "MODEL", "DATA", "EPOCHS", "ACC", "TIME",
                  "TRAIN FLOPS SAVED"], rows, right=frozenset({4, 5, 6, 7})))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        data = load_run(store, args.run)
        if args.json:
            print(json.dumps(report_dict(Report(run=data)), indent=1, default=str))
            return 0
    out = [f"Run {data.name}", _pairs(t.overview_rows(data)), "", "Results",
           _pairs(t.headline_rows(data)), "", "Savings", _pairs(t.savings_rows(data)), "",
           "Units"]
    head, rows = t.unit_table(data)
    out.append(_table(head, rows, right=frozenset({0, 2, 3, 4, 7, 8})))
    if data.drops:
        out += ["", "Drops", _table(
            ["STEP", "EPOCH", "UNIT", "REASON", "SCORE"],
            [[str(d.step), f"{d.epoch:.2f}", d.unit, d.reason, fmt.score(d.score)]
             for d in data.drops], right=frozenset({0, 1, 4}))]
    if data.restores:
        head, rows = t.restore_table(data)
        out += ["", "Restores (drops undone: the training loss rose after them)",
                _table([h.upper() for h in head], rows, right=frozenset({0, 1, 4, 5}))]
    if data.actions:
        head, rows = t.action_table(data)
        out += ["", "Your actions", _table([h.upper() for h in head], rows,
                                           right=frozenset({1, 2}))]
    log = [(m.level, m.message) for m in data.messages]
    if log:
        out += ["", "Log", *[f"  {level}: {msg}" for level, msg in log[-20:]]]
    print("\n".join(out))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    with _open(args) as store:
        a, b = load_run(store, args.run_a), load_run(store, args.run_b)
    if a.record.id == b.record.id:
        raise LearnDropError(f"'{args.run_a}' and '{args.run_b}' are the same run: name two "
                             f"different runs")
    head, rows = t.comparison_rows([a, b], reference=b)
    out = [_table(head, rows), "", "Drops by epoch", _table(*t.drop_timeline([a, b]))]
    print("\n".join(out))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    out = args.output
    to_stdout = out == "-"
    fmt = args.format or (format_for(out, None) if out and not to_stdout and Path(out).suffix
                          else "html")
    if to_stdout and fmt == "tensorboard":
        raise LearnDropError("--format tensorboard writes a folder, not standard output: give "
                             "-o FOLDER")
    if out and not to_stdout and fmt != "tensorboard":
        writable_target(out)  # a device, FIFO or socket is refused before any work
    with _open(args) as store:
        report = build_report(store, args.run, compare=args.compare)
    if to_stdout:
        with tempfile.TemporaryDirectory(prefix="learndrop-report-") as tmp:
            written = export(report, fmt, Path(tmp) / f"report{_SUFFIX[fmt]}")
            sys.stdout.flush()
            sys.stdout.buffer.write(written.read_bytes())
            sys.stdout.flush()
        return 0
    written = export(report, fmt, out or f"{report.run.name}-report{_SUFFIX[fmt]}")
    print(f"wrote {written}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with _open(args) as store:
        run = store.get_run(args.run)
        if not args.yes:
            if not sys.stdin.isatty():
                raise LearnDropError(f"deleting run '{run.name}' needs confirmation: add "
                                     f"--yes")
            what = f" and the files it wrote in {run.output_dir}" if run.output_dir and \
                not args.keep_files else ""
            answer = input(f"delete run '{run.name}'{what}? [y/N] ").strip().lower()
            if answer not in ("y", "yes"):
                print("nothing deleted")
                return 1
        removed, kept = store.delete_run_files(run.id, remove_files=not args.keep_files)
    print(f"deleted run '{run.name}'" + (f" and {removed}" if removed else "")
          + (f"; {kept}" if kept else ""))
    return 0
