"""Bad input whose message used to point the wrong way, or that was taken silently: a JSON
config that names a key twice, a TOML file with a byte-order mark, an unbounded
--check-every, weights that are a FIFO or a link to a device, a full standard output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from factories import RunCli, one_line, tiny_flags


def test_a_json_config_that_names_a_key_twice_is_refused(tmp_path: Path,
                                                         run_cli: RunCli) -> None:
    cfg = tmp_path / "run.json"
    cfg.write_text('{"train": {"epochs": 1, "epochs": 2}}')
    code, _, err = run_cli(["train", "--config", str(cfg), "--print-config"])
    assert code == 2 and "'epochs' twice" in one_line(err) and str(cfg) in err


@pytest.mark.parametrize("suffix,text", [(".toml", "[train]\nepochs = 3\n"),
                                         (".json", '{"train": {"epochs": 3}}')])
def test_a_config_file_with_a_byte_order_mark_is_read(tmp_path: Path, run_cli: RunCli,
                                                      suffix: str, text: str) -> None:
    cfg = tmp_path / f"run{suffix}"
    cfg.write_bytes(b"\xef\xbb\xbf" + text.encode())  # as Notepad saves "UTF-8 with BOM"
    code, out, err = run_cli(["train", "--config", str(cfg), "--print-config"])
    assert code == 0, err
    assert "\nepochs = 3\n" in out


@pytest.mark.parametrize("flag", ["--check-every", "--drop.check_every"])
def test_check_every_is_bounded(flag: str, run_cli: RunCli) -> None:
    code, _, err = run_cli(["train", flag, "999999999999999999999", "--print-config"])
    assert code == 2 and "check_every must be at most" in one_line(err)


@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_weights_that_are_not_a_file_are_named_so(kind: str, tmp_path: Path,
                                                  run_cli: RunCli) -> None:
    weights = tmp_path / "w.pt"
    if kind == "fifo":
        os.mkfifo(weights)
    else:
        weights.symlink_to("/dev/zero")
    code, _, err = run_cli(["train", *tiny_flags(), "--no-store", "--output-dir",
                            str(tmp_path), "--model.weights", str(weights), "--quiet"])
    line = one_line(err)
    assert code == 2 and "not a regular file" in line and "does not exist" not in line
