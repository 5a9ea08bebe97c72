"""Unit discovery where a model's structure is less regular: residual and plain blocks that
alternate, a sum written in place on a view, branches the example input does not take."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from learndrop.core import LearnDrop
from learndrop.core.engine import LearnDropWarning, discover_units, measure_units


class Res(nn.Module):
    """``x + relu(bn(conv(x)))``: keeps the width."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)
        self.bn = nn.BatchNorm2d(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.bn(self.conv(x)))


class Widen(nn.Module):
    """A plain block that changes the width: no shortcut."""

    def __init__(self, ch: int, out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, out, 3, padding=1)
        self.bn = nn.BatchNorm2d(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class Alternating(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Sequential(Res(8), Widen(8, 16), Res(16), Widen(16, 32), Res(32))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.body(self.stem(x))).flatten(1))


def test_alternating_residual_and_plain_blocks_are_one_unit_each() -> None:
    model = Alternating()
    units = discover_units(model)
    assert [u.name for u in units] == ["stem", "body.0", "body.1", "body.2", "body.3",
                                       "body.4", "head"]
    measure_units(model, units, torch.randn(2, 3, 8, 8))
    assert [u.skippable for u in units[1:6]] == [True, False, True, False, True]
    assert all(u.feeds_next for u in units[:-1])


class Flat(nn.Module):
    """The same blocks held directly by the model, with a loose stem: the stem is one unit."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.b1, self.t1, self.b2 = Res(8), Widen(8, 16), Res(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.b2(self.t1(self.b1(self.bn1(self.conv1(x)))))
        return self.fc(x.mean((2, 3)))


def test_alternating_blocks_held_by_the_model_itself() -> None:
    assert [u.name for u in discover_units(Flat())] == ["stem", "b1", "t1", "b2", "head"]


class GhostLike(nn.Module):
    """GhostNet's bottleneck: the output is a slice of a concatenation, and the input is
    added to it in place (``x += shortcut``), so the sum happens on a view."""

    def __init__(self, ch: int, whole: bool = True) -> None:
        super().__init__()
        self.primary = nn.Conv2d(ch, ch // 2, 1)
        self.cheap = nn.Conv2d(ch // 2, ch // 2 + 1, 3, padding=1)
        self.whole = whole

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.primary(x)
        y = torch.cat([a, self.cheap(a)], dim=1)
        out = y[:, : x.shape[1]]
        if self.whole:
            out += x
        else:  # the input reaches only half of the output: not a residual block
            out[:, : x.shape[1] // 2] += x[:, : x.shape[1] // 2]
        return out


class Blocks(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(block, type(block)(8, block.whole))
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


@pytest.mark.parametrize("whole", [True, False])
def test_a_sum_in_place_on_a_view_is_found_residual(whole: bool) -> None:
    model = Blocks(GhostLike(8, whole))
    units = discover_units(model)
    measure_units(model, units, torch.randn(2, 3, 8, 8))
    assert [u.name for u in units] == ["stem", "blocks.0", "blocks.1", "head"]
    assert [u.skippable for u in units] == [False, whole, whole, False]


class Branching(nn.Module):
    """``alt`` runs only on large images; ``extra`` inside a block only in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(Res(8), Res(8))
        self.extra = nn.Conv2d(8, 8, 1)
        self.alt = nn.Sequential(Res(8), Res(8))
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        if not self.training:
            x = self.extra(x)
        if x.shape[-1] > 16:
            x = self.alt(x)
        return self.fc(x.mean((2, 3)))


def test_units_that_did_not_run_when_measured_are_said() -> None:
    model = Branching()
    units = ["stem=stem", "a=blocks.0", "b=blocks.1+extra", "alt=alt", "head=fc"]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ld = LearnDrop(model, opt, units=units, example_input=torch.randn(2, 3, 8, 8))
    said = [str(w.message) for w in caught if issubclass(w.category, LearnDropWarning)]
    assert len(said) == 1, said
    assert "'b' (extra)" in said[0] and "'alt' (all of it)" in said[0]
    assert "example_input" in said[0]
    flops = {u.name: u.forward_flops for u in ld.units}
    assert flops["alt"] == 0 and flops["b"] > 0
    model = Branching()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ld = LearnDrop(model, opt, units=units, example_input=torch.randn(2, 3, 32, 32))
    said = [str(w.message) for w in caught if issubclass(w.category, LearnDropWarning)]
    assert len(said) == 1 and "'b' (extra)" in said[0] and "alt" not in said[0]
    assert {u.name: u.idle_modules for u in ld.units} == {
        "stem": (), "a": (), "b": ("extra",), "alt": (), "head": ()}
