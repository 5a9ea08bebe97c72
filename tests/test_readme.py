"""The README's plug-and-play example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest


def test_readme_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    text = (Path(__file__).parents[1] / "README.md").read_text()
    section = text.split("## In your own training loop", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    monkeypatch.chdir(tmp_path)
    exec(compile(code.group(1).replace("/tmp/model.pt", str(tmp_path / "m.pt")), "README",
                 "exec"), {})
    out = capsys.readouterr().out
    assert "['stem', 'layer1.0', 'layer1.1']" in out
    assert (tmp_path / "m.pt").is_file()
