"""The ``learndrop`` command line.

Exit codes: 0 done, 2 bad input (one line saying what to fix), 1 failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .. import format as fmt
from ..config import RunConfig, config_to_toml, field_choices, field_doc, field_paths, load_config
from ..engine import LearnDropWarning
from ..errors import LearnDropError, first_line
from ..plugins import load_plugin
from ..summary import RunSummary
from ._console import Console
from ._store_commands import add_commands as add_store_commands

__all__ = ["main", "build_config"]

#: short flags for the settings people change most
ALIASES: dict[str, str] = {
    "model": "model.name", "dataset": "data.dataset", "data-root": "data.root",
    "download": "data.download", "augment": "data.augment", "image-size": "data.image_size",
    "epochs": "train.epochs", "batch-size": "train.batch_size", "device": "train.device",
    "seed": "train.seed", "amp": "train.amp", "nproc": "train.nproc",
    "lr": "optim.lr", "optimizer": "optim.optimizer",
    "schedule": "optim.schedule", "mode": "drop.mode", "threshold": "drop.threshold",
    "patience": "drop.patience", "warmup-epochs": "drop.warmup_epochs",
    "check-every": "drop.check_every", "order": "drop.order", "keep-last": "drop.keep_last",
    "output-dir": "output.dir", "run-name": "output.name",
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input in one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _help(path: str) -> str:
    return field_doc(path).replace("%", "%%")  # argparse %-formats help texts


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML or JSON config file; flags override it")
    g = p.add_argument_group("common settings")
    back = {v: k for k, v in ALIASES.items()}
    for alias, path in ALIASES.items():
        choices = field_choices(path)
        g.add_argument(f"--{alias}", dest=f"set:{path}", metavar=(
            "{" + ",".join(choices) + "}" if choices else "VALUE"), help=_help(path))
    a = p.add_argument_group("every setting (section.name)")
    for path in field_paths():
        if path in back:
            a.add_argument(f"--{path}", dest=f"set:{path}", help=argparse.SUPPRESS)
            continue
        choices = field_choices(path)
        a.add_argument(f"--{path}", dest=f"set:{path}", metavar=(
            "{" + ",".join(choices) + "}" if choices else "VALUE"), help=_help(path))


def build_config(args: argparse.Namespace) -> RunConfig:
    """The config file (if any) with every flag given on the command line applied."""
    cfg = load_config(args.config) if getattr(args, "config", None) else RunConfig()
    return _apply_flags(cfg, args)


def _apply_flags(cfg: RunConfig, args: argparse.Namespace) -> RunConfig:
    """Every ``--section.name`` flag given on the command line, applied to ``cfg``."""
    for key, value in vars(args).items():
        if key.startswith("set:") and value is not None:
            cfg.set(key[4:], value, source="command line")
    return cfg.check()


def _print_summary(s: RunSummary) -> None:
    lines = [
        f"status          {s.status}",
        f"final accuracy  {fmt.percent(s.final_accuracy, 2)} "
        f"(best {fmt.percent(s.best_accuracy, 2)})",
        f"wall time       {fmt.duration(s.wall_time_s)}",
        f"units dropped   {len(s.dropped)} of {s.units - 1}",
    ]
    if s.final_accuracy_scaled is not None:
        lines.insert(2, f"scaled-down acc {fmt.percent(s.final_accuracy_scaled, 2)}")
    for d in s.dropped:
        lines.append(f"  {d.unit:<14} epoch {d.epoch:.2f} (step {d.step}, {d.reason})")
    eff = s.efficiency
    noise = s.time_saved_low_s is not None and s.time_saved_low_s <= 0
    lines += [
        f"forward FLOPs saved over the run   {fmt.percent(s.forward_flops_saved)}",
        f"training FLOPs saved over the run  {fmt.percent(s.train_flops_saved)}",
        f"trainable params at the end        {s.trainable_params:,} of {s.total_params:,}",
        f"time per step (median)             {fmt.step_time(s.step_time_s)} "
        f"(full network {fmt.step_time(s.full_step_time_s)})",
        "measured step time saved           " + (
            fmt.percent(s.measured_time_saved) if s.measured_time_saved is not None
            else "n/a"),
        "time saved, measured               " + (
            fmt.span(s.time_saved_s, s.time_saved_low_s, s.time_saved_high_s)
            if s.time_saved_low_s is not None else "n/a"),
        f"time saved, predicted from FLOPs   {fmt.duration(s.predicted_time_saved_s)}",
        "efficiency (measured/predicted)    " + (
            f"{eff:.2f}" if eff is not None else
            "n/a (the measured saving is within its noise)" if noise else "n/a"),
        f"score checks' share of step time   {fmt.percent(s.score_overhead, 2)}",
        f"data pipeline's share of loop time {fmt.percent(s.data_time_share, 1)}",
        *_allreduce_lines(s),
        f"run folder      {s.output_dir}",
    ]
    print("\n".join(lines))


def _allreduce_lines(s: RunSummary) -> list[str]:
    """A data-parallel run's gradient all-reduce volume (nothing for one process)."""
    if s.world_size <= 1:
        return []
    before = fmt.count(s.full_allreduce_bytes_per_step, "B")
    after = fmt.count(s.allreduce_bytes_per_step, "B")
    return [f"processes                          {s.world_size}",
            f"all-reduced per step               {before} before drops, {after} at the end",
            f"all-reduce volume saved over run   {fmt.percent(s.allreduce_bytes_saved)}"]


