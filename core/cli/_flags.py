"""The settings flags of the commands that train: ``--section.name`` for every setting.

The settings people change most also have a short flag (``--lr``), declared with the setting
(:data:`~learndrop.core.config.FLAGS`); flags override the config file given with
``--config``.
"""

from __future__ import annotations

import argparse

from ..config import FLAGS, RunConfig, field_choices, field_doc, field_paths, load_config
from ..training import check_config

__all__ = ["add_config_flags", "build_config", "apply_flags", "positive_int"]


def _help(path: str) -> str:
    return field_doc(path).replace("%", "%%")  # argparse %-formats help texts


def add_config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML or JSON config file; flags override it")
    g = p.add_argument_group("common settings")
    back = {v: k for k, v in FLAGS.items()}
    for alias, path in FLAGS.items():
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
    return apply_flags(cfg, args)


def apply_flags(cfg: RunConfig, args: argparse.Namespace) -> RunConfig:
    """Every ``--section.name`` flag given on the command line, applied to ``cfg``, checked
    as a run (the model and data set names against the catalogues too)."""
    for key, value in vars(args).items():
        if key.startswith("set:") and value is not None:
            cfg.set(key[4:], value, source="command line")
    return check_config(cfg)


def positive_int(text: str) -> int:
    """An ``argparse`` type: a whole number of at least 1 (a count of seeds, runs, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value
