"""The run config is a plain value object: importing it, building one, checking it and writing
it to a file bring in neither PyTorch nor torchvision (the catalogue checks live with the run's
setup, :func:`learndrop.core.training.config_problems`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from learndrop.core.config import RunConfig
from learndrop.core.errors import ConfigError
from learndrop.core.training import check_config, config_problems

PROBE = """
import json, sys
from learndrop.core.config import RunConfig, config_to_toml, field_paths, FLAGS
cfg = RunConfig()
cfg.set("model.name", "no_such_model")
cfg.check()
config_to_toml(cfg)
heavy = sorted(m for m in ("torch", "torchvision", "numpy") if m in sys.modules)
print(json.dumps(heavy))
"""


@pytest.mark.slow
def test_the_config_imports_without_torch() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_unknown_names_are_the_runs_problems_not_the_configs() -> None:
    cfg = RunConfig()
    cfg.model.name = "no_such_model"
    cfg.data.dataset = "no_such_data"
    assert cfg.problems() == []
    assert [path for path, _ in config_problems(cfg)] == ["model.name", "data.dataset"]
    with pytest.raises(ConfigError, match="unknown model 'no_such_model'") as err:
        check_config(cfg)
    assert err.value.field == "model.name"