def _json_summary(s: RunSummary) -> str:
    keep = {k: v for k, v in s.to_dict().items() if k != "history"}
    return json.dumps(keep, default=str, allow_nan=True)


# ---- commands ---------------------------------------------------------------------------------
def _store_recorder(args: argparse.Namespace) -> list[Any]:
    """The run store's recorder unless ``--no-store``. The store is opened once here, so a
    damaged or foreign store file is reported before any training starts."""
    if getattr(args, "no_store", False) or not _reports():
        return []
    from ..store import RunStore, StoreRecorder

    with RunStore(getattr(args, "store", None)) as store:
        path = store.path
    return [StoreRecorder(path)]


def _reports() -> bool:
    """Whether this process reports and records: any but ranks 1.. of a data-parallel run."""
    from ..training import distributed_environment

    return not distributed_environment() or os.environ.get("RANK", "0") == "0"


def _launches(args: argparse.Namespace, cfg: RunConfig) -> bool:
    """Whether this command starts ``train.nproc`` processes instead of training itself."""
    from ..training import distributed_environment

    return cfg.train.nproc > 1 and not distributed_environment()


def _cmd_train(args: argparse.Namespace) -> int:
    from ..training import RunControl, Trainer

    cfg = build_config(args)
    if args.baseline:
        cfg.drop.enabled = False
    if args.print_config:
        sys.stdout.write(config_to_toml(cfg))
        return 0
    if _launches(args, cfg):
        from ._launch import launch

        return launch(args.argv, cfg.train.nproc)
    extra = [_tensorboard(args.tensorboard)] if args.tensorboard and _reports() else []
    control = RunControl()
    _install_signal_handlers(control)
    callbacks = ([Console(args.quiet), *_store_recorder(args), *extra] if _reports()
                 else [])
    trainer = Trainer(cfg, callbacks, control, resume_from=args.resume)
    result = trainer.fit()
    if not _reports():
        return 0
    if not args.quiet:
        _print_summary(result.summary)
    if args.json:
        print(_json_summary(result.summary))
    return _recording_outcome(callbacks)


def _recording_outcome(callbacks: Sequence[Any]) -> int:
    """0 when the run is in the store or kept in a journal that the next command adds to
    it (said on stderr); 1, naming what happened, when its record could not be kept."""
    from ..store import StoreRecorder

    code = 0
    for rec in callbacks:
        if not isinstance(rec, StoreRecorder):
            continue
        if rec.lost:
            print(f"learndrop: error: {rec.lost}", file=sys.stderr)
            code = 1
        elif rec.journal is not None:
            print(f"learndrop: warning: the run store could not record this run "
                  f"({first_line(Exception(rec.error or ''))[:200]}); its events are kept in "
                  f"{rec.journal} and the next learndrop command adds them to the store",
                  file=sys.stderr)
    return code


