"""The one typed configuration of a run.

A :class:`RunConfig` is a tree of small dataclasses (data, model, optim, drop, train, output).
It is what the command line's flags, the app's form and the config files all bind to, and it is
saved next to every run. Files are TOML or JSON; loading never evaluates code, rejects unknown
keys and checks every value's type and range, with a one-line error naming the field.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomli_w

from ._setting_checks import duration_seconds, output_problems, time_budget_problem
from .engine import DropPolicy
from .errors import ConfigError
from .fields import (
    ValueRefused,
    choices_of,
    doc,
    label_of,
    typed_value,
    value_problem,
)

__all__ = [
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "DropConfig",
    "TrainConfig",
    "OutputConfig",
    "RunConfig",
    "load_config",
    "save_config",
    "config_to_toml",
    "field_paths",
    "field_doc",
    "field_label",
    "field_folder",
    "FLAGS",
    "setting_of",
    "form_groups",
    "cache_augment_problem",
    "duration_seconds",
]

OptimizerName = Literal["sgd", "adam", "adamw"]
ScheduleName = Literal["cosine", "step", "onecycle", "constant"]
DeviceName = Literal["auto", "cuda", "mps", "cpu"]
Toggle = Literal["auto", "on", "off"]
BadFiles = Literal["skip", "stop"]




@dataclass
class DataConfig:
    dataset: str = field(default="digits", metadata=doc(
        "Data set: digits (offline default), synthetic, mnist, fashionmnist, cifar10, cifar100, "
        "imagenette or imagefolder.",
        label="Data set", flag="dataset", group="Model and data", place=2))
    root: str = field(default="", metadata=doc(
        "Local folder holding the data set (empty: the user data folder).",
        label="Data folder", flag="data-root", group="Model and data", place=3,
        folder="default: the user data folder"))
    download: bool = field(default=False, metadata=doc(
        "Download torchvision data sets that are not in the folder yet.", flag="download"))
    image_size: int = field(default=0, metadata=doc(
        "Resize images to this side in pixels (0: the data set's own size).", min=0, max=1024,
        label="Image size (px)", flag="image-size"))
    augment: bool = field(default=False, metadata=doc(
        "Random crop and flip on training images (not allowed with mode=cache).", flag="augment"))
    val_fraction: float = field(default=0.2, metadata=doc(
        "Share of samples held out for validation where the data set has no split.",
        min=0.01, max=0.9, label="Validation share"))
    limit: int = field(default=0, metadata=doc(
        "Use at most this many training samples (0: all).", min=0, label="Sample limit"))
    seed: int = field(default=-1, metadata=doc(
        "Seed for generating, splitting and sub-sampling the data (-1: train.seed); fix it "
        "to train several seeds on the same data.", min=-1, max=2**32 - 1))
    classes: str = field(default="", metadata=doc(
        "Use only these classes, e.g. 0-4 or 1,3,5, numbered from 0 in that order (empty: "
        "all; mnist, fashionmnist, cifar10, cifar100)."))
    synthetic_samples: int = field(default=4000, metadata=doc(
        "Synthetic data: number of samples (train and validation together).", min=20,
        max=10_000_000))
    synthetic_classes: int = field(default=10, metadata=doc(
        "Synthetic data: number of classes.", min=2, max=1000))
    synthetic_size: int = field(default=32, metadata=doc(
        "Synthetic data: image side in pixels.", min=8, max=512))
    synthetic_noise: float = field(default=1.0, metadata=doc(
        "Synthetic data: noise level (higher is harder).", min=0.0, max=100.0))
    bad_files: BadFiles = field(default="skip", metadata=doc(
        "Unreadable images in a folder: skip them with a warning, or stop.",
        label="Unreadable images"))
    num_workers: int = field(default=0, metadata=doc(
        "Data loader worker processes.", min=0, max=64, label="Loader workers"))


@dataclass
class ModelConfig:
    name: str = field(default="small_cnn", metadata=doc(
        "Model from the registry (learndrop models lists them), or SOURCE:NAME from an "
        "installed model source, e.g. timm:resnet18.",
        label="Model", flag="model", group="Model and data", place=1))
    width: float = field(default=1.0, metadata=doc(
        "Channel width multiplier for the models that support it.", min=0.125, max=8.0,
        label="Width multiplier"))
    weights: str = field(default="", metadata=doc(
        "Start from these weights (a run's final.pt or a state dict file) to fine-tune; layers "
        "whose shapes differ, such as a new head, start fresh (empty: random init)."))


@dataclass
class OptimConfig:
    optimizer: OptimizerName = field(default="sgd", metadata=doc(
        "Optimizer.", flag="optimizer", group="Training", place=6))
    lr: float = field(default=0.05, metadata=doc(
        "Peak learning rate.", min=1e-8, max=10.0,
        label="Learning rate", flag="lr", group="Training", place=7))
    momentum: float = field(default=0.9, metadata=doc(
        "SGD momentum (Adam: beta1).", min=0.0, max=0.999))
    weight_decay: float = field(default=5e-4, metadata=doc(
        "Weight decay (decoupled for AdamW).", min=0.0, max=1.0))
    schedule: ScheduleName = field(default="cosine", metadata=doc(
        "Learning-rate schedule over the whole run, stepped every batch.",
        label="LR schedule", flag="schedule", group="Training", place=8))
    step_every: int = field(default=0, metadata=doc(
        "Step schedule: epochs between decays (0: at 50% and 75% of the run).", min=0,
        label="Step every (epochs)"))
    gamma: float = field(default=0.1, metadata=doc(
        "Step schedule: decay factor.", min=1e-6, max=1.0, label="Step decay"))
    warmup_epochs: float = field(default=0.0, metadata=doc(
        "Linear learning-rate warm-up at the start (epochs).", min=0.0, max=1000.0,
        label="LR warm-up (epochs)"))


#: the ``[drop]`` section is the engine's own declaration of the drop policy
DropConfig = DropPolicy


@dataclass
class TrainConfig:
    epochs: int = field(default=10, metadata=doc(
        "Training epochs.", min=1, max=100000, flag="epochs", group="Training", place=4))
    batch_size: int = field(default=64, metadata=doc(
        "Batch size.", min=1, max=1_000_000, flag="batch-size", group="Training", place=5))
    device: DeviceName = field(default="auto", metadata=doc(
        "auto picks cuda, then mps, then cpu.", flag="device", group="Training", place=9))
    amp: Toggle = field(default="auto", metadata=doc(
        "Mixed precision (auto: on with CUDA).",
        label="Mixed precision", flag="amp", group="Training", place=10))
    channels_last: Toggle = field(default="auto", metadata=doc(
        "channels_last memory format (auto: on with CUDA).", label="channels_last"))
    seed: int = field(default=0, metadata=doc(
        "Random seed.", min=0, max=2**32 - 1, flag="seed"))
    log_every: int = field(default=20, metadata=doc(
        "Batches between progress reports (loss is read from the device only then).", min=1,
        label="Report every (batches)"))
    deterministic: bool = field(default=False, metadata=doc(
        "Ask PyTorch for deterministic kernels (slower)."))
    nproc: int = field(default=1, metadata=doc(
        "Processes training data-parallel on this machine (one GPU each with CUDA); "
        "batch size is per process.", min=1, max=1024, flag="nproc"))
    time_budget: str = field(default="", metadata=doc(
        "Wall-clock budget such as 90s, 10m or 1h30m (a bare number: seconds; empty: none): "
        "training ends when it is spent, the learning-rate schedule follows the time spent, "
        "and epochs is the most it may run.", label="Time budget", flag="time-budget"))


@dataclass
class OutputConfig:
    dir: str = field(default="", metadata=doc(
        "Folder for run outputs (empty: the run store's folder).",
        label="Output folder", flag="output-dir", folder="default: the run store"))
    name: str = field(default="", metadata=doc(
        "Run name (empty: generated).", label="Run name", flag="run-name"))
    checkpoint_every: int = field(default=1, metadata=doc(
        "Epochs between checkpoints (0: only at the end).", min=0,
        label="Checkpoint every (epochs)"))


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    drop: DropConfig = field(default_factory=DropConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    # ---- conversion ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> RunConfig:
        """Build from a nested dict, checking keys, types and ranges."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a table of sections, got {_type_name(data)}")
        cfg = cls()
        sections = {f.name: f for f in dataclasses.fields(cls)}
        errors: list[ConfigError] = []  # every problem of the file, not only its first
        for key, value in data.items():
            if key not in sections or not isinstance(value, dict):
                errors.append(ConfigError(
                    f"{source}: unknown section '{key}' (known: {', '.join(sections)})"
                    if key not in sections else f"{source}: section '{key}' must be a "
                    f"table, got {_type_name(value)}", field=str(key)))
                continue
            for name, raw in value.items():
                try:
                    cfg.set(f"{key}.{name}", raw, source=source)
                except ConfigError as exc:
                    errors.append(exc)
        refused = {e.field for e in errors}
        errors += [ConfigError(message, field=path) for path, message in cfg.problems()
                   if path not in refused]
        if errors:
            raise ConfigError.combined(source, errors)
        return cfg

    def copy(self) -> RunConfig:
        return RunConfig.from_dict(json.loads(json.dumps(self.to_dict())))

    # ---- field access ----------------------------------------------------------------------
    def get(self, path: str) -> Any:
        section, name = _split(path)
        return getattr(getattr(self, section), name)

    def set(self, path: str, value: Any, source: str = "config") -> None:
        """Set one field by dotted path, converting and checking the value's type."""
        section, name = _split(path)
        if section not in _SECTION_TYPES:
            raise ConfigError(f"{source}: unknown section '{section}'", field=path)
        fields = {f.name: f for f in dataclasses.fields(_SECTION_TYPES[section])}
        if name not in fields:
            close = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: unknown setting '{path}' (known in [{section}]: "
                              f"{close})", field=path)
        hint = _HINTS[section][name]
        if path == "train.time_budget" and type(value) in (int, float):
            value = f"{value:g}s"  # a bare number in a config file: seconds, as the text "90"
        converted = _coerce(value, hint, path, source)
        setattr(getattr(self, section), name, converted)

    # ---- validation ------------------------------------------------------------------------
    def problems(self) -> list[tuple[str, str]]:
        """Every invalid value as (field path, one-line message); empty when all is well.

        Only what the config sees by itself: whether the model and data set are ones this
        installation has, and what that data set needs, is the run's check
        (:func:`learndrop.core.training.config_problems`)."""
        out: list[tuple[str, str]] = []
        for section, kind in _SECTION_TYPES.items():
            if kind is DropPolicy:  # checks itself: the engine uses the same check
                out += self.drop.problems()
                continue
            for f in dataclasses.fields(kind):
                path = f"{section}.{f.name}"
                message = value_problem(path, getattr(getattr(self, section), f.name), f,
                                        _HINTS[section][f.name])
                if message:
                    out.append((path, message))
        budget = time_budget_problem(self.train.time_budget, self.train.nproc)
        if budget:
            out.append(("train.time_budget", budget))
        cache = cache_augment_problem(self.drop, augmented=self.data.augment)
        if cache:
            out.append(cache)
        return out + output_problems(self.output.name, self.output.dir)

    def check(self) -> RunConfig:
        problems = self.problems()
        if problems:
            path, message = problems[0]
            raise ConfigError(message, field=path)
        return self


