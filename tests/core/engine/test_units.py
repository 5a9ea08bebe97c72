"""Unit discovery and measurement on every torchvision classification family and on small
hand-made blocks: block granularity, every parameter in one unit, FLOPs that add up to
FlopCounterMode's training-mode count, skippable only where a block is really residual."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest
import torch
import torchvision.models as tvm
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from learndrop.core import LearnDrop, ModelError
from learndrop.core.engine import Unit, discover_units, measure_units
from learndrop.core.models import TORCHVISION_FAMILIES


@dataclass(frozen=True)
class Pin:
    """What discovery must find on a family's example model."""

    units: int
    first: tuple[str, ...]
    head: tuple[str, ...]
    skippable: tuple[str, ...]  # some units that must be skippable
    not_skippable: tuple[str, ...]  # some block units that must not be
    feeds: str  # feeds_next per unit, "1"/"0"


PINS: dict[str, Pin] = {
    "resnet": Pin(10, ("stem", "layer1.0", "layer1.1"), ("avgpool", "fc"),
                  ("layer1.0", "layer1.1", "layer4.1"), ("layer2.0", "layer4.0"), "1111111110"),
    "resnext": Pin(7, ("stem", "layer1.0", "layer2.0"), ("avgpool", "fc"), ("layer2.1",),
                   ("layer1.0", "layer2.0"), "1111110"),
    "wide_resnet": Pin(7, ("stem", "layer1.0", "layer2.0"), ("avgpool", "fc"), ("layer2.1",),
                       ("layer3.0",), "1111110"),
    "vgg": Pin(7, ("conv1", "conv2", "conv3"), ("avgpool", "classifier"), (), ("conv2",),
               "1111110"),
    "vgg_bn": Pin(7, ("conv1", "conv2", "conv3"), ("avgpool", "classifier"), (), ("conv2",),
                  "1111110"),
    "mobilenet_v2": Pin(20, ("features.0", "features.1", "features.2"), ("classifier",),
                        ("features.3", "features.16"), ("features.1", "features.2",
                                                        "features.17"),
                        "11111111111111111100"),
    "mobilenet_v3": Pin(14, ("features.0", "features.1", "features.2"),
                        ("avgpool", "classifier"), ("features.3", "features.11"),
                        ("features.1", "features.4"), "11111111111110"),
    "efficientnet": Pin(19, ("features.0", "features.1.0", "features.2.0"),
                        ("avgpool", "classifier"), ("features.2.1", "features.6.3"),
                        ("features.1.0", "features.2.0", "features.7.0"),
                        "1111111111111111110"),
    "efficientnet_v2": Pin(12, ("features.0", "features.1.0", "features.1.1"),
                           ("avgpool", "classifier"), ("features.1.0", "features.4.1"),
                           ("features.2.0", "features.4.0"), "111111111110"),
    "densenet": Pin(14, ("stem", "features.denseblock1.denselayer1",
                         "features.denseblock1.denselayer2"), ("features.norm5", "classifier"),
                    (), ("features.denseblock1.denselayer1", "features.transition1"),
                    "0" * 14),
    "convnext": Pin(11, ("features.0", "features.1.0", "features.1.1"),
                    ("avgpool", "classifier"), ("features.1.0", "features.5.1"),
                    ("features.2",), "11111111110"),
    "regnet": Pin(18, ("stem", "trunk_output.block1.block1-0",
                       "trunk_output.block2.block2-0"), ("avgpool", "fc"),
                  ("trunk_output.block2.block2-1", "trunk_output.block4.block4-5"),
                  ("trunk_output.block2.block2-0",), "1" * 17 + "0"),
    "shufflenet": Pin(18, ("stem", "stage2.0", "stage2.1"), ("conv5", "fc"), (),
                      ("stage2.0", "stage2.1", "stage4.3"), "1" * 17 + "0"),
    "mnasnet": Pin(18, ("stem", "layers.8.0", "layers.8.1"),
                   ("layers.14", "layers.15", "layers.16", "classifier"),
                   ("layers.8.1", "layers.12.3"), ("layers.8.0", "layers.13.0"),
                   "1" * 17 + "0"),
    "squeezenet": Pin(10, ("stem", "features.3", "features.4"), ("classifier",), (),
                      ("features.3", "features.4"), "1111111110"),
    "googlenet": Pin(13, ("conv1", "conv2", "conv3", "inception3a"),
                     ("avgpool", "dropout", "fc"), (), ("inception3a", "inception4b"),
                     "1111111111110"),
    "vit": Pin(5, ("stem", "encoder.layers.encoder_layer_0"), ("encoder.ln", "heads"),
               ("encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_2"), (),
               "01110"),
    "swin": Pin(8, ("stem", "features.1.0", "features.1.1", "features.2"),
                ("norm", "permute", "avgpool", "flatten", "head"),
                ("features.1.0", "features.3.2"), ("features.2",), "11111110"),
    "swin_v2": Pin(8, ("stem", "features.1.0", "features.1.1", "features.2"),
                   ("norm", "permute", "avgpool", "flatten", "head"),
                   ("features.1.0", "features.3.2"), ("features.2",), "11111110"),
    "maxvit": Pin(6, ("stem.0", "stem.1", "blocks.0.layers.0", "blocks.0.layers.1"),
                  ("classifier",), (), ("blocks.0.layers.1",), "111110"),
}
SLOW_PINS: dict[str, Pin] = {
    "alexnet": Pin(6, ("conv1", "conv2", "conv3"), ("avgpool", "classifier"), (), (),
                   "111110"),
    "inception_v3": Pin(17, ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"),
                        ("avgpool", "dropout", "fc"), (), ("Mixed_5b", "Mixed_6a", "Mixed_7c"),
                        "1" * 16 + "0"),
}
FAMILY = {f.key: f for f in TORCHVISION_FAMILIES}


