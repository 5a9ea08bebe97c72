"""Model registry: every model builds, its units cover it exactly once, in forward order."""

from __future__ import annotations

import copy
import functools
import pickle
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

from learndrop.core.errors import ModelError
from learndrop.core.models import ModelInfo, get_model, list_models, model_info

ALL = ["resnet152", "resnet18", "resnet20", "resnet50", "resnet56", "small_cnn", "vgg11",
       "vgg16"]
NUM_CLASSES = 5
IN_CHANNELS = 1
SIZE = 32
# Each code path that attaches units: own class, torchvision ResNet, torchvision VGG.
COPY_CHECKED = ["small_cnn", "resnet20", "resnet18", "vgg11"]


def _size(name: str) -> int:
    """The smallest input side the model accepts (VGG needs 32, the others work from 8)."""
    return model_info(name).min_image_size


def _in_unit(module_name: str, unit_modules: list[str]) -> bool:
    return any(module_name == u or module_name.startswith(u + ".") for u in unit_modules)


@dataclass
class Trace:
    """One eval-mode forward of a model, with what the hooks saw."""

    model: nn.Module
    units: list[tuple[str, list[str]]]
    logits: torch.Tensor
    calls: list[str] = field(default_factory=list)  # parameterised modules, first call order
    unit_in: list[torch.Tensor] = field(default_factory=list)
    unit_out: list[torch.Tensor] = field(default_factory=list)


@functools.cache
def trace(name: str) -> Trace:
    """Build ``name`` for 1-channel small input and run one hooked forward of two images."""
    torch.manual_seed(0)
    size = _size(name)
    model = get_model(name, num_classes=NUM_CLASSES, in_channels=IN_CHANNELS, image_size=size)
    model.eval()
    units = model.learndrop_units()
    modules = dict(model.named_modules())
    t = Trace(model, units, torch.empty(0))
    t.unit_in = [torch.empty(0)] * len(units)
    t.unit_out = [torch.empty(0)] * len(units)
    handles = []

    def record_call(qname: str):
        def hook(_m: nn.Module, _i: object, _o: object) -> None:
            if qname not in t.calls:
                t.calls.append(qname)
        return hook

    for qname, m in modules.items():
        if any(True for _ in m.parameters(recurse=False)):
            handles.append(m.register_forward_hook(record_call(qname)))

    for k, (_, mods) in enumerate(units):
        def pre(_m: nn.Module, args: tuple[torch.Tensor, ...], k: int = k) -> None:
            t.unit_in[k] = args[0]

        def post(_m: nn.Module, _a: object, out: torch.Tensor, k: int = k) -> None:
            t.unit_out[k] = out

        handles.append(modules[mods[0]].register_forward_pre_hook(pre))
        handles.append(modules[mods[-1]].register_forward_hook(post))
    with torch.no_grad():
        t.logits = model(torch.randn(2, IN_CHANNELS, size, size))
    for h in handles:
        h.remove()
    return t


def test_list_models() -> None:
    """The registry's own models, among torchvision's (tests/core/models/
    test_torchvision_models.py checks those)."""
    names = list_models()
    assert names == sorted(names)
    assert set(ALL) <= set(names)
    assert all(model_info(n).source == "learndrop" for n in ALL)


@pytest.mark.parametrize("name", ALL)
def test_model_info(name: str) -> None:
    info = model_info(name)
    assert isinstance(info, ModelInfo)
    assert info.name == name
    family = "cnn" if name == "small_cnn" else name.rstrip("0123456789")
    assert info.family == family
    assert info.description and "\n" not in info.description
    assert info.min_image_size == (SIZE if family == "vgg" else 8)  # VGG pools 5 times


@pytest.mark.parametrize("name", ALL)
def test_logits_shape(name: str) -> None:
    t = trace(name)
    assert t.logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(t.logits).all()


@pytest.mark.parametrize("name", ALL)
def test_units_cover_every_parameterised_module_once(name: str) -> None:
    t = trace(name)
    modules = dict(t.model.named_modules())
    names = [u for u, _ in t.units]
    assert len(set(names)) == len(names)
    assert names[-1] == "head"
    for _, mods in t.units:
        assert mods, "a unit must list at least one module"
        for m in mods:
            assert m in modules, f"{m} is not a module of {name}"
    for qname, m in modules.items():
        if any(True for _ in m.parameters(recurse=False)):
            owners = [u for u, mods in t.units if _in_unit(qname, mods)]
            assert len(owners) == 1, f"{qname} belongs to {owners}"


@pytest.mark.parametrize("name", ALL)
def test_units_in_forward_order(name: str) -> None:
    t = trace(name)
    unit_of = {q: k for q in t.calls for k, (_, mods) in enumerate(t.units) if _in_unit(q, mods)}
    order = [unit_of[q] for q in t.calls]
    assert order == sorted(order)
    assert set(order) == set(range(len(t.units)))
    last = dict(t.model.named_modules())[t.calls[-1]]
    assert isinstance(last, nn.Linear) and last.out_features == NUM_CLASSES