def _tensorboard(log_dir: str) -> Any:
    """The TensorBoard callback, an integration that registers itself as an entry point."""
    factory = load_plugin("learndrop.callbacks", "tensorboard", what="TensorBoard logging",
                          install="pip install tensorboard (the learndrop[tensorboard] extra)")
    return factory(log_dir)


def _cmd_resume(args: argparse.Namespace) -> int:
    """Continue a stored run from its folder's checkpoint, into the same folder and run.

    The run is claimed in the store first (one transaction), and the trainer locks its
    folder, so two ``resume`` of one run never train together."""
    from ..store import RunStore, StoreRecorder
    from ..training import RunControl, Trainer, distributed_environment

    if not distributed_environment() or not _reports():  # the launcher, or ranks 1..
        with RunStore(args.store) as store:
            run = store.get_run(args.run)
        checkpoint, cfg = _resumable(run, args.epochs)
        if _launches(args, cfg):  # every rank of the run it was; rank 0 claims it
            from ._launch import launch

            return launch(args.argv, cfg.train.nproc)
        if not _reports():  # a rank that neither records nor reports
            Trainer(cfg, [], RunControl(), resume_from=checkpoint,
                    run_folder=checkpoint.parent, finish_complete=True).fit()
            return 0
    with RunStore(args.store) as store:
        run, before = store.claim_run(args.run)
        store_path = store.path
    recorder = StoreRecorder(store_path, resume_id=run.id)
    try:
        checkpoint, cfg = _resumable(run, args.epochs)
        control = RunControl()
        _install_signal_handlers(control)
        callbacks = [Console(args.quiet), recorder]
        trainer = Trainer(cfg, callbacks, control, resume_from=checkpoint,
                          run_folder=checkpoint.parent, finish_complete=True)
        result = trainer.fit()
    finally:
        if recorder.run_id is None and recorder.journal is None:  # never started
            with RunStore(store_path) as store:
                store.release_run(run.id, *before)
    if not args.quiet:
        _print_summary(result.summary)
    if args.json:
        print(_json_summary(result.summary))
    return _recording_outcome(callbacks)


def _resumable(run: Any, epochs: str | None) -> tuple[Path, RunConfig]:
    """The checkpoint and config to resume stored run ``run`` with (to ``epochs`` in all,
    when given); a one-line error for a run that cannot be resumed. The run is claimed by
    this process already (``claim_run`` refuses one that is still running)."""
    from ..errors import CheckpointError
    from ..training import checkpoint_epoch, load_checkpoint

    folder = Path(run.output_dir) if run.output_dir else None
    if folder is not None and not folder.is_absolute():
        raise CheckpointError(f"run '{run.name}' recorded its folder as the relative path "
                              f"{folder}, which cannot be found for sure: resume it with "
                              f"'learndrop train --resume FOLDER/checkpoint.pt'")
    if folder is None or not folder.is_dir():
        raise CheckpointError(f"run '{run.name}' has no run folder any more "
                              f"({run.output_dir or 'none recorded'}): start it again with "
                              f"'learndrop train'")
    checkpoint, config_file = folder / "checkpoint.pt", folder / "config.toml"
    again = f"start it again with 'learndrop train --config {config_file}'"
    if not checkpoint.is_file():
        raise CheckpointError(f"run '{run.name}' has no checkpoint yet (it ended before its "
                              f"first epoch was complete): {again}")
    if not config_file.is_file():
        raise CheckpointError(f"run '{run.name}' has no config.toml in {folder}: resume it "
                              f"with 'learndrop train --resume {checkpoint} --config FILE'")
    cfg = load_config(config_file)
    cfg.output.dir = str(folder.parent)
    cfg.output.name = folder.name
    if epochs is not None:
        cfg.set("train.epochs", epochs, source="command line")
    cfg.check()
    done = checkpoint_epoch(load_checkpoint(checkpoint, mmap=True), checkpoint)
    if done <= 0:
        raise CheckpointError(f"run '{run.name}' stopped before its first epoch was "
                              f"complete, so there is nothing to continue: {again}")
    if epochs is not None and cfg.train.epochs < done:
        raise CheckpointError(f"run '{run.name}' has already trained {done} epochs: give "
                              f"--epochs {done + 1} or more to train it further")
    if run.status == "finished" and done >= cfg.train.epochs:
        raise CheckpointError(f"run '{run.name}' has finished all its {done} epochs: give "
                              f"--epochs with more than {done} to train it further")
    return checkpoint, cfg


