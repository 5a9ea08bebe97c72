"""What the setup form is offered: catalogues, devices, and problems as core checks them."""

from __future__ import annotations

import pytest

from learndrop.app.services import (
    dataset_names,
    describe,
    device_choices,
    model_names,
    run_problems,
)
from learndrop.core.config import RunConfig
from learndrop.core.data import list_datasets
from learndrop.core.errors import DeviceError
from learndrop.core.models import list_models
from learndrop.core.training import available_devices, config_problems, resolve_device


def test_catalogues_and_devices() -> None:
    assert model_names() == list_models() and "small_cnn" in model_names()
    assert dataset_names() == list_datasets() and "digits" in dataset_names()
    assert describe("model.name", "small_cnn")
    assert "\n" not in describe("data.dataset", "digits")
    assert describe("model.name", "no-such-model") == ""
    assert device_choices() == ["auto", *available_devices()]
    assert device_choices()[-1] == "cpu"


def test_an_absent_device_is_a_problem_in_the_trainers_words() -> None:
    cfg = RunConfig()
    assert run_problems(cfg) == config_problems(cfg) == cfg.problems() == []
    cfg.train.device = "cpu"
    assert run_problems(cfg) == []
    absent = next((d for d in ("cuda", "mps") if d not in available_devices()), None)
    if absent is None:
        pytest.skip("this machine has every device")
    cfg.train.device = absent
    with pytest.raises(DeviceError) as trainer_says:
        resolve_device(absent)
    assert run_problems(cfg) == [("train.device", trainer_says.value.message)]