@pytest.mark.parametrize("name", ALL)
def test_units_form_a_chain(name: str) -> None:
    t = trace(name)
    for k in range(len(t.units) - 1):
        out, nxt = t.unit_out[k], t.unit_in[k + 1]
        assert out.shape == nxt.shape, f"{t.units[k][0]} -> {t.units[k + 1][0]}"
        assert out.data_ptr() == nxt.data_ptr(), f"{t.units[k][0]} -> {t.units[k + 1][0]}"


@pytest.mark.parametrize("name", COPY_CHECKED)
def test_units_survive_deepcopy_and_pickle(name: str) -> None:
    model = trace(name).model
    expected = model.learndrop_units()
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert clone.learndrop_units() == expected
        modules = dict(clone.named_modules())
        assert all(m in modules for _, mods in expected for m in mods)


def test_units_are_fresh_lists() -> None:
    model = trace("resnet18").model
    units = model.learndrop_units()
    units[0][1].append("nonsense")
    units.pop()
    assert "nonsense" not in model.learndrop_units()[0][1]
    assert model.learndrop_units()[-1][0] == "head"


def test_resnet_units() -> None:
    units = trace("resnet20").units
    assert [u for u, _ in units] == (["stem"] + [f"layer{s}.{b}" for s in (1, 2, 3)
                                                for b in range(3)] + ["head"])
    assert units[0][1] == ["conv1", "bn1", "relu"]
    assert units[-1][1] == ["avgpool", "fc"]
    assert len(trace("resnet56").units) == 1 + 27 + 1
    tv = trace("resnet18").units
    assert tv[0] == ("stem", ["conv1", "bn1", "relu", "maxpool"])
    assert len(tv) == 1 + 8 + 1


def test_vgg_units() -> None:
    units = trace("vgg11").units
    assert [u for u, _ in units] == [f"conv{i}" for i in range(1, 9)] + ["head"]
    assert units[0][1] == ["features.0", "features.1", "features.2", "features.3"]
    assert units[-1][1] == ["avgpool", "classifier"]
    assert len(trace("vgg16").units) == 13 + 1


def test_torchvision_classes_and_small_input_adaptations() -> None:
    from torchvision.models import VGG, ResNet

    vgg = trace("vgg16").model
    assert isinstance(vgg, VGG)
    assert isinstance(vgg.avgpool, nn.AdaptiveAvgPool2d)
    resnet = trace("resnet50").model
    assert isinstance(resnet, ResNet)
    assert resnet.conv1.kernel_size == (3, 3) and resnet.conv1.stride == (1, 1)
    assert resnet.conv1.in_channels == IN_CHANNELS
    assert isinstance(resnet.maxpool, nn.Identity)


def test_large_images_keep_the_imagenet_stem() -> None:
    model = get_model("resnet18", num_classes=3, in_channels=4, image_size=128).eval()
    assert model.conv1.kernel_size == (7, 7) and model.conv1.in_channels == 4
    assert isinstance(model.maxpool, nn.MaxPool2d)
    with torch.no_grad():
        assert model(torch.randn(1, 4, 128, 128)).shape == (1, 3)


def test_vgg_large_images_and_width() -> None:
    model = get_model("vgg11", num_classes=4, image_size=64, width=0.25).eval()
    assert model.features[0].out_channels == 16
    assert model.classifier[0].in_features == 128 * 7 * 7
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 4)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    bn = model.features[1]
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert torch.equal(bn.running_var, torch.ones_like(bn.running_var))


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["small_cnn", "resnet20"])
def test_width_scales_channels(name: str) -> None:
    narrow = get_model(name, num_classes=10, width=0.5)
    wide = get_model(name, num_classes=10, width=2.0)
    assert _params(narrow) < _params(get_model(name, num_classes=10)) < _params(wide)


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(ModelError) as err:
        get_model("resnet9000", num_classes=10)
    message = str(err.value)
    assert "resnet9000" in message and "small_cnn" in message and "\n" not in message
    with pytest.raises(ModelError):
        model_info("nope")


@pytest.mark.parametrize("kwargs, fragment", [
    ({"name": "vgg11", "num_classes": 10, "image_size": 16}, "image_size"),
    ({"name": "small_cnn", "num_classes": 1}, "num_classes"),
    ({"name": "small_cnn", "num_classes": 10, "in_channels": 0}, "in_channels"),
    ({"name": "small_cnn", "num_classes": 10, "width": 0.0}, "width"),
])
def test_incompatible_inputs(kwargs: dict[str, object], fragment: str) -> None:
    name = kwargs.pop("name")
    with pytest.raises(ModelError, match=fragment):
        get_model(str(name), **kwargs)  # type: ignore[arg-type]


def test_small_cnn_trains_a_step() -> None:
    model = get_model("small_cnn", num_classes=3, in_channels=2, image_size=8)
    x, y = torch.randn(4, 2, 8, 8), torch.tensor([0, 1, 2, 0])
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_unknown_model_name_points_to_the_listing() -> None:
    from learndrop.core.config import RunConfig
    from learndrop.core.training import config_problems

    cfg = RunConfig()
    cfg.model.name = "resnet9000"
    (path, message), = [p for p in config_problems(cfg) if p[0] == "model.name"]
    assert message == ("unknown model 'resnet9000': pick a name that 'learndrop models' "
                       "lists, e.g. small_cnn, resnet20 or mobilenet_v2")