def _install_signal_handlers(control: Any) -> None:
    """SIGINT/SIGTERM stop cleanly: finish the batch, checkpoint, keep the run."""

    def handler(signum: int, frame: Any) -> None:
        if control.stop_requested:  # a second Ctrl-C ends at once
            raise KeyboardInterrupt
        sys.stderr.write("\nstopping after this batch (again to quit at once)\n")
        control.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, handler)
        except ValueError:  # not the main thread
            pass


def _cmd_bench(args: argparse.Namespace) -> int:
    from ._bench import run_bench

    cfg = build_config_for_bench(args)
    if cfg.train.nproc > 1:
        raise LearnDropError("learndrop bench trains one process at a time; for data-parallel "
                             "runs use 'python scripts/bench_ddp.py --nproc N'")
    recorders: list[Any] = []  # every run's recorder: each must end in the store or a journal

    def callbacks() -> list[Any]:
        made = _store_recorder(args)
        recorders.extend(made)
        return made

    result = run_bench(cfg, preset=args.preset, output=args.output, quiet=args.quiet,
                       callbacks_factory=callbacks, store_args=args, seeds=args.seeds,
                       target_accuracy=args.target_accuracy)
    if args.json:
        print(json.dumps(result, default=str))
    return _recording_outcome(recorders)


def build_config_for_bench(args: argparse.Namespace) -> RunConfig:
    from ._bench import preset_config

    if args.preset and args.config:
        raise LearnDropError("give either --preset or --config, not both")
    cfg = preset_config(args.preset) if args.preset else (
        load_config(args.config) if args.config else RunConfig())
    return _apply_flags(cfg, args)


def _cmd_models(args: argparse.Namespace) -> int:
    from ..models import SMALL_IMAGE_SIZE, list_models, model_info, model_sources

    infos = [model_info(name) for name in list_models()]
    width = max(len(i.name) for i in infos)
    print(f"{'model':<{width}}  {'family':<12} {'pixels':<7} description")
    for info in infos:
        mark = "*" if info.fits_small_images else " "
        print(f"{info.name:<{width}}  {info.family:<12} {info.size_text():<5} {mark} "
              f"{info.description}")
    for source in model_sources():
        print(f"{source + ':NAME':<{width}}  {source:<12} {'':<5}   any {source} model by its "
              f"{source} name (needs {source})")
    print(f"pixels: the smallest image side a model takes (=N: exactly N); "
          f"* fits {SMALL_IMAGE_SIZE} px images. Set data.image_size to match.")
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from ..data import dataset_info, list_datasets

    for name in list_datasets():
        info = dataset_info(name)
        where = "download or local folder" if info.downloadable else "offline"
        print(f"{name:<13} {where:<24} {info.description}")
    return 0


def _cmd_studio(args: argparse.Namespace) -> int:
    return _run_studio(list(args.studio_args))


