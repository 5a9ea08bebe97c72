"""Fuzzing the config parser: any input gives a valid config or a one-line ConfigError."""

from __future__ import annotations

import json
import math
import string
import sys
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from learndrop.core.config import (  # noqa: E402
    RunConfig,
    config_to_toml,
    field_choices,
    field_info,
    field_paths,
    field_type,
    load_config,
)
from learndrop.core.errors import ConfigError  # noqa: E402

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

SECTIONS = sorted({p.split(".")[0] for p in field_paths()})
NAMES = sorted({p.split(".")[1] for p in field_paths()})

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-2**70, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["", "1e999", "-inf", "nan", "true", "off", "sgd", "freeze", "cuda",
                     "digits", "small_cnn", "3", "0", "-1", "1.5", "x" * 300]),
    st.integers(min_value=10**300, max_value=10**400),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)

# keys that are mostly real section and setting names, so the fuzzer reaches the value checks
section_keys = st.one_of(st.sampled_from(SECTIONS), st.text(max_size=8))
name_keys = st.one_of(st.sampled_from(NAMES), st.text(max_size=8),
                      st.sampled_from(["a.b", "", " ", "train.epochs"]))
config_dicts = st.dictionaries(
    section_keys, st.one_of(st.dictionaries(name_keys, values, max_size=6), values),
    max_size=6)


def _check(build: Any) -> None:
    try:
        cfg = build()
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    assert isinstance(cfg, RunConfig)
    assert cfg.problems() == []
    for path in field_paths():
        value = cfg.get(path)
        if isinstance(value, float):
            assert math.isfinite(value), path


@pytest.mark.slow
@FUZZ
@given(config_dicts)
def test_from_dict_returns_a_valid_config_or_config_error(data: dict[Any, Any]) -> None:
    _check(lambda: RunConfig.from_dict(data))


@pytest.mark.slow
@FUZZ
@given(values)
def test_from_dict_with_anything_at_the_top(data: Any) -> None:
    _check(lambda: RunConfig.from_dict(data))


def _valid_value(path: str) -> st.SearchStrategy[Any]:
    hint = field_type(path)
    f = field_info(path)
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if field_choices(path):
        return st.sampled_from(field_choices(path))
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(min_value=-5 if lo is None else lo - 2,
                           max_value=(hi + 2) if hi is not None else 10**6)
    if hint is float:
        return st.floats(min_value=(lo - 1) if lo is not None else -10.0,
                         max_value=(hi + 1) if hi is not None else 10.0,
                         allow_nan=False)
    if path in ("data.dataset", "model.name"):
        return st.sampled_from(["digits", "small_cnn", "nope"])
    if path in ("data.root", "output.dir", "output.name"):
        return st.text(alphabet=string.ascii_letters + "/._-", max_size=10)
    return st.lists(st.text(alphabet=string.ascii_letters, max_size=6), max_size=3)


@st.composite
def near_valid(draw: Any) -> dict[str, dict[str, Any]]:
    """Real fields with values of the right type around their bounds."""
    paths = draw(st.lists(st.sampled_from(field_paths()), max_size=6, unique=True))
    out: dict[str, dict[str, Any]] = {}
    for p in paths:
        section, name = p.split(".")
        out.setdefault(section, {})[name] = draw(_valid_value(p))
    return out


@pytest.mark.slow
@FUZZ
@given(near_valid())
def test_near_valid_configs_round_trip_through_toml_and_json(data: dict[str, Any]) -> None:
    try:
        cfg = RunConfig.from_dict(data)
    except ConfigError as exc:  # a value just out of its range
        assert "\n" not in str(exc) and str(exc)
        return
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again.to_dict() == cfg.to_dict()
    again = RunConfig.from_dict(tomllib.loads(config_to_toml(cfg)))
    assert again.to_dict() == cfg.to_dict()


@pytest.mark.slow
@FUZZ
@given(st.text(max_size=200))
def test_any_toml_text_loads_or_gives_config_error(tmp_path_factory: Any, text: str) -> None:
    path = tmp_path_factory.mktemp("toml") / "c.toml"
    path.write_text(text, encoding="utf-8")
    _check(lambda: load_config(path))


@pytest.mark.slow
@FUZZ
@given(st.one_of(config_dicts.map(lambda d: json.dumps(d, default=str)),
                 st.text(max_size=120)))
def test_any_json_text_loads_or_gives_config_error(tmp_path_factory: Any, text: str) -> None:
    path = tmp_path_factory.mktemp("json") / "c.json"
    path.write_text(text, encoding="utf-8")
    _check(lambda: load_config(path))


@pytest.mark.slow
@FUZZ
@given(st.binary(max_size=200), st.sampled_from(["c.toml", "c.json", "c.cfg", "c"]))
def test_any_bytes_with_any_suffix(tmp_path_factory: Any, raw: bytes, name: str) -> None:
    path = tmp_path_factory.mktemp("raw") / name
    path.write_bytes(raw)
    _check(lambda: load_config(path))


@pytest.mark.parametrize("name,text", [
    ("deep.json", "[" * 100_000 + "]" * 100_000),
    ("deep.toml", "a = " + "[" * 100_000 + "]" * 100_000),
    ("deeptable.json", '{"a":' * 50_000 + "1" + "}" * 50_000),
    ("huge.json", '{"optim": {"lr": 1' + "0" * 400 + "}}"),
    ("huge-int.json", '{"train": {"epochs": 1' + "0" * 5000 + "}}"),
    ("nan.json", '{"optim": {"lr": NaN}}'),
    ("inf.toml", "[optim]\nlr = inf\n"),
])
def test_pathological_files(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "\n" not in str(info.value) and name in str(info.value)
