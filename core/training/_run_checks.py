"""A config checked as a run: its own checks, then the model and data catalogues.

:class:`~learndrop.core.config.RunConfig` checks only what it can see by itself (types,
bounds, settings that go together), so the config stays a plain value object that imports no
PyTorch. Whether its names name something this installation has (a model, a data set, the
classes of that data set), and what that data set needs, is asked here: by the trainer before
it builds a run, by the command line before it starts one and by the app's form as the
settings are edited.
"""

from __future__ import annotations

from ..config import RunConfig
from ..data import classes_problem, list_datasets
from ..errors import ConfigError
from ..models import is_model_name, unknown_model_message

__all__ = ["catalogue_problems", "config_problems", "check_config"]


def catalogue_problems(cfg: RunConfig) -> list[tuple[str, str]]:
    """The settings that name no model, data set or class of this installation, or that the
    data set needs and lacks, as (field path, one-line message)."""
    out: list[tuple[str, str]] = []
    if not is_model_name(cfg.model.name):
        out.append(("model.name", unknown_model_message(cfg.model.name)))
    if cfg.data.dataset not in list_datasets():
        out.append(("data.dataset", f"unknown data set '{cfg.data.dataset}': pick one of "
                    f"{', '.join(list_datasets())}"))
    classes = classes_problem(cfg.data.classes, cfg.data.dataset)
    if classes:
        out.append(("data.classes", classes))
    if cfg.data.dataset == "imagefolder" and not cfg.data.root:
        out.append(("data.root", "data.dataset=imagefolder needs data.root: the folder with "
                    "one sub-folder of images per class"))
    return out


def config_problems(cfg: RunConfig) -> list[tuple[str, str]]:
    """Every reason ``cfg`` cannot be run, as (field path, one-line message): the config's
    own checks, then the catalogues'; empty when it can."""
    return cfg.problems() + catalogue_problems(cfg)


def check_config(cfg: RunConfig) -> RunConfig:
    """``cfg``, or a :class:`~learndrop.core.errors.ConfigError` naming its first problem as
    a run (see :func:`config_problems`)."""
    problems = config_problems(cfg)
    if problems:
        path, message = problems[0]
        raise ConfigError(message, field=path)
    return cfg
