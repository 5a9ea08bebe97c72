"""``learndrop resume``: continue a stored run from its folder's checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..config import RunConfig, load_config
from ._console import Console
from ._running import install_signal_handlers, launches, recording_outcome, reports
from ._summary_text import json_summary, print_summary

__all__ = ["cmd_resume"]


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue a stored run from its folder's checkpoint, into the same folder and run.

    The run is claimed in the store first (one transaction), and the trainer locks its
    folder, so two ``resume`` of one run never train together."""
    from ..store import RunStore, StoreRecorder
    from ..training import RunControl, Trainer, distributed_environment

    if not distributed_environment() or not reports():  # the launcher, or ranks 1..
        with RunStore(args.store) as store:
            run = store.get_run(args.run)
        checkpoint, cfg = _resumable(run, args.epochs)
        if launches(args, cfg):  # every rank of the run it was; rank 0 claims it
            from ._launch import launch

            return launch(args.argv, cfg.train.nproc)
        if not reports():  # a rank that neither records nor reports
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
        install_signal_handlers(control)
        callbacks = [Console(args.quiet), recorder]
        trainer = Trainer(cfg, callbacks, control, resume_from=checkpoint,
                          run_folder=checkpoint.parent, finish_complete=True)
        result = trainer.fit()
    finally:
        if recorder.run_id is None and recorder.journal is None:  # never started
            with RunStore(store_path) as store:
                store.release_run(run.id, *before)
    if not args.quiet:
        print_summary(result.summary)
    if args.json:
        print(json_summary(result.summary))
    return recording_outcome(callbacks)


def _resumable(run: Any, epochs: str | None) -> tuple[Path, RunConfig]:
    """The checkpoint and config to resume stored run ``run`` with (to ``epochs`` in all,
    when given); a one-line error for a run that cannot be resumed. The run is claimed by
    this process already (``claim_run`` refuses one that is still running)."""
    from ..errors import CheckpointError
    from ..training import check_config, checkpoint_epoch, load_checkpoint

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
    check_config(cfg)
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
