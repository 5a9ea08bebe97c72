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


@pytest.mark.parametrize("rank,says", [("0", 1), ("1", 0)])
def test_one_ctrl_c_under_nproc_is_announced_once(rank: str, says: int,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The launcher passes Ctrl-C to every rank; only rank 0 says that the run stops."""
    import signal

    from learndrop.core.cli import _running
    from learndrop.core.training import RunControl

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    handlers: dict[int, object] = {}
    monkeypatch.setattr(signal, "signal", lambda sig, fn: handlers.setdefault(sig, fn))
    control = RunControl()
    _running.install_signal_handlers(control)
    handlers[signal.SIGINT](signal.SIGINT, None)  # type: ignore[operator]
    assert control.stop_requested
    assert capsys.readouterr().err.count("stopping after this batch") == says


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("command", ["runs", "train"])
def test_a_full_standard_output_is_one_plain_line(command: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  run_cli: RunCli) -> None:
    """``learndrop runs > /dev/full``: one line on stderr, as for a broken pipe; the run
    itself is recorded."""
    import sys

    from factories import store_status

    store = tmp_path / "store.sqlite"
    argv = (["runs", "--store", str(store)] if command == "runs" else
            ["train", *tiny_flags(**{"train.epochs": 1}), "--store", str(store),
             "--output-dir", str(tmp_path), "--run-name", "r", "--json", "--quiet"])
    with open("/dev/full", "w", encoding="utf-8") as full:
        monkeypatch.setattr(sys, "stdout", full)
        code, _, err = run_cli(argv)
        monkeypatch.undo()
    assert code == 1 and "cannot write to standard output" in one_line(err)
    assert "No space left on device" in err
    if command == "train":
        assert store_status(store) == [("r", "finished")]
