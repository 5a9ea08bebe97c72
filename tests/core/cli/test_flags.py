"""The short flags are declared with their settings, and read the same way everywhere: the
command line sets the setting a flag names, and a message naming the flag is read back as
that setting (the app's form words use it)."""

from __future__ import annotations

import argparse

import pytest

from learndrop.core.cli._flags import add_config_flags
from learndrop.core.config import FLAGS, field_info, field_paths, setting_of


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_config_flags(p)
    return p


@pytest.mark.parametrize("flag", sorted(FLAGS))
def test_every_flag_sets_the_setting_it_names_both_ways(flag: str) -> None:
    path = FLAGS[flag]
    assert field_info(path).metadata["flag"] == flag
    args = _parser().parse_args([f"--{flag}", "1"])
    given = {k[4:] for k, v in vars(args).items() if k.startswith("set:") and v is not None}
    assert given == {path}
    assert setting_of(flag) == path == setting_of(flag.replace("-", "_"))
    assert setting_of(path) == path


def test_every_setting_has_its_dotted_flag_and_flags_are_unique() -> None:
    parser = _parser()
    for path in field_paths():
        args = parser.parse_args([f"--{path}", "1"])
        assert getattr(args, f"set:{path}") == "1"
    assert len(set(FLAGS.values())) == len(FLAGS)


def test_the_flags_the_form_once_missed() -> None:
    """--warmup-epochs and --run-name name the drop policy's warm-up and the run's name."""
    assert setting_of("warmup-epochs") == "drop.warmup_epochs"
    assert setting_of("run-name") == "output.name"
    assert setting_of("small_cnn") is None