def _run_studio(argv: list[str]) -> int:
    # The app is a separate front end that registers itself as the "studio" entry point.
    app_main = load_plugin("learndrop.frontends", "studio", what="the desktop app",
                           install="install PySide6 and pyqtgraph, or use 'learndrop train'")
    return int(app_main(argv))


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="learndrop", description="Train CNNs faster by dropping layers that have "
                "stopped learning.")
    p.add_argument("--version", action="version", version=_version())
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train one model (Learn&Drop, or --baseline)")
    _add_config_flags(t)
    t.add_argument("--baseline", action="store_true", help="train the full network, no drops")
    t.add_argument("--print-config", action="store_true",
                   help="print the complete config for these flags as TOML and exit")
    t.add_argument("--resume", metavar="CHECKPOINT", help="continue from a run's checkpoint.pt")
    t.add_argument("--json", action="store_true", help="print a one-line JSON summary last")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument("--store", metavar="PATH", help="run store file (default: LEARNDROP_HOME)")
    t.add_argument("--no-store", action="store_true", help="do not record the run")
    t.add_argument("--tensorboard", metavar="DIR", help="write scores, drops, savings, loss "
                   "and accuracy live to TensorBoard in DIR/<run name> (needs tensorboard)")
    t.set_defaults(func=_cmd_train)

    r = sub.add_parser("resume", help="continue a stopped or interrupted run where its last "
                       "checkpoint left it")
    r.add_argument("run", metavar="RUN", help="run name, unique start of one, or id "
                   "(see 'learndrop runs')")
    r.add_argument("--epochs", metavar="N", help="train to this many epochs in all (default: "
                   "the run's own)")
    r.add_argument("--json", action="store_true", help="print a one-line JSON summary last")
    r.add_argument("--quiet", action="store_true", help="no progress output")
    r.add_argument("--store", metavar="PATH", help="run store file (default: LEARNDROP_HOME)")
    r.set_defaults(func=_cmd_resume)

    b = sub.add_parser("bench", help="full baseline vs Learn&Drop vs time-matched baseline")
    _add_config_flags(b)
    b.add_argument("--preset", help="a ready benchmark: cpu-fmnist-finetune, "
                   "cpu-fmnist-scratch (Fashion-MNIST: apt-get install dataset-fashion-mnist), "
                   "cpu-resnet20, cpu-resnet20-finetune, gpu-resnet18, quick-digits")
    b.add_argument("--seeds", type=_positive_int, default=1, metavar="N",
                   help="train every run with N seeds (same data); the table gives means and "
                   "spreads (default 1)")
    b.add_argument("--target-accuracy", type=_share, default=None, metavar="SHARE",
                   help="validation accuracy for the time-to-accuracy column, e.g. 0.9 "
                   "(default: the baseline's final mean minus 0.005)")
    b.add_argument("--output", metavar="FILE", help="where to write the JSON table")
    b.add_argument("--json", action="store_true", help="print the JSON result last")
    b.add_argument("--quiet", action="store_true", help="no progress output")
    b.add_argument("--store", metavar="PATH", help="run store file (default: LEARNDROP_HOME)")
    b.add_argument("--no-store", action="store_true", help="do not record the runs")
    b.set_defaults(func=_cmd_bench)

    sub.add_parser("models", help="list the models").set_defaults(func=_cmd_models)
    sub.add_parser("datasets", help="list the data sets").set_defaults(func=_cmd_datasets)
    s = sub.add_parser("studio", help="open the desktop app", add_help=False)
    s.add_argument("studio_args", nargs=argparse.REMAINDER)
    s.set_defaults(func=_cmd_studio)
    add_store_commands(sub)
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not a share between 0 and 1 (0.9 is "
                                         f"90%)")
    return value


def _version() -> str:
    try:
        from importlib.metadata import version

        return f"learndrop {version('learndrop')}"
    except Exception:  # noqa: BLE001
        return "learndrop (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    for name, mode in (("stdout", "w"), ("stderr", "w")):  # closed, or pythonw's None
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, mode, encoding="utf-8"))  # noqa: SIM115
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # the console prints the engine's notices (on_warning); Python's copy would repeat them
    warnings.filterwarnings("ignore", category=LearnDropWarning)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["studio"]:  # the app parses its own flags (argparse's REMAINDER cannot)
        try:
            return _run_studio(argv[1:])
        except LearnDropError as exc:
            print(f"learndrop: error: {exc}", file=sys.stderr)
            return exc.exit_code
    if os.environ.get("LEARNDROP_LAUNCHER_PID"):  # a rank of 'learndrop train --nproc'
        from ._launch import watch_launcher

        watch_launcher()
    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except LearnDropError as exc:
        print(f"learndrop: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("learndrop: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a program that stopped reading (e.g. head)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no tracebacks
        if args.debug:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"learndrop: internal error: {type(exc).__name__}: {first} (run again with "
              f"--debug for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

