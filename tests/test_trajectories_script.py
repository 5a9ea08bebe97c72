"""The drift ratio that ``scripts/trajectories.py`` reports, on walks whose answer is known."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "trajectories.py"
_spec = importlib.util.spec_from_file_location("trajectories_script", _PATH)
assert _spec is not None and _spec.loader is not None
trajectories = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trajectories)


def _walk(steps: list[torch.Tensor]) -> list[torch.Tensor]:
    out = [torch.zeros_like(steps[0])]
    for s in steps:
        out.append(out[-1] + s)
    return out


def test_steps_in_one_direction_give_the_window() -> None:
    step = torch.randn(1000)
    ratios = trajectories.drift_ratios(_walk([step] * 8), 4)
    assert ratios[:4] == [None] * 4
    assert ratios[4:] == pytest.approx([4.0] * 5)


def test_a_random_walk_gives_one() -> None:
    gen = torch.Generator().manual_seed(0)
    ratios = trajectories.drift_ratios(_walk([torch.randn(20000, generator=gen)
                                             for _ in range(10)]), 4)
    assert all(r == pytest.approx(1.0, abs=0.05) for r in ratios[4:])


def test_a_walk_that_goes_back_gives_less_than_one() -> None:
    step = torch.randn(1000)
    ratios = trajectories.drift_ratios(_walk([step, -step] * 4), 4)
    assert ratios[4:] == pytest.approx([0.0] * 5)


def test_a_unit_that_never_moved_has_no_ratio() -> None:
    assert trajectories.drift_ratios([torch.ones(5)] * 6, 4)[4:] == [None, None]
