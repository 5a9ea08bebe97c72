"""What a sweep trains: a base config, the settings it varies (each with its values, by the
config's own field names), the seeds, and whether a baseline group is trained too.

Every combination of the varied values is trained once per seed (training seeds
``train.seed``, +1, ...; the data seed stays fixed, so every seed sees the same data). With a
baseline, the full network (``drop.enabled`` off) is trained once per seed for each
combination of the varied settings outside ``drop.*``: combinations that differ only in their
drop rule share a baseline.
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..config import RunConfig, field_paths, field_type, setting_of
from ..errors import ConfigError
from ..fields import short_repr

__all__ = ["SweepPlan", "SweepJob", "parse_values", "load_sweep_file", "BASELINE", "varies",
           "job_key"]

#: the role of a baseline run
BASELINE = "baseline"
#: the most runs one sweep may train
MAX_RUNS = 10_000


@dataclass(frozen=True)
class SweepJob:
    """One run of a sweep: its combination of varied values, its seed, its role."""

    index: int  # its place in the sweep's order, from 0
    role: str  # "run" or "baseline"
    values: tuple[Any, ...]  # the varied settings' values (a baseline: its non-drop ones)
    seed: int
    config: RunConfig

    @property
    def key(self) -> str:
        return job_key(self.role, self.values, self.seed)


def job_key(role: str, values: tuple[Any, ...] | list[Any], seed: int) -> str:
    return json.dumps([role, list(values), seed])


@dataclass(frozen=True)
class SweepPlan:
    base: RunConfig
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    seeds: int = 1
    baseline: bool = False

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise ConfigError(f"a sweep needs at least one seed, not {self.seeds}")
        if not self.axes:
            raise ConfigError("nothing to sweep: give a setting with several values, e.g. "
                              "--threshold 0.5,0.6,0.7, or a sweep file with --sweep FILE")
        paths = [p for p, _ in self.axes]
        if len(set(paths)) != len(paths):
            raise ConfigError(f"a setting is varied twice ({', '.join(paths)}): give each "
                              f"once")
        if self.baseline and "drop.enabled" in paths:
            raise ConfigError("drop.enabled cannot vary in a sweep with a baseline: the "
                              "baseline group is the runs without drops")
        if "train.seed" in paths:
            raise ConfigError("train.seed cannot vary in a sweep: give --seeds N for N seeds")
        count = 1
        for _, values in self.axes:
            count *= len(values)
        if count * self.seeds * (2 if self.baseline else 1) > MAX_RUNS:
            raise ConfigError(f"this sweep would train over {MAX_RUNS} runs: vary fewer "
                              f"settings or values")

    # ---- the settings --------------------------------------------------------------------
    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(p for p, _ in self.axes)

    def combinations(self) -> list[tuple[Any, ...]]:
        """Every combination of the varied values, in order (the last setting fastest)."""
        return list(itertools.product(*(values for _, values in self.axes)))

    def baseline_values(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """The values of a combination that its baseline shares: those outside drop.*."""
        return tuple(v for (p, _), v in zip(self.axes, values) if not p.startswith("drop."))

    def seed_list(self) -> list[int]:
        return [self.base.train.seed + k for k in range(self.seeds)]

    # ---- the runs ------------------------------------------------------------------------
    def jobs(self) -> list[SweepJob]:
        """Every run, seed by seed: the baselines of a seed first, then its combinations."""
        out: list[SweepJob] = []
        base = self.base.copy()
        if base.data.seed < 0:  # the same data for every seed
            base.data.seed = base.train.seed
        for seed in self.seed_list():
            if self.baseline:
                seen: list[tuple[Any, ...]] = []
                for values in self.combinations():
                    shared = self.baseline_values(values)
                    if shared in seen:
                        continue
                    seen.append(shared)
                    cfg = self._config(base, values, seed)
                    cfg.drop.enabled = False
                    for path in self.paths:  # the base's drop rule
                        if path.startswith("drop."):
                            cfg.set(path, base.get(path))
                    out.append(SweepJob(len(out), BASELINE, shared, seed, cfg))
            for values in self.combinations():
                out.append(SweepJob(len(out), "run", values, seed,
                                    self._config(base, values, seed)))
        return out

    def _config(self, base: RunConfig, values: tuple[Any, ...], seed: int) -> RunConfig:
        cfg = base.copy()
        for (path, _), value in zip(self.axes, values):
            cfg.set(path, value, source="sweep")
        cfg.train.seed = seed
        return cfg.check()

    def key_of(self, config: dict[str, Any]) -> str | None:
        """The key of the job that a stored run's config is (``None``: none of this sweep's)."""
        try:
            values = tuple(config[p.split(".")[0]][p.split(".")[1]] for p in self.paths)
            seed = int(config["train"]["seed"])
            enabled = bool(config["drop"]["enabled"])
        except (KeyError, TypeError, ValueError):
            return None
        if self.baseline and not enabled:
            return job_key(BASELINE, self.baseline_values(values), seed)
        return job_key("run", values, seed)

    # ---- stored -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base.to_dict(), "axes": [[p, list(v)] for p, v in self.axes],
                "seeds": self.seeds, "baseline": self.baseline}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepPlan:
        try:
            return cls(RunConfig.from_dict(data["base"], source="stored sweep"),
                       tuple((str(p), tuple(v)) for p, v in data["axes"]),
                       int(data["seeds"]), bool(data["baseline"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"the stored sweep cannot be read ({exc}): start a new "
                              f"sweep") from None


def parse_values(path: str, values: list[Any] | str, source: str) -> tuple[Any, ...]:
    """The values of one varied setting, each converted and checked as the setting's type
    (text: separated by commas)."""
    if path not in field_paths():
        raise ConfigError(f"{source}: unknown setting '{path}' (settings are section.name, "
                          f"e.g. drop.threshold; see learndrop train --help)")
    raw = [v.strip() for v in values.split(",")] if isinstance(values, str) else list(values)
    if not isinstance(values, str) and not raw:
        raise ConfigError(f"{source}: {path} lists no value: give at least one, e.g. "
                          f"[0.5, 0.7]")
    if not raw or any(v == "" for v in raw):
        raise ConfigError(f"{source}: {path} needs values separated by commas, e.g. "
                          f"0.5,0.6,0.7")
    probe = RunConfig()
    out: list[Any] = []
    for value in raw:
        probe.set(path, value, source=source)
        typed = probe.get(path)
        if typed in out:
            raise ConfigError(f"{source}: {path} lists {value} twice: give each value once")
        out.append(typed)
    return tuple(out)


def varies(path: str) -> bool:
    """Whether a flag's value with commas names several values: numbers, switches and
    choices do; text and list settings may hold commas themselves (``data.classes 1,3,5``),
    so they vary only in a sweep file."""
    return field_type(path) not in (str, list[str])


def load_sweep_file(path: str | Path) -> tuple[dict[str, Any], list[tuple[str, tuple[Any, ...]]],
                                               dict[str, Any]]:
    """A TOML sweep file: ``[sweep]`` with ``seeds``/``baseline``, ``[vary]`` with each
    varied setting (``"drop.threshold" = [0.5, 0.7]`` or ``threshold = [...]``), and any
    config sections (``[data]``, ``[model]``, ...) as the base. Returns (base sections,
    axes, sweep options)."""
    file = Path(path).expanduser()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the sweep file {file}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the sweep file {file} is not valid TOML: {exc}") from None
    vary = data.pop("vary", None)
    options = data.pop("sweep", {})
    if not isinstance(vary, dict) or not vary:
        raise ConfigError(f"the sweep file {file} needs a [vary] table, e.g. "
                          f"[vary] threshold = [0.5, 0.7]")
    if not isinstance(options, dict) or set(options) - {"seeds", "baseline", "name"}:
        raise ConfigError(f"the sweep file {file}: [sweep] takes seeds, baseline and name")
    _check_options(options, file)
    axes = []
    for word, values in _flatten(vary):
        setting = setting_of(word)
        if setting is None:
            raise ConfigError(f"the sweep file {file}: unknown setting '{word}' in [vary] "
                              f"(use section.name, e.g. drop.threshold)")
        if not isinstance(values, list):
            raise ConfigError(f"the sweep file {file}: [vary] {word} must be a list of "
                              f"values, e.g. [0.5, 0.7]")
        axes.append((setting, parse_values(setting, values, f"sweep file {file}")))
    return data, axes, options


def _check_options(options: dict[str, Any], file: Path) -> None:
    """The ``[sweep]`` table's values, each of its own type (a text is never read as a
    number or a switch)."""
    checks = (("seeds", lambda v: isinstance(v, int) and not isinstance(v, bool),
               "a whole number, e.g. seeds = 3"),
              ("baseline", lambda v: isinstance(v, bool), "true or false"),
              ("name", lambda v: isinstance(v, str) and v.strip() != "",
               'text, e.g. name = "thresholds"'))
    for key, ok, what in checks:
        if key in options and not ok(options[key]):
            raise ConfigError(f"the sweep file {file}: [sweep] {key} must be {what}, got "
                              f"{short_repr(options[key])}")


def _flatten(vary: dict[str, Any]) -> list[tuple[str, Any]]:
    """``[vary.drop] threshold = [...]`` as well as ``"drop.threshold" = [...]``."""
    out: list[tuple[str, Any]] = []
    for key, value in vary.items():
        if isinstance(value, dict):
            out += [(f"{key}.{k}", v) for k, v in value.items()]
        else:
            out.append((key, value))
    return out
