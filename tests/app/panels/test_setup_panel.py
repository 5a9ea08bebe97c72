"""The run setup form (pytest-qt, offscreen): fields to config and back, problems marked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from learndrop.app.panels import SetupPanel
from learndrop.core.config import RunConfig, load_config, save_config
from learndrop.core.training import available_devices

pytestmark = pytest.mark.gui


def test_form_to_config_and_back(qtbot: Any, tiny_config: Callable[..., RunConfig],
                                 tmp_path: Path) -> None:
    panel = SetupPanel(RunConfig())
    qtbot.addWidget(panel)
    panel.editor("model.name").set("resnet20")
    panel.editor("train.epochs").widget.setValue(7)
    panel.editor("optim.optimizer").widget.setCurrentText("adam")
    panel.editor("optim.lr").widget.setValue(0.003)
    panel.editor("drop.threshold").widget.setValue(0.35)
    panel.editor("drop.order").widget.setCurrentText("any")
    panel.editor("data.augment").widget.setChecked(True)
    panel.editor("drop.pinned").set(["stage1", "stage2"])
    panel.findChild(type(panel.editor("data.augment").widget), "baseline").setChecked(True)
    cfg = panel.config()
    assert (cfg.model.name, cfg.train.epochs, cfg.optim.optimizer) == ("resnet20", 7, "adam")
    assert cfg.optim.lr == pytest.approx(0.003)
    assert cfg.drop.threshold == pytest.approx(0.35)
    assert (cfg.drop.order, cfg.data.augment, cfg.drop.enabled) == ("any", True, False)
    assert cfg.drop.pinned == ["stage1", "stage2"]

    other = tiny_config(tmp_path, **{"optim.schedule": "step", "train.batch_size": 32,
                                     "drop.mode": "skip", "output.name": "demo"})
    path = save_config(other, tmp_path / "run.toml")
    assert panel.load_file(path)
    assert panel.editor("optim.schedule").widget.currentText() == "step"
    assert panel.editor("train.batch_size").widget.value() == 32
    assert panel.editor("drop.mode").widget.currentText() == "skip"
    assert panel.editor("output.dir").get() == str(tmp_path)
    assert panel.config().to_dict() == load_config(path).to_dict()


def test_absent_device_is_marked_at_its_field(qtbot: Any) -> None:
    present = available_devices()
    absent = next((d for d in ("cuda", "mps") if d not in present), None)
    if absent is None:
        pytest.skip("this machine has every device")
    panel = SetupPanel(RunConfig())
    qtbot.addWidget(panel)
    assert panel.valid
    device = panel.editor("train.device")
    assert device.widget.currentText() == "auto"
    device.set(absent)
    assert device.widget.property("invalid") is True
    assert "not available on this machine" in device.widget.toolTip()
    assert not panel.valid and absent in panel.reason and "\n" not in panel.reason
    device.set(present[-1])
    assert device.widget.property("invalid") is False and panel.valid
