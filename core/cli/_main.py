"""The ``learndrop`` command line.

Exit codes: 0 done, 2 bad input (one line saying what to fix), 1 failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from ..config import RunConfig, config_to_toml, load_config
from ..engine import LearnDropWarning
from ..errors import LearnDropError, first_line
from ..plugins import load_plugin
from ._console import Console
from ._flags import add_config_flags, apply_flags, build_config, positive_int
from ._resume_command import cmd_resume
from ._running import (
    install_signal_handlers,
    launches,
    recording_outcome,
    reports,
    store_recorder,
    tensorboard,
    tensorboard_incomplete,
)
from ._store_commands import add_commands as add_store_commands
from ._summary_text import json_summary, print_summary
from ._sweep_command import add_commands as add_sweep_commands
from ._whatif_command import add_command as add_whatif_command

__all__ = ["main", "build_config"]


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input in one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ---- commands ---------------------------------------------------------------------------------
def _cmd_train(args: argparse.Namespace) -> int:
    from ..training import RunControl, Trainer

    cfg = build_config(args)
    if args.baseline:
        cfg.drop.enabled = False
    if args.print_config:
        sys.stdout.write(config_to_toml(cfg))
        return 0
    # checked before any rank starts: a folder that cannot be written is refused here
    extra = [tensorboard(args.tensorboard)] if args.tensorboard and reports() else []
    if launches(args, cfg):
        from ._launch import launch

        return launch(args.argv, cfg.train.nproc)
    control = RunControl()
    install_signal_handlers(control)
    callbacks = ([Console(args.quiet), *store_recorder(args), *extra] if reports()
                 else [])
    trainer = Trainer(cfg, callbacks, control, resume_from=args.resume)
    result = trainer.fit()
    if not reports():
        return 0
    if not args.quiet:
        print_summary(result.summary)
        for reason in tensorboard_incomplete(extra):
            print(f"TensorBoard output incomplete: {reason}")
    if args.json:
        print(json_summary(result.summary))
    return recording_outcome(callbacks)


def _cmd_bench(args: argparse.Namespace) -> int:
    from ._bench import run_bench

    cfg = build_config_for_bench(args)
    if cfg.train.nproc > 1:
        raise LearnDropError("learndrop bench trains one process at a time; for data-parallel "
                             "runs use 'python scripts/bench_ddp.py --nproc N'")
    recorders: list[Any] = []  # every run's recorder: each must end in the store or a journal

    def callbacks() -> list[Any]:
        made = store_recorder(args)
        recorders.extend(made)
        return made

    result = run_bench(cfg, preset=args.preset, output=args.output, quiet=args.quiet,
                       callbacks_factory=callbacks, store_args=args, seeds=args.seeds,
                       target_accuracy=args.target_accuracy)
    if args.json:
        print(json.dumps(result, default=str))
    return recording_outcome(recorders)


def build_config_for_bench(args: argparse.Namespace) -> RunConfig:
    from ._bench import preset_config

    if args.preset and args.config:
        raise LearnDropError("give either --preset or --config, not both")
    cfg = preset_config(args.preset) if args.preset else (
        load_config(args.config) if args.config else RunConfig())
    return apply_flags(cfg, args)


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
    add_config_flags(t)
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
    r.set_defaults(func=cmd_resume)

    b = sub.add_parser("bench", help="full baseline, Learn&Drop, and both at Learn&Drop's time")
    add_config_flags(b)
    b.add_argument("--preset", help="a ready benchmark: cpu-fmnist-finetune, "
                   "cpu-fmnist-scratch (Fashion-MNIST: apt-get install dataset-fashion-mnist), "
                   "cpu-resnet20, cpu-resnet20-finetune, gpu-resnet18, quick-digits")
    b.add_argument("--seeds", type=positive_int, default=1, metavar="N",
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
    add_whatif_command(sub)
    add_sweep_commands(sub)
    return p


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
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # named with the command whose help lists what it takes
        where = " ".join(filter(None, ("learndrop", getattr(args, "command", None))))
        parser.exit(2, f"learndrop: error: unrecognized arguments: {' '.join(unknown)} "
                       f"(see {where} --help)\n")
    args.argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    watched = _WatchedOutput(sys.stdout)
    sys.stdout = watched  # type: ignore[assignment]
    try:
        return _run(args, watched)
    finally:
        if sys.stdout is watched:
            sys.stdout = watched.stream


def _run(args: argparse.Namespace, watched: _WatchedOutput) -> int:
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a full disk behind standard output says so here, not at exit
        return code
    except LearnDropError as exc:
        if exc.exit_code != 2 or not _other_rank():  # bad input: rank 0 says it for all
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
    except OSError as exc:
        failure = _stdout_failure(watched)
        if failure is None:
            return _internal_error(args, exc)
        print(f"learndrop: error: cannot write to standard output ({failure}); the command's "
              f"output is lost", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no tracebacks
        return _internal_error(args, exc)


def _other_rank() -> bool:
    """Whether this process is rank 1.. of a data-parallel run (told by the environment
    alone: an error's path imports no PyTorch)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and os.environ.get("RANK", "0") != "0"
    except ValueError:
        return False


class _WatchedOutput:
    """Standard output as the command writes it, noting a write that fails (a full disk,
    /dev/full, an I/O error), so that the failure is told from any other ``OSError``."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.failure: OSError | None = None

    def write(self, text: str) -> Any:
        try:
            return self.stream.write(text)
        except OSError as exc:
            self.failure = exc
            raise

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            self.failure = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _stdout_failure(watched: _WatchedOutput) -> str | None:
    """Why standard output could not be written, or ``None`` when it could. When it could
    not, it is pointed at the null device, so that the exit's own flush does not fail again."""
    if watched.failure is None:
        return None
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), watched.stream.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return str(watched.failure.strerror or first_line(watched.failure))


def _internal_error(args: argparse.Namespace, exc: Exception) -> int:
    if args.debug:
        raise exc
    first = str(exc).splitlines()[0] if str(exc) else ""
    print(f"learndrop: internal error: {type(exc).__name__}: {first} (run again with "
          f"--debug for details)", file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