@dataclass
class Measured:
    model: nn.Module
    units: list[Unit]
    total: int
    reference: int  # FlopCounterMode, training mode, per sample
    buffers_before: dict[str, torch.Tensor]
    flags_before: dict[str, bool]


def _flops(model: nn.Module, x: torch.Tensor) -> int:
    """FlopCounterMode's count of one training-mode forward, per sample."""
    flags = {m: m.training for m in model.modules()}
    buffers = [(b, b.clone()) for b in model.buffers()]
    model.train()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
        for b, saved in buffers:
            b.copy_(saved)
    for m, t in flags.items():
        m.training = t
    return fc.get_total_flops() // x.shape[0]


@functools.cache
def measured(key: str) -> Measured:
    torch.manual_seed(0)
    model, size = FAMILY[key].example()
    model.eval()  # measuring must leave each module's mode as it found it
    x = torch.randn(2, 3, size, size)
    buffers = {k: b.clone() for k, b in model.named_buffers()}
    flags = {k: m.training for k, m in model.named_modules()}
    units = discover_units(model)
    total = measure_units(model, units, x)
    return Measured(model, units, total, _flops(model, x), buffers, flags)


def _check(key: str, pin: Pin) -> None:
    m = measured(key)
    names = [u.name for u in m.units]
    assert len(m.units) == pin.units, names
    assert tuple(names[:len(pin.first)]) == pin.first
    assert m.units[-1].is_head and m.units[-1].module_names == pin.head
    by_name = {u.name: u for u in m.units}
    for name in pin.skippable:
        assert by_name[name].skippable, f"{name} is residual and keeps its shape"
    for name in pin.not_skippable:
        assert not by_name[name].skippable, f"{name} must not be skipped"
    assert "".join("1" if u.feeds_next else "0" for u in m.units) == pin.feeds
    # every parameter in exactly one unit
    owners: dict[int, list[str]] = {}
    for u in m.units:
        for p in u.parameters():
            owners.setdefault(id(p), []).append(u.name)
    named = dict(m.model.named_parameters())
    for pname, p in named.items():
        assert len(owners.get(id(p), [])) == 1, f"{pname} is in {owners.get(id(p))}"
    assert sum(u.params for u in m.units) == sum(p.numel() for p in named.values())
    # FLOPs: units add up to the training-mode total; measuring changed nothing
    assert m.total == m.reference
    assert sum(u.forward_flops for u in m.units) == pytest.approx(m.reference, rel=0.02)
    for k, b in m.model.named_buffers():
        assert torch.equal(b, m.buffers_before[k]), f"measuring changed buffer {k}"
    assert {k: x.training for k, x in m.model.named_modules()} == m.flags_before


@pytest.mark.parametrize("key", sorted(PINS))
def test_family_units(key: str) -> None:
    _check(key, PINS[key])


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(SLOW_PINS))
def test_family_units_slow(key: str) -> None:
    _check(key, SLOW_PINS[key])


def test_every_family_is_pinned() -> None:
    assert set(PINS) | set(SLOW_PINS) == set(FAMILY)


