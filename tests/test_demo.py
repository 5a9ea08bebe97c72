"""``make demo``, the headless first look at the product, shows the method working: its
command (the app's defaults) drops settled blocks on digits."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from learndrop.core.cli import main
from learndrop.core.config import RunConfig


def demo_argv() -> list[str]:
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    line = re.search(r"^demo:.*\n\t\$\(VENV\)/bin/learndrop (.*)$", makefile, re.M)
    assert line is not None, "the Makefile has no demo target running learndrop"
    return shlex.split(line.group(1))


def test_the_demo_uses_the_apps_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*demo_argv(), "--print-config", "--no-store"]) == 0
    printed = capsys.readouterr().out
    assert f"epochs = {RunConfig().train.epochs}\n" in printed


@pytest.mark.slow
def test_the_demo_drops_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*demo_argv(), "--no-store", "--quiet", "--json", "--output-dir", str(tmp_path)]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "finished"
    assert len(summary["dropped"]) >= 1 and summary["savings"]["train_flops_saved_total"] > 0.05
    assert summary["final_accuracy"] > 0.9
