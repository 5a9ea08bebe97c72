"""The README's examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest


def _example(heading: str, index: int = 0) -> str:
    """The ``index``-th Python example of the section ``heading`` (its sub-sections too)."""
    text = (Path(__file__).parents[1] / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    code = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(code) > index, heading
    return str(code[index])


def test_readme_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code = _example("In your own training loop")
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("/tmp/model.pt", str(tmp_path / "m.pt")), "README",
                 "exec"), {})
    out = capsys.readouterr().out
    assert "['stem', 'layer1.0', 'layer1.1']" in out
    assert (tmp_path / "m.pt").is_file()


def test_readme_lightning_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("lightning")
    monkeypatch.chdir(tmp_path)
    exec(compile(_example("With PyTorch Lightning"), "README", "exec"), {})
    out = capsys.readouterr().out
    assert "['stem', 'layer1.0', 'layer1.1']" in out


def test_readme_lightning_cache_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("lightning")
    monkeypatch.chdir(tmp_path)
    exec(compile(_example("With PyTorch Lightning", 1), "README", "exec"), {})
    assert capsys.readouterr().out.strip().splitlines()[-1] == "['stem', 'layer1.0'] host"


def test_readme_tensorboard_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tensorboard")
    monkeypatch.chdir(tmp_path)
    exec(compile(_example("In TensorBoard"), "README", "exec"), {})
    assert capsys.readouterr().out.strip() == "runs/resnet20"
    assert list((tmp_path / "runs" / "resnet20").glob("events.out.tfevents.*"))


def test_readme_timm_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("timm")
    exec(compile(_example("With timm models"), "README", "exec"), {})
    out = capsys.readouterr().out
    assert out.strip() == "['stem', 'blocks.0.0', 'blocks.1.0', 'blocks.1.1'] 14"
