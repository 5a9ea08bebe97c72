"""timm models: block-level units from timm's own grouping, and --model timm:NAME."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

timm = pytest.importorskip("timm")

from learndrop.core import LearnDrop, LearnDropError, discover_units, get_model  # noqa: E402
from learndrop.core.cli import main  # noqa: E402
from learndrop.core.config import RunConfig  # noqa: E402
from learndrop.core.training import config_problems  # noqa: E402
from learndrop.integrations.timm import create_model, timm_units  # noqa: E402


def _names(model: nn.Module) -> list[str]:
    return [u.name for u in discover_units(model)]


def test_resnet_units_are_blocks() -> None:
    model = create_model("resnet10t", num_classes=4)
    assert _names(model) == ["stem", "layer1.0", "layer2.0", "layer3.0", "layer4.0", "head"]
    assert model.learndrop_units()[0] == ("stem", ["conv1", "bn1"])
    assert model.learndrop_units()[-1] == ("head", ["fc"])


def test_mobilenet_units_are_blocks() -> None:
    model = create_model("mobilenetv3_small_050", num_classes=4)
    names = _names(model)
    assert names == ["stem", "blocks.0.0", "blocks.1.0", "blocks.1.1", "blocks.2.0",
                     "blocks.2.1", "blocks.2.2", "blocks.3.0", "blocks.3.1", "blocks.4.0",
                     "blocks.4.1", "blocks.4.2", "blocks.5.0", "head"]
    assert model.learndrop_units()[0] == ("stem", ["conv_stem", "bn1"])
    assert model.learndrop_units()[-1] == ("head", ["conv_head", "classifier"])
    units = discover_units(model)
    assert sum(u.params for u in units) == sum(p.numel() for p in model.parameters())


def test_convnext_units_are_blocks_where_structure_alone_finds_stages() -> None:
    plain = timm.create_model("convnext_atto", num_classes=4)
    assert "stages.0" in _names(plain)  # the engine's structural rule: one unit per stage
    model = create_model("convnext_atto", num_classes=4)
    names = _names(model)
    assert names[:4] == ["stem", "stages.0.blocks.0", "stages.0.blocks.1", "stages.1.blocks.0"]
    assert len(names) == 14 and names[-1] == "head"
    spec = dict(model.learndrop_units())
    assert spec["stages.1.blocks.0"] == ["stages.1.downsample", "stages.1.blocks.0"]


def test_vit_units_are_blocks_and_its_tokens_belong_to_the_stem() -> None:
    model = create_model("vit_tiny_patch16_224", num_classes=4, img_size=32, depth=4)
    assert _names(model) == ["stem", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "head"]
    spec = dict(model.learndrop_units())
    assert spec["stem"] == ["patch_embed", "cls_token", "pos_embed"]
    assert spec["blocks.3"] == ["blocks.3", "norm"]
    units = discover_units(model)
    assert sum(u.params for u in units) == sum(p.numel() for p in model.parameters())


def test_stage_grouped_families_are_split_into_their_blocks() -> None:
    # timm groups CoAtNet and MaxViT by stage; their blocks are plain in the structure
    coatnet = _names(create_model("coatnet_nano_rw_224", num_classes=4))
    assert coatnet[:5] == ["stem", "stages.0.blocks.0", "stages.0.blocks.1",
                           "stages.0.blocks.2", "stages.1.blocks.0"]
    assert len(coatnet) == 19 and coatnet[-2:] == ["norm", "head"]
    maxvit = _names(create_model("maxvit_nano_rw_256", num_classes=4))
    assert maxvit == ["stem", "stages.0", "stages.1.blocks.0", "stages.1.blocks.1",
                      "stages.2.blocks.0", "stages.2.blocks.1", "stages.2.blocks.2",
                      "stages.3.blocks.0", "norm", "head"]


def test_ghostnet_identity_blocks_may_be_skipped() -> None:
    # GhostNet adds its shortcut in place on a slice of a concatenation
    model = create_model("ghostnet_100", num_classes=4)
    ld = LearnDrop(model, torch.optim.SGD(model.parameters(), lr=0.1), mode="skip",
                   example_input=torch.randn(2, 3, 64, 64))
    skippable = {u.name for u in ld.units if u.skippable}
    assert {"blocks.0.0", "blocks.6.1", "blocks.6.2", "blocks.8.3"} <= skippable
    assert not {"stem", "blocks.1.0", "blocks.9.0", "head"} & skippable  # strided, 1x1, head


def test_units_need_a_timm_model() -> None:
    with pytest.raises(LearnDropError, match="not a timm model"):
        timm_units(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)))


def test_train_and_drop_a_timm_model_in_skip_mode() -> None:
    torch.manual_seed(0)
    model = create_model("mobilenetv3_small_050", num_classes=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ld = LearnDrop(model, opt, mode="skip", example_input=torch.randn(2, 3, 32, 32))
    skippable = [u.name for u in ld.units if u.skippable]
    assert "blocks.1.1" in skippable and "blocks.1.0" not in skippable  # 16 -> 24 channels
    block = model.get_submodule("blocks.1.1")
    calls: list[int] = []
    block.conv_pw.register_forward_hook(lambda m, a, o: calls.append(1))
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 4, (4,))
    for step in range(4):
        if step == 2:
            ld.drop("blocks.1.1")
        loss = nn.functional.cross_entropy(ld.model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ld.step()
    assert len(calls) == 2  # bypassed by its shortcut after the drop
    assert all(not p.requires_grad for p in block.parameters())
    assert ld.savings()["train_flops_saved_now"] > 0


def test_model_catalogue_builds_timm_models() -> None:
    model = get_model("timm:resnet10t", num_classes=3, in_channels=1, image_size=16)
    assert model.conv1[0].in_channels == 1 and model.fc.out_features == 3
    assert model.learndrop_units()[1] == ("layer1.0", ["layer1.0"])
    vit = get_model("timm:vit_tiny_patch16_224", num_classes=3, image_size=32)
    assert vit.patch_embed.img_size == (32, 32)
    cfg = RunConfig()
    cfg.set("model.name", "timm:resnet10t")
    assert config_problems(cfg.check()) == []
    with pytest.raises(LearnDropError, match="timm has no model 'resnet10x'"):
        get_model("timm:resnet10x", num_classes=3)
    with pytest.raises(LearnDropError, match="unknown model 'nope:x'"):
        get_model("nope:x", num_classes=3)


def test_command_line_trains_a_timm_model(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--model", "timm:resnet10t", "--dataset", "digits", "--epochs", "1",
            "--batch-size", "64", "--data.limit", "128", "--image-size", "16", "--no-store",
            "--output-dir", str(tmp_path), "--json"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "units dropped   0 of 5" in out and '"status": "finished"' in out
    assert [p.name.startswith("timm-resnet10t-digits-") for p in tmp_path.iterdir()] == [True]
    assert main([*argv[:2], "timm:resnet10x", *argv[3:]]) == 2
    assert "timm has no model 'resnet10x'" in capsys.readouterr().err
    assert main(["models"]) == 0
    assert "timm:NAME" in capsys.readouterr().out


def test_without_timm_the_catalogue_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name.startswith(("timm", "learndrop.integrations.timm")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm fails
    with pytest.raises(LearnDropError, match=r"timm models cannot be loaded .*: pip install "
                                             r"timm \(the learndrop\[timm\] extra\)"):
        get_model("timm:resnet10t", num_classes=3)
