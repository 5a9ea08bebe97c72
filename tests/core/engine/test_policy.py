"""The drop policy is declared once: the config's [drop] section and LearnDrop's keyword
arguments accept and refuse the same values with the same message."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest
import torch
from torch import nn

from learndrop.core import ConfigError, DropConfig, DropPolicy, LearnDrop, RunConfig, get_model
from learndrop.core.config import cache_augment_problem, field_doc, field_info

BOUNDED = [(f.name, f.metadata.get("min"), f.metadata.get("max"))
           for f in dataclasses.fields(DropPolicy)
           if f.metadata.get("min") is not None or f.metadata.get("max") is not None]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return get_model("small_cnn", num_classes=4, in_channels=1, image_size=16)


def _beyond(value: float, kind: type, up: bool) -> float:
    step = 1 if kind is int else 0.01
    return value + step if up else value - step


def _learndrop_error(**settings: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        LearnDrop(_model(), **settings)
    return info.value


def _config_error(name: str, value: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"drop": {name: value}})
    return info.value


def test_the_config_section_is_the_engine_declaration() -> None:
    assert DropConfig is DropPolicy
    assert RunConfig().drop == DropPolicy()
    assert field_info("drop.threshold").metadata["max"] == 1.0
    assert field_doc("drop.patience") == "Consecutive settled checks before a unit is dropped."


def test_every_setting_is_a_learndrop_keyword() -> None:
    params = inspect.signature(LearnDrop.__init__).parameters
    assert params["settings"].kind is inspect.Parameter.VAR_KEYWORD
    assert not set(DropPolicy.names()) & set(params)  # declared once, in the policy
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3),
                          nn.Flatten(), nn.Linear(4, 2))
    defaults = DropPolicy().resolved(cacheable=False)  # no num_samples: auto is freeze
    for name in DropPolicy.names():
        ld = LearnDrop(model, **{name: getattr(defaults, name)})
        assert ld.policy == defaults, name
    assert LearnDrop(model, threshold=None).policy.threshold == defaults.threshold  # kept
    with pytest.raises(ConfigError, match="unknown drop setting .threshhold"):
        LearnDrop(model, threshhold=0.5)


def test_automatic_settings_resolve_from_what_the_run_is() -> None:
    auto = DropPolicy()
    assert (auto.mode, auto.checks_per_epoch) == ("auto", 0)
    assert auto.resolved(cacheable=True).mode == "cache"
    assert auto.resolved(cacheable=False).checks_per_epoch == 1  # from scratch
    tuned = auto.resolved(cacheable=False, fine_tuning=True)
    assert (tuned.mode, tuned.checks_per_epoch) == ("freeze", 2)
    set_by_hand = DropPolicy(mode="freeze", checks_per_epoch=3)
    assert set_by_hand.resolved(cacheable=True, fine_tuning=True) is set_by_hand
    ld = LearnDrop(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2)))
    assert ld.policy.checks_per_epoch == 1  # own loops: scratch unless told


def test_every_bounded_setting_has_bounds() -> None:
    assert {name for name, _, _ in BOUNDED} == {
        "threshold", "patience", "warmup_epochs", "check_every", "checks_per_epoch", "keep_last",
        "ema", "window", "confidence",
        "trend_tolerance", "cache_budget_mb"}


@pytest.mark.parametrize("name, lo, hi", BOUNDED)
def test_config_and_learndrop_refuse_the_same_values_identically(name: str, lo: Any,
                                                                 hi: Any) -> None:
    kind = type(getattr(DropPolicy(), name))
    for bound, up in ((lo, False), (hi, True)):
        if bound is None:
            continue
        bad = _beyond(bound, kind, up)
        from_config = _config_error(name, bad)
        from_engine = _learndrop_error(**{name: bad})
        assert str(from_config) == str(from_engine), name
        assert from_config.field == from_engine.field == f"drop.{name}"
        side = "most" if up else "least"
        assert str(from_engine) == f"drop.{name} must be at {side} {bound}, got {bad}"
        # the bound itself is accepted by both
        RunConfig.from_dict({"drop": {name: bound}})
        LearnDrop(_model(), **{name: bound})


def test_trend_tolerance_has_one_upper_bound() -> None:
    """It was unbounded for LearnDrop and at most 10 in the config."""
    assert str(_learndrop_error(trend_tolerance=11.0)) == (
        "drop.trend_tolerance must be at most 10.0, got 11.0")


def test_choices_and_types_refused_with_one_message() -> None:
    cfg = RunConfig()
    cfg.drop.mode = "bogus"  # type: ignore[assignment]
    with pytest.raises(ConfigError) as from_config:
        cfg.check()
    from_engine = _learndrop_error(mode="bogus")
    assert str(from_config.value) == str(from_engine) == (
        "drop.mode must be one of auto, freeze, cache, skip, got 'bogus'")
    assert from_engine.field == "drop.mode"
    assert str(_learndrop_error(patience=2.5)) == "drop.patience must be an integer, got 2.5"
    assert str(_learndrop_error(threshold="high")) == (
        "drop.threshold must be a number, got 'high'")


def test_cache_needs_prefix_in_both() -> None:
    message = ("drop.mode=cache needs drop.order=prefix: only a dropped prefix has an output "
               "that can be cached")
    assert str(_learndrop_error(mode="cache", order="any")) == message
    with pytest.raises(ConfigError, match="needs drop.order=prefix"):
        RunConfig.from_dict({"drop": {"mode": "cache", "order": "any"}})


def test_policy_object_and_keywords_together() -> None:
    policy = DropPolicy(threshold=0.2, pinned=["block1"])
    ld = LearnDrop(_model(), policy=policy, patience=3, ema=0)
    assert (ld.policy.threshold, ld.policy.patience, ld.policy.ema) == (0.2, 3, 0.0)
    assert isinstance(ld.policy.ema, float)
    assert ld.is_pinned("block1")
    assert policy.patience == 2  # the caller's policy is not changed ...
    ld.policy.pinned.append("x")
    assert policy.pinned == ["block1"]  # ... nor shared
    plain = LearnDrop(_model(), threshold=0.2, patience=2, mode="freeze")  # the README's
    assert plain.policy == DropPolicy(threshold=0.2, patience=2, mode="freeze",
                                      checks_per_epoch=1)


def test_unknown_setting_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown drop setting 'treshold'"):
        DropPolicy().with_values(treshold=0.1)


def test_one_cache_and_augmentation_message() -> None:
    cfg = RunConfig()
    cfg.drop.mode = "cache"
    cfg.data.augment = True
    problem = cache_augment_problem(cfg.drop, augmented=True)
    assert problem is not None and problem in cfg.problems()
    assert cache_augment_problem(cfg.drop, augmented=False) is None
    cfg.drop.enabled = False
    assert cache_augment_problem(cfg.drop, augmented=True) is None