@pytest.mark.slow
@pytest.mark.parametrize("name,size,count", [("densenet121", 32, 1 + 58 + 3 + 1),
                                             ("vgg11_bn", 32, 9)])
def test_full_size_models(name: str, size: int, count: int) -> None:
    model = tvm.get_model(name, weights=None, num_classes=5)
    units = discover_units(model)
    x = torch.randn(2, 3, size, size)
    total = measure_units(model, units, x)
    assert len(units) == count
    assert total == _flops(model, x)
    assert sum(u.forward_flops for u in units) == pytest.approx(total, rel=0.02)


def test_vit_root_parameters_belong_to_the_stem() -> None:
    m = measured("vit")
    stem = m.units[0]
    assert stem.param_names == ("class_token", "encoder.pos_embedding")
    assert stem.module_names == ("conv_proj", "encoder.dropout")
    vit = m.model
    assert isinstance(vit, tvm.VisionTransformer)
    ids = {id(p) for p in stem.parameters()}
    assert id(vit.class_token) in ids and id(vit.encoder.pos_embedding) in ids


def test_vit_flops_are_counted_in_training_mode() -> None:
    """In eval mode without gradients attention takes a fused path FlopCounterMode misses."""
    m = measured("vit")
    x = torch.randn(2, 3, 32, 32)
    m.model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        m.model(x)
    assert fc.get_total_flops() // 2 < m.total == m.reference


def test_explicit_units_may_name_parameters() -> None:
    model, _ = FAMILY["vit"].example()
    units = discover_units(model, ["stem=class_token+conv_proj+encoder.pos_embedding",
                                   "body=encoder.layers", "head=encoder.ln+heads"])
    assert units[0].param_names == ("class_token", "encoder.pos_embedding")
    assert units[0].params == sum(p.numel() for p in (
        model.class_token, model.encoder.pos_embedding, *model.conv_proj.parameters()))
    with pytest.raises(ModelError, match="overlap"):
        discover_units(model, ["a=encoder", "b=encoder.pos_embedding+heads"])
    with pytest.raises(ModelError, match="no module or parameter"):
        discover_units(model, ["a=conv_proj", "b=nonsense"])


# ---- hand-made blocks -------------------------------------------------------------------------
class ConvBlock(nn.Module):
    """conv-bn-relu, no shortcut: its name says Block, but skipping it changes the network."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(ch)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Shortcut(nn.Module):
    """Residual with no telling name: ``gelu(x + conv(x))`` with a functional activation."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(x + self.conv(x))


class ScaledShortcut(Shortcut):
    """``2x + conv(x)``: the input reaches the sum only through a multiplication."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x + self.conv(x)


class InPlaceInput(Shortcut):
    """Changes its input in place first; the sum then holds the changed input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.relu_()
        return x + self.conv(x)


