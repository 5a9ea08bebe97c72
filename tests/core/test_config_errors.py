"""A broken config file says every problem it has, on one line, not only the first."""

from __future__ import annotations

from pathlib import Path

import pytest

from learndrop.core.config import load_config
from learndrop.core.errors import ConfigError


def test_every_problem_of_a_config_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[train]\nepochs = 0\nbatch_size = "many"\n[optim]\nlr = -1\n'
                    '[nonsense]\nx = 1\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = info.value.message
    assert message.startswith("broken.toml has 4 problems: ")
    for words in ("train.epochs", "train.batch_size", "optim.lr", "unknown section 'nonsense'"):
        assert words in message, words
    assert "\n" not in message
    assert info.value.field == "train.batch_size"  # the first, in the order of the file


def test_one_problem_reads_as_before(tmp_path: Path) -> None:
    path = tmp_path / "one.toml"
    path.write_text("[train]\nepochs = 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == "train.epochs" and "problems" not in info.value.message


def test_a_time_budget_written_as_a_number_is_seconds(tmp_path: Path) -> None:
    path = tmp_path / "budget.toml"
    path.write_text("[train]\ntime_budget = 90\n")
    assert load_config(path).train.time_budget == "90s"
    path.write_text("[train]\ntime_budget = 1.5\n")
    assert load_config(path).train.time_budget == "1.5s"
    for bad, words in (("-5", "is not a duration"), ("true", "must be text")):
        path.write_text(f"[train]\ntime_budget = {bad}\n")
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert info.value.field == "train.time_budget" and words in info.value.message


def test_values_are_spelled_as_the_file_spells_them(tmp_path: Path) -> None:
    path = tmp_path / "spelled.json"
    for value, shown in (("true", "got true"), ("false", "got false"), ("null", "got null")):
        path.write_text(f'{{"train": {{"epochs": {value}}}}}')
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert info.value.message.endswith(f"train.epochs must be an integer, {shown}")
