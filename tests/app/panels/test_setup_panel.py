"""The run setup form (pytest-qt, offscreen): fields to config and back, problems marked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

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


def test_messages_speak_the_forms_language() -> None:
    from learndrop.app.panels import form_words

    assert form_words("cifar10 not found in /data: pass --data.download true or point "
                      "--data-root at a folder holding it") == (
        "cifar10 not found in /data: tick \u201cDownload\u201d or choose the \u201cData "
        "folder\u201d that holds it")
    assert form_words("drop.mode=cache reuses each sample's activations: turn data.augment "
                      "off or use mode=freeze") == (
        "\u201cDrop mode\u201d cache reuses each sample's activations: turn \u201cAugment\u201d "
        "off or use \u201cDrop mode\u201d freeze")
    assert form_words("out of memory on cuda with batch size 64: try --batch-size 32") == (
        "out of memory on cuda with batch size 64: try \u201cBatch size\u201d 32")
    assert form_words("optim.lr must be at least 1e-08, got -1.0") == (
        "\u201cLearning rate\u201d must be at least 1e-08, got -1.0")
    assert form_words("pick small_cnn or mobilenet_v2") == "pick small_cnn or mobilenet_v2"
    # the flags the command line takes name the same settings here
    assert form_words("try --warmup-epochs 0 or --run-name a") == (
        "try \u201cWarm-up (epochs)\u201d 0 or \u201cRun name\u201d a")


def test_a_value_out_of_range_is_reported_not_reverted_silently(qtbot: Any) -> None:
    panel = SetupPanel(RunConfig())
    qtbot.addWidget(panel)
    panel.show()
    notices: list[str] = []
    panel.notice.connect(notices.append)
    spin = panel.editor("train.epochs").widget
    before = spin.value()
    spin.lineEdit().setText("0")  # the least is 1
    spin.interpretText()  # what leaving the field or pressing Enter does
    assert spin.value() == before and spin.text() == str(before)
    text = panel.rejected_text
    assert text.startswith("\u201cEpochs\u201d: 0 is below the smallest allowed, 1")
    assert text.endswith(f"it stays {before}") and notices == [text]
    lr = panel.editor("optim.lr").widget
    lr.lineEdit().setText("50")
    lr.interpretText()
    # the learning rate's line comes first, and the epochs' stays under it: nothing typed
    # and refused goes without a word
    lines = panel.rejected_text.split("\n")
    assert lines[0].startswith("\u201cLearning rate\u201d: 50 is above the largest")
    assert lines[1] == text
    panel.editor("train.epochs").widget.setValue(3)  # editing a field clears its line
    assert panel.rejected_text.split("\n") == [lines[0]]
    lr.setValue(0.01)
    assert panel.rejected_text == ""


def test_a_data_set_that_needs_a_download_says_so_before_start(qtbot: Any,
                                                               tmp_path: Path) -> None:
    panel = SetupPanel(RunConfig())
    qtbot.addWidget(panel)
    panel.editor("data.root").set(str(tmp_path))
    panel.editor("data.dataset").set("cifar10")
    assert not panel.valid
    assert "cifar10 is not in" in panel.reason and "\u201cDownload\u201d" in panel.reason
    assert panel.editor("data.dataset").widget.property("invalid") is True
    panel.editor("data.download").set(True)
    assert panel.valid
    hint = panel._hints["data.dataset"]
    assert "downloaded into" in hint.text() and str(tmp_path) in hint.text()
    (tmp_path / "cifar-10-batches-py").mkdir()
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5"):
        (tmp_path / "cifar-10-batches-py" / name).write_bytes(b"")
    panel.editor("data.download").set(False)
    assert panel.valid and "downloaded" not in hint.text()  # already there


def test_an_unknown_model_name_is_marked_at_its_field(qtbot: Any) -> None:
    """The catalogues are the run's check, not the config's: the form still asks them."""
    panel = SetupPanel(RunConfig())
    qtbot.addWidget(panel)
    model = panel.editor("model.name")
    model.set("resnet9000")
    assert model.widget.property("invalid") is True
    assert "unknown model 'resnet9000'" in model.widget.toolTip()
    assert not panel.valid and "resnet9000" in panel.reason
    model.set("small_cnn")
    assert model.widget.property("invalid") is False and panel.valid


def test_an_image_folder_that_is_not_there_is_marked_before_start(qtbot: Any,
                                                                  tmp_path: Path) -> None:
    """Your own images in a folder that does not exist (or a file) are said at the field
    and block Start, instead of a run that starts and fails."""
    panel = SetupPanel(RunConfig())
    qtbot.addWidget(panel)
    panel.editor("data.dataset").set("imagefolder")
    root = panel.editor("data.root")
    missing = tmp_path / "no-such-folder"
    root.set(str(missing))
    assert not panel.valid
    assert f"{missing} does not exist" in panel.reason and "\n" not in panel.reason
    assert root.widget.property("invalid") is True
    a_file = tmp_path / "images.zip"
    a_file.write_bytes(b"")
    root.set(str(a_file))
    assert not panel.valid and "is a file, not a folder" in panel.reason
    root.set(str(tmp_path))
    assert panel.valid and root.widget.property("invalid") is False


def test_a_number_typed_out_of_range_returns_the_field_to_its_value_before(
        qtbot: Any) -> None:
    """Typed key by key, the part of a refused number that fit (the 1 of 1e9, the 99999 of
    99999999999) never replaces the value: the field goes back to the one it had before the
    typing, and says so; a field left empty goes back to it too."""
    panel = SetupPanel(RunConfig())
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)

    def type_into(path: str, text: str) -> Any:
        spin = panel.editor(path).widget
        spin.setFocus()
        spin.lineEdit().selectAll()
        qtbot.keyClicks(spin.lineEdit(), text)
        qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
        return spin

    lr = type_into("optim.lr", "1e9")
    assert lr.value() == 0.05 and lr.text() == "0.05"
    assert panel.rejected_text == ("\u201cLearning rate\u201d: 1e9 is above the largest "
                                   "allowed, 10; it stays 0.05")
    assert panel.config().optim.lr == 0.05
    epochs = type_into("train.epochs", "99999999999")
    assert epochs.value() == 10 and panel.config().train.epochs == 10
    assert panel.rejected_text.split("\n")[0].endswith("it stays 10")
    # a number the field takes is kept, and is what a later refusal returns to
    assert type_into("train.epochs", "12").value() == 12
    assert type_into("train.epochs", "0").value() == 12
    # emptied and left: back to its value, not the digit left on the way
    epochs.lineEdit().selectAll()
    qtbot.keyClick(epochs.lineEdit(), Qt.Key.Key_Backspace)
    qtbot.keyClick(epochs.lineEdit(), Qt.Key.Key_Return)
    assert epochs.value() == 12 and epochs.text() == "12"
    assert panel.config().train.epochs == 12