class Net(nn.Module):
    def __init__(self, block: type[nn.Module], ch: int = 4) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.stem = nn.Sequential(nn.Conv2d(3, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU())
        self.blocks = nn.ModuleList([block(ch) for _ in range(3)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(ch, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x * self.scale)
        for b in self.blocks:
            x = b(x)
        return self.fc(self.drop(self.pool(x).flatten(1)))


def _units(model: nn.Module, size: int = 8) -> list[Unit]:
    units = discover_units(model)
    measure_units(model, units, torch.randn(2, 3, size, size))
    return units


@pytest.mark.parametrize("block,skippable", [(ConvBlock, False), (Shortcut, True),
                                             (ScaledShortcut, False), (InPlaceInput, False)])
def test_skippable_is_decided_by_structure(block: type[nn.Module], skippable: bool) -> None:
    units = _units(Net(block))
    assert [u.name for u in units] == ["stem", "blocks.0", "blocks.1", "blocks.2", "head"]
    assert units[0].param_names == ("scale",) and units[0].module_names == ("stem",)
    assert units[-1].module_names == ("pool", "drop", "fc")
    assert [u.skippable for u in units] == [False, skippable, skippable, skippable, False]


def test_residual_attribute_overrides_the_check() -> None:
    model = Net(ConvBlock)
    model.blocks[0].learndrop_residual = True  # type: ignore[assignment]
    units = _units(model)
    assert [u.skippable for u in units[1:4]] == [True, False, False]
    model = Net(Shortcut)
    model.blocks[1].learndrop_residual = False  # type: ignore[assignment]
    assert [u.skippable for u in _units(model)[1:4]] == [True, False, True]


def test_a_skipped_plain_block_would_change_the_output_so_it_is_never_skipped() -> None:
    torch.manual_seed(0)
    model = Net(ConvBlock)
    ld = LearnDrop(model, mode="skip", example_input=torch.randn(2, 3, 8, 8), keep_last=0,
                   warmup_epochs=0)
    ld.drop("blocks.1")
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(ld.model(x), model(x)), "a non-residual block was bypassed"


def test_measuring_restores_random_state_buffers_and_modes() -> None:
    model = Net(Shortcut)  # its dropout draws random numbers in training mode
    model.stem[1].train()
    model.blocks.eval()
    modes = {k: m.training for k, m in model.named_modules()}
    stats = model.stem[1].running_mean.clone()
    x = torch.randn(2, 3, 8, 8)
    units = discover_units(model)
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    measure_units(model, units, x)
    assert torch.equal(torch.rand(4), expected)
    assert torch.equal(model.stem[1].running_mean, stats)
    assert {k: m.training for k, m in model.named_modules()} == modes


def test_a_batch_of_one_is_measured() -> None:
    model, size = FAMILY["shufflenet"].example()  # 1x1 maps: BatchNorm needs two samples
    units = discover_units(model)
    total = measure_units(model, units, torch.randn(1, 3, size, size))
    assert total == _flops(model, torch.randn(2, 3, size, size))


def test_compiled_models_are_looked_through() -> None:
    model = Net(Shortcut)
    compiled = torch.compile(model)
    units = discover_units(compiled)
    assert [u.name for u in units] == ["stem", "blocks.0", "blocks.1", "blocks.2", "head"]
    assert not any("_orig_mod" in n for u in units for n in (*u.module_names, *u.param_names))
    assert units[1].modules[0] is model.blocks[0]
    assert measure_units(compiled, units, torch.randn(2, 3, 8, 8)) > 0
    assert units[1].skippable
    explicit = discover_units(compiled, ["a=_orig_mod.stem+scale", "b=blocks+pool+drop+fc"])
    assert explicit[0].module_names == ("stem",)


def test_plain_sequential_gets_one_unit_per_convolution() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3),
                          nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    model(torch.randn(1, 3, 12, 12))  # materialise the lazy layer
    units = _units(model, 12)
    assert [(u.name, u.module_names) for u in units] == [
        ("conv1", ("0", "1", "2")), ("conv2", ("3", "4", "5")), ("head", ("6", "7"))]
    assert [u.feeds_next for u in units] == [True, True, False]


def test_models_without_blocks_fall_back_to_their_children() -> None:
    class TwoParts(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(3))
            self.body = nn.Linear(3, 3)
            self.out = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.body(x + self.bias))

    units = discover_units(TwoParts())
    assert [(u.name, u.module_names, u.param_names) for u in units] == [
        ("body", ("body",), ("bias",)), ("out", ("out",), ())]


def test_own_units_still_win() -> None:
    model = Net(Shortcut)
    model.learndrop_units = lambda: [("front", ["stem", "blocks.0"]),  # type: ignore
                                     ("back", ["blocks.1", "blocks.2", "pool", "drop", "fc"])]
    assert [u.name for u in discover_units(model)] == ["front", "back"]
    assert [u.name for u in discover_units(model, ["x=stem", "y=fc"])] == ["x", "y"]


def test_skip_mode_really_bypasses_a_torchvision_block() -> None:
    torch.manual_seed(0)
    model, size = FAMILY["convnext"].example()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    ld = LearnDrop(model, opt, mode="skip", keep_last=0, warmup_epochs=0,
                   example_input=torch.randn(2, 3, size, size))
    ld.drop("features.1.1")
    calls: list[int] = []
    model.features[1][1].block.register_forward_hook(lambda *_: calls.append(1))
    loss = ld.model(torch.randn(4, 3, size, size)).sum()
    loss.backward()
    opt.step()
    assert not calls, "a skipped block still ran"
    assert ld.savings()["forward_flops_saved_now"] > 0


@pytest.mark.parametrize("name", ["resnet20", "resnet18", "vgg11"])
def test_discovery_agrees_with_the_registrys_own_units(name: str) -> None:
    from learndrop.core.models import get_model

    model = get_model(name, num_classes=3, image_size=32)
    own = [(u.name, u.module_names) for u in discover_units(model)]
    model.learndrop_units = None  # type: ignore[assignment]
    assert [(u.name, u.module_names) for u in discover_units(model)] == own