_SECTION_TYPES: dict[str, type] = dict(typing.get_type_hints(RunConfig))
_HINTS: dict[str, dict[str, Any]] = {s: typing.get_type_hints(t)
                                     for s, t in _SECTION_TYPES.items()}
_FIELDS: dict[str, dataclasses.Field[Any]] = {
    f"{s}.{f.name}": f for s, t in _SECTION_TYPES.items() for f in dataclasses.fields(t)}


def field_paths() -> list[str]:
    """Every setting's dotted path, in declaration order."""
    return list(_FIELDS)


def field_doc(path: str) -> str:
    return str(_FIELDS[path].metadata.get("doc", ""))


def field_info(path: str) -> dataclasses.Field[Any]:
    return _FIELDS[path]


def field_type(path: str) -> Any:
    section, name = _split(path)
    return _HINTS[section][name]


def field_choices(path: str) -> tuple[str, ...]:
    return choices_of(field_type(path))


# ---- presentation, as each field declares it ------------------------------------------------
def field_label(path: str) -> str:
    """The form's label of a setting ("Data folder" for ``data.root``)."""
    return label_of(_FIELDS[path])


def field_folder(path: str) -> str:
    """For a folder setting, what leaving it empty means; empty for every other setting."""
    return str(_FIELDS[path].metadata.get("folder", ""))


