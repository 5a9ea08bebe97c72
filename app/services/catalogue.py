"""What this installation and this machine offer a run: the model and data set catalogues,
the devices present, and a configuration's problems as the engine's own checks see them.

The setup form asks here rather than importing the engine's packages (and PyTorch with them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from learndrop.core.config import RunConfig
from learndrop.core.data import dataset_info, image_folder_problem, list_datasets, needs_download
from learndrop.core.errors import DeviceError
from learndrop.core.models import list_models, model_info
from learndrop.core.training import available_devices, config_problems, resolve_device

__all__ = ["model_names", "dataset_names", "describe", "device_choices", "run_problems",
           "download_note"]

log = logging.getLogger(__name__)


def _names(loader: Callable[[], list[str]], what: str) -> list[str]:
    try:
        return [str(name) for name in loader()]
    except Exception as exc:  # noqa: BLE001 - a broken catalogue must not break the form
        log.warning("could not list %s: %s", what, exc)
        return []


def model_names() -> list[str]:
    """Every registered model, sorted."""
    return _names(list_models, "models")


def dataset_names() -> list[str]:
    """Every data set of the catalogue, sorted."""
    return _names(list_datasets, "data sets")


def describe(path: str, name: str) -> str:
    """One line about the model (``path`` = ``model.name``) or data set (``data.dataset``)
    called ``name``; empty when it is unknown."""
    try:
        if path == "model.name":
            return " ".join(model_info(name).description.split())
        if path == "data.dataset":
            return " ".join(dataset_info(name).description.split())
    except Exception:  # noqa: BLE001 - unknown or not installed: no description
        return ""
    return ""


def device_choices() -> list[str]:
    """``auto`` and the devices present here, best first."""
    return ["auto", *available_devices()]


def _must_download(cfg: RunConfig) -> bool:
    try:
        return needs_download(cfg.data)
    except Exception:  # noqa: BLE001 - an unknown data set is the config's own problem
        return False


def download_note(cfg: RunConfig) -> str:
    """What the run will download before it trains (empty when nothing)."""
    if not cfg.data.download or not _must_download(cfg):
        return ""
    folder = cfg.data.root or "the user data folder"
    return f"{cfg.data.dataset} is downloaded into {folder} when the run starts"


def run_problems(cfg: RunConfig) -> list[tuple[str, str]]:
    """Invalid settings as (field path, one-line message): the checks of a run (the config's
    own, then the model and data catalogues'), a folder of images that is not there, a data
    set that needs a download not allowed, and a device this machine does not have (in the
    words of the trainer's device check)."""
    out = config_problems(cfg)
    if cfg.data.dataset == "imagefolder" and cfg.data.root:  # unset: the config says so
        folder_problem = image_folder_problem(cfg.data.root)
        if folder_problem:
            out.append(("data.root", folder_problem))
    if not cfg.data.download and _must_download(cfg):
        folder = cfg.data.root or "the user data folder"
        out.append(("data.dataset", f"{cfg.data.dataset} is not in {folder} yet: tick "
                                    f"\u201cDownload\u201d (under Advanced settings) to fetch "
                                    f"it when the run starts, or choose the \u201cData "
                                    f"folder\u201d that holds it"))
    if cfg.train.device != "auto":
        try:
            # presence only: mixed precision off, so no GPU is initialised for the check
            resolve_device(cfg.train.device, amp="off", channels_last="off")
        except DeviceError as exc:
            out.append(("train.device", exc.message))
    return out
