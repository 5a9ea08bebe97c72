"""Every torchvision classification model by its torchvision name: listed, built for the data's
channels and classes, refused in one line when the images are too small."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from learndrop.core.cli import main
from learndrop.core.config import RunConfig
from learndrop.core.errors import ModelError
from learndrop.core.models import (
    TORCHVISION_FAMILIES,
    adapt_first_conv,
    get_model,
    list_models,
    model_info,
    torchvision_family,
)
from learndrop.core.training import config_problems, load_initial_weights

TORCHVISION = tvm.list_models(module=tvm)
OWN = ["resnet152", "resnet18", "resnet20", "resnet50", "resnet56", "small_cnn", "vgg11",
       "vgg16"]


def _meta_model(name: str, **kwargs: object) -> nn.Module:
    """``get_model`` on the meta device: shapes without memory or arithmetic."""
    with torch.device("meta"):
        return get_model(name, num_classes=5, **kwargs)  # type: ignore[arg-type]


def _accepts(model: nn.Module, channels: int, size: int) -> bool:
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.empty(1, channels, size, size, device="meta"))
    except (RuntimeError, ValueError, AssertionError):
        return False
    return tuple(out.shape) == (1, 5)


def test_every_torchvision_classifier_is_listed() -> None:
    names = list_models()
    assert names == sorted(names)
    assert set(TORCHVISION) | set(OWN) == set(names)
    for name in OWN:  # the registry's own entries keep their small-image adaptations
        assert model_info(name).source == "learndrop"
    assert model_info("vgg11_bn").source == "torchvision"
    assert model_info("vgg11").family == "vgg" and model_info("vgg11").min_image_size == 32


@pytest.mark.parametrize("name", TORCHVISION)
def test_model_info(name: str) -> None:
    info = model_info(name)
    assert info.description and "\n" not in info.description
    if name in OWN:
        assert info.source == "learndrop"
        return
    assert info.source == "torchvision" and info.family == torchvision_family(name).family
    assert info.min_image_size >= 32
    fits = info.fixed_image_size is None and info.min_image_size <= 32
    assert info.fits_small_images == fits


def test_sizes_by_family() -> None:
    sizes = {n: (model_info(n).min_image_size, model_info(n).fixed_image_size)
             for n in TORCHVISION}
    assert sizes["alexnet"] == (63, None)
    assert sizes["inception_v3"] == (75, None)
    assert sizes["swin_t"] == (224, None) and sizes["swin_v2_b"] == (256, None)
    assert all(sizes[n] == (224, 224) for n in TORCHVISION if n.startswith(("vit_", "maxvit")))
    small = {n for n in TORCHVISION if model_info(n).fits_small_images}
    assert small == {n for n in TORCHVISION if not n.startswith(
        ("alexnet", "inception", "swin", "vit_", "maxvit"))}


# the cheapest model of each family, built on the meta device (regnet's builder computes its
# widths with real tensors, so it is built for real at its smallest)
REPRESENTATIVES = ["alexnet", "convnext_tiny", "densenet121", "efficientnet_b0",
                   "efficientnet_v2_s", "googlenet", "inception_v3", "maxvit_t", "mnasnet0_5",
                   "mobilenet_v2", "mobilenet_v3_small", "resnet34", "resnext50_32x4d",
                   "shufflenet_v2_x0_5", "squeezenet1_1", "swin_t", "swin_v2_t", "vgg11_bn",
                   "vgg13", "vit_b_32", "wide_resnet50_2"]


def test_every_family_has_a_representative() -> None:
    covered = {torchvision_family(n).key for n in [*REPRESENTATIVES, "regnet_x_400mf"]}
    assert covered == {f.key for f in TORCHVISION_FAMILIES}
    assert {torchvision_family(n).key for n in TORCHVISION} == covered


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_minimum_size_is_accepted_in_one_channel(name: str) -> None:
    info = model_info(name)
    model = _meta_model(name, in_channels=1, image_size=info.min_image_size)
    assert _accepts(model, 1, info.min_image_size)
    assert not _accepts(model, 3, info.min_image_size), "the first conv takes one channel"


@pytest.mark.parametrize("name,too_small", [("alexnet", 62), ("inception_v3", 74),
                                            ("vit_b_32", 223), ("maxvit_t", 192)])
def test_below_the_minimum_the_model_really_fails(name: str, too_small: int) -> None:
    info = model_info(name)
    model = _meta_model(name, image_size=info.min_image_size)
    assert not _accepts(model, 3, too_small)


def test_regnet_builds_for_grayscale() -> None:
    model = get_model("regnet_x_400mf", num_classes=5, in_channels=1, image_size=32).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 32, 32)).shape == (1, 5)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in TORCHVISION if n not in REPRESENTATIVES
                                  and model_info(n).min_image_size != 32])
def test_other_sizes_of_the_fixed_and_large_families(name: str) -> None:
    """Every ViT and Swin variant (their patch and window sizes differ) at its minimum."""
    info = model_info(name)
    model = _meta_model(name, in_channels=1, image_size=info.min_image_size)
    assert _accepts(model, 1, info.min_image_size)


@pytest.mark.parametrize("name,size,fragment", [
    ("inception_v3", 32, "at least 75x75"), ("alexnet", 62, "at least 63x63"),
    ("swin_t", 32, "at least 224x224"), ("vit_b_16", 32, "exactly 224x224"),
    ("vit_b_16", 256, "exactly 224x224"), ("maxvit_t", 32, "exactly 224x224")])
def test_too_small_images_give_one_line(name: str, size: int, fragment: str) -> None:
    with pytest.raises(ModelError) as err:
        get_model(name, num_classes=10, image_size=size)
    message = str(err.value)
    assert fragment in message and "data.image_size" in message and "\n" not in message


def test_auxiliary_heads_are_off() -> None:
    for name, size in (("googlenet", 32), ("inception_v3", 75)):
        model = _meta_model(name, image_size=size).train()
        out = model(torch.empty(2, 3, size, size, device="meta"))
        assert torch.is_tensor(out), f"{name} returned its auxiliary outputs"


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_first_conv_adaptation_keeps_grey_images(channels: int) -> None:
    torch.manual_seed(0)
    model = tvm.mobilenet_v3_small(num_classes=5)
    conv = model.features[0][0]
    grey = torch.randn(2, 1, 16, 16)
    expected = conv(grey.expand(2, 3, 16, 16))
    adapt_first_conv(model, channels)
    new = model.features[0][0]
    assert new is not conv and new.in_channels == channels
    assert (new.stride, new.padding, new.out_channels) == (conv.stride, conv.padding,
                                                          conv.out_channels)
    torch.testing.assert_close(new(grey.expand(2, channels, 16, 16)), expected)


def test_weights_from_a_file_fine_tune_a_torchvision_model(tmp_path) -> None:  # type: ignore
    source = get_model("squeezenet1_1", num_classes=10, image_size=32)
    path = tmp_path / "weights.pt"
    torch.save(source.state_dict(), path)
    model = get_model("squeezenet1_1", num_classes=3, image_size=32)
    warnings = load_initial_weights(model, path)
    assert len(warnings) == 1 and "classifier.1" in warnings[0]
    assert torch.equal(model.features[0].weight, source.features[0].weight)


def test_config_accepts_torchvision_names() -> None:
    cfg = RunConfig()
    cfg.set("model.name", "mobilenet_v3_small")
    assert "model.name" not in dict(config_problems(cfg))
    cfg.set("model.name", "mobilenet_v9")
    assert "model.name" in dict(config_problems(cfg))


def test_unknown_names_mention_torchvision() -> None:
    with pytest.raises(ModelError, match="torchvision") as err:
        get_model("resnet9000", num_classes=10)
    assert "small_cnn" in str(err.value) and "\n" not in str(err.value)


def test_models_command_marks_small_image_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(TORCHVISION) | set(OWN) <= set(rows)
    assert " 32+ " in rows["mobilenet_v2"] and "*" in rows["mobilenet_v2"]
    assert "=224" in rows["vit_b_16"] and " * " not in rows["vit_b_16"]
    assert " 75+ " in rows["inception_v3"] and " * " not in rows["inception_v3"]
    assert " 8+ " in rows["resnet20"] and "*" in rows["resnet20"]