def _flags() -> dict[str, str]:
    out: dict[str, str] = {}
    for path, f in _FIELDS.items():
        flag = f.metadata.get("flag")
        if not flag:
            continue
        if flag in out or flag in _FIELDS:
            raise TypeError(f"settings {out.get(flag, flag)} and {path} both declare the "
                            f"flag --{flag}")
        out[flag] = path
    return out


#: the short command-line flags (``batch-size``, without the dashes) and the setting each sets,
#: as the fields declare them: the one mapping from flags to settings
FLAGS: dict[str, str] = _flags()


def setting_of(word: str) -> str | None:
    """The setting a command-line word names, through :data:`FLAGS`: its path
    (``data.root``), its short flag (``data-root``, also written ``data_root``), or a
    setting's own name when only one section has it (``log_every``); else ``None``."""
    if word in _FIELDS:
        return word
    flag = word.replace("_", "-")
    if flag in FLAGS:
        return FLAGS[flag]
    named = [p for p in _FIELDS if p.split(".", 1)[1] == word.replace("-", "_")]
    return named[0] if len(named) == 1 else None


def form_groups() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The form's main groups as (title, setting paths), each in its declared place; groups
    come in the order of their first setting. Settings without a group are not in it."""
    placed = sorted((int(f.metadata.get("place", 0)), path) for path, f in _FIELDS.items()
                    if f.metadata.get("group"))
    groups: dict[str, list[str]] = {}
    for _place, path in placed:
        groups.setdefault(str(_FIELDS[path].metadata["group"]), []).append(path)
    return tuple((title, tuple(paths)) for title, paths in groups.items())


def cache_augment_problem(drop: DropPolicy, augmented: bool) -> tuple[str, str] | None:
    """The one refusal of ``drop.mode=cache`` with training data that changes every epoch
    (random augmentation), as (field path, message); ``None`` when the two go together."""
    if drop.enabled and drop.mode == "cache" and augmented:
        return ("drop.mode", "drop.mode=cache reuses each sample's activations, which "
                "random augmentation changes every epoch: turn data.augment off or use "
                "mode=freeze")
    return None


def _split(path: str) -> tuple[str, str]:
    if path.count(".") != 1:
        raise ConfigError(f"setting '{path}' must look like section.name, e.g. train.epochs",
                          field=path)
    section, name = path.split(".")
    return section, name


def _type_name(value: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "text",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def _coerce(value: Any, hint: Any, path: str, source: str) -> Any:
    """``value`` as read from ``source``, converted to the setting's type (the one table of
    type checks, :data:`~learndrop.core.fields.TYPE_CHECKS`)."""
    try:
        return typed_value(hint, value, parse=True)
    except ValueRefused as exc:
        raise ConfigError(f"{source}: {path} {exc}", field=path) from None
    except TypeError:
        raise TypeError(f"unsupported config type {hint!r} for {path}") from None


# ---- files ---------------------------------------------------------------------------------
def load_config(path: str | Path) -> RunConfig:
    """Read a TOML or JSON config file (chosen by suffix; otherwise by content)."""
    p = Path(path)
    try:
        if p.exists() and not p.is_dir() and not p.is_file():  # a FIFO would block forever
            raise ConfigError(f"config file {p} is not a regular file (a FIFO, device or "
                              f"socket): give the path of a .toml or .json file")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist: check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {p} is a folder: give the path of a .toml or .json "
                          f"file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ConfigError(f"cannot read config file {p}: {exc}") from None
    text = text.removeprefix("\ufeff")  # a byte-order mark (some Windows editors write one)
    suffix = p.suffix.lower()
    data: Any
    if suffix == ".json" or (suffix != ".toml" and text.lstrip().startswith("{")):
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except _DuplicateKey as exc:
            raise ConfigError(f"config file {p} sets {exc.args[0]!r} twice in one table: keep "
                              f"one of them") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid JSON (line {exc.lineno}: "
                              f"{exc.msg})") from None
        except (RecursionError, ValueError) as exc:  # nested too deep, too many digits
            raise ConfigError(f"config file {p} is not a usable JSON config "
                              f"({type(exc).__name__}: {str(exc)[:80]})") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            kind = "TOML" if suffix == ".toml" else "TOML or JSON"
            raise ConfigError(f"config file {p} is not valid {kind} ({exc})") from None
        except (RecursionError, ValueError) as exc:  # nested too deep
            raise ConfigError(f"config file {p} is not a usable TOML config "
                              f"({type(exc).__name__}: {str(exc)[:80]})") from None
    return RunConfig.from_dict(data, source=p.name)


class _DuplicateKey(ValueError):
    """A JSON object that names a key twice (TOML refuses it; JSON would keep the last)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def config_to_toml(cfg: RunConfig) -> str:
    return tomli_w.dumps(cfg.to_dict())


def save_config(cfg: RunConfig, path: str | Path) -> Path:
    """Write as TOML or JSON (by suffix), atomically: a crash never leaves half a file."""
    from .files import atomic_write_text

    p = Path(path)
    text = (json.dumps(cfg.to_dict(), indent=2) + "\n" if p.suffix.lower() == ".json"
            else config_to_toml(cfg))
    atomic_write_text(p, text)
    return p
