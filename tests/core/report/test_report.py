"""Reports: every format is complete and valid; the command line reaches them all."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import re
import unicodedata
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from factories import UNDONE, UNITS, make_events, make_undone_events, record
from learndrop.core.cli import _store_commands as cli_store
from learndrop.core.errors import LearnDropError
from learndrop.core.report import build_report, export
from learndrop.core.savings import SavingsReport
from learndrop.core.store import RunStore

EPOCHS, STEPS = 4, 10
CHECKS = EPOCHS * STEPS // 2  # the stream checks every second step
SCORED = sum(not u.is_head for u in UNITS)


@pytest.fixture()
def store_path(store_path: Path) -> Path:
    """The store with a Learn&Drop run and its baseline, grouped."""
    record(store_path, make_events("ld-run", epochs=EPOCHS, steps_per_epoch=STEPS))
    record(store_path, make_events("baseline", epochs=EPOCHS, steps_per_epoch=STEPS, drop=False))
    with RunStore(store_path) as store:
        store.create_group("bench", ["baseline", "ld-run"])
    return store_path


def cli(store: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli_store.add_commands(parser.add_subparsers())
    args = parser.parse_args([*argv, "--store", str(store)])
    return int(args.func(args))


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith(("data:", "#")):
                self.external.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_one_self_contained_file(store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "r" / "report.html"
    assert cli(store_path, "report", "ld-run", "-o", str(out)) == 0
    page = _Page()
    page.feed(out.read_text(encoding="utf-8"))
    page.close()
    text = " ".join(page.text)
    assert page.external == []
    assert page.tags.get("svg", 0) >= 8  # the run's five plots and three comparison plots
    assert page.tags.get("polyline", 0) > 10 and page.tags.get("rect", 0) > CHECKS
    for needed in ("block1", "Training FLOPs saved", "Time saved, predicted from FLOPs",
                   "Time saved, measured", "Validation accuracy (full model)", "drop.threshold",
                   "python", "Drop timeline by epoch", "baseline", "loss spiked at step 7"):
        assert needed in text, needed


def test_csv_has_one_row_per_check_and_unit(store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    with RunStore(store_path) as store:
        export(build_report(store, "ld-run"), "csv", out)
        alone = build_report(store, "ld-run", compare=[])
    assert alone.others == []
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    # the group's baseline is compared by default, so both runs' histories are there
    assert len(rows) == 2 * CHECKS * SCORED
    mine = [r for r in rows if r["run"] == "ld-run"]
    assert len(mine) == CHECKS * SCORED
    assert {r["unit"] for r in mine} == {u.name for u in UNITS if not u.is_head}
    first = mine[0]
    assert (first["check"], first["step"], first["unit"]) == ("0", "2", "stem")
    assert float(first["score"]) == pytest.approx(1.0)
    assert any(r["score"] == "" for r in mine)  # dropped units have no score


def test_json_has_everything(store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.json"
    assert cli(store_path, "report", "ld-run", "--compare", "baseline", "-o", str(out)) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    run = data["run"]
    assert run["run"]["name"] == "ld-run" and run["run"]["environment"]["python"]
    assert len(run["epochs"]) == EPOCHS and len(run["score_checks"]) == CHECKS
    assert [u["name"] for u in run["units"]] == [u.name for u in UNITS]
    assert run["units"][0]["drop_step"] == 6 and run["drops"][0]["epoch_number"] == 1
    # the engine's FLOP-predicted time saved, with the measured figure's range
    sav = run["savings"]
    assert sav["predicted_time_saved_s_total"] == pytest.approx(0.06 * 2)
    assert sav["time_saved_low_s_total"] <= sav["time_saved_s_total"] \
        <= sav["time_saved_high_s_total"]
    assert data["baseline"] == "baseline" and data["compared_with"][0]["run"]["name"] == \
        "baseline"


# ---- reading a PDF back: enough of the format for what Qt's PDF writer produces -------------
def _pdf_objects(data: bytes) -> dict[int, bytes]:
    """Each object's bytes, cut at the offsets the cross-reference table gives (a search for
    "endobj" could stop inside compressed binary that happens to hold those bytes)."""
    xref = int(re.findall(rb"startxref\s+(\d+)", data)[-1])
    lines = iter(data[xref:].split(b"\n")[1:])
    starts: dict[int, int] = {}
    for line in lines:
        head = line.split()
        if len(head) != 2:  # the trailer: the table is over
            break
        first, count = int(head[0]), int(head[1])
        for i in range(count):
            offset, _gen, kind = next(lines).split()[:3]
            if kind == b"n":
                starts[first + i] = int(offset)
    ends = sorted([*starts.values(), xref])
    out = {}
    for num, start in starts.items():
        body = data[start:ends[ends.index(start) + 1]]
        body = re.sub(rb"^\s*\d+\s+\d+\s+obj\s", b"", body)
        out[num] = body[:body.rindex(b"endobj")]
    return out


def _pdf_ref(obj: bytes, key: bytes) -> int:
    m = re.search(rb"/" + key + rb"\s+(\d+) 0 R", obj)
    assert m, (key, obj[:200])
    return int(m[1])


def _pdf_stream(obj: bytes, objs: dict[int, bytes]) -> bytes:
    """A stream object's data: its /Length bytes after "stream" (the length given in place
    or in an object of its own), inflated when compressed."""
    m = re.search(rb"stream\r?\n", obj)
    assert m, obj[:200]
    length = re.search(rb"/Length\s+(\d+)(\s+0\s+R)?", obj[:m.start()])
    assert length, obj[:200]
    n = int(objs[int(length[1])].strip()) if length[2] else int(length[1])
    raw = obj[m.end():m.end() + n]
    return zlib.decompress(raw) if b"/FlateDecode" in obj[:m.start()] else raw


def _utf16(hex_text: bytes) -> str:
    return bytes.fromhex(hex_text.decode()).decode("utf-16-be")


def _to_unicode(cmap: bytes) -> dict[int, str]:
    """A font's ToUnicode CMap: glyph code -> text."""
    out: dict[int, str] = {}
    hexa = rb"<([0-9a-fA-F]+)>"
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", cmap, re.S):
        for code, text in re.findall(hexa + rb"\s*" + hexa, block):
            out[int(code, 16)] = _utf16(text)
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", cmap, re.S):
        for lo, hi, dst in re.findall(hexa + rb"\s*" + hexa + rb"\s*(<[0-9a-fA-F]+>|\[[^]]*\])",
                                      block):
            codes = range(int(lo, 16), int(hi, 16) + 1)
            if dst.startswith(b"["):
                out.update(zip(codes, map(_utf16, re.findall(hexa, dst))))
            else:
                out.update((c, chr(int(dst[1:-1], 16) + i)) for i, c in enumerate(codes))
    return out


def pdf_pages(data: bytes) -> list[str]:
    """The text of each page, in order, without spaces (glyphs are placed one by one)."""
    objs = _pdf_objects(data)
    pages = [obj for obj in objs.values() if re.search(rb"/Type\s*/Page[\s/>]", obj)]
    texts = []
    for page in pages:
        resources = objs[_pdf_ref(page, b"Resources")]
        fonts = re.search(rb"/Font\s*<<(.*?)>>", resources, re.S)
        cmaps = {name: _to_unicode(_pdf_stream(objs[_pdf_ref(objs[int(num)], b"ToUnicode")],
                                               objs))
                 for name, num in re.findall(rb"/(\w+)\s+(\d+) 0 R", fonts[1] if fonts else b"")}
        chars: list[str] = []
        cmap: dict[int, str] = {}
        for op in re.finditer(rb"/(\w+)\s+[\d.]+\s+Tf|<([0-9a-fA-F]*)>\s*Tj",
                              _pdf_stream(objs[_pdf_ref(page, b"Contents")], objs)):
            if op[1] is not None:
                cmap = cmaps[op[1]]
            else:
                chars += [cmap.get(int(op[2][i:i + 4], 16), "\ufffd")
                          for i in range(0, len(op[2]), 4)]
        text = unicodedata.normalize("NFKC", "".join(chars))  # the fi ligature as f, i
        texts.append(re.sub(r"\s+", "", text))
    count = re.search(rb"/Type\s*/Pages\b.*?/Count\s+(\d+)", data, re.S)
    assert count and int(count[1]) == len(pages), "the page tree counts other pages"
    return texts


@pytest.mark.gui
def test_pdf_has_pages_and_plots(store_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("PySide6.QtSvg")
    out = tmp_path / "report.pdf"
    assert cli(store_path, "report", "ld-run", "--format", "pdf", "-o", str(out)) == 0
    data = out.read_bytes()
    assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF")
    pages = pdf_pages(data)
    assert len(pages) >= 2
    assert pages[0].startswith("Learn&Dropreport:ld-runcomparedwithbaseline"), pages[0][:80]
    text = "".join(pages)
    for needed in ("block1", "Training FLOPs saved", "Time saved, predicted from FLOPs",
                   "Time saved, measured", "Validation accuracy (full model)", "drop.threshold",
                   "Drop timeline by epoch", "baseline", "loss spiked at step 7"):
        assert needed.replace(" ", "") in text, needed
    assert data.count(b"/Subtype /Image") >= 8  # every plot is in it


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                    reason="tensorboard is not installed")
def test_tensorboard_event_files(store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "tb"
    assert cli(store_path, "report", "ld-run", "--format", "tensorboard", "-o", str(out)) == 0
    assert list((out / "ld-run").glob("events.out.tfevents.*"))
    assert list((out / "baseline").glob("events.out.tfevents.*"))


def test_tensorboard_missing_is_one_line(store_path: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(LearnDropError, match="pip install tensorboard") as info:
        cli(store_path, "report", "ld-run", "--format", "tensorboard", "-o",
            str(tmp_path / "tb"))
    assert "\n" not in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else False,
                    reason="root can write anywhere")
def test_read_only_folder_is_one_line(store_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(LearnDropError, match="cannot write") as info:
            cli(store_path, "report", "ld-run", "-o", str(folder / "r.html"))
    finally:
        folder.chmod(0o700)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fmt", ["html", "csv", "json"])
def test_unwritable_path_is_one_line(store_path: Path, tmp_path: Path, fmt: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / f"report.{fmt}"
    with pytest.raises(LearnDropError, match="cannot write") as info:
        cli(store_path, "report", "ld-run", "--format", fmt, "-o", str(target))
    assert "\n" not in str(info.value)
    assert blocker.read_text() == "not a folder"


def test_unknown_format_suffix(store_path: Path, tmp_path: Path) -> None:
    with pytest.raises(LearnDropError, match="--format"):
        cli(store_path, "report", "ld-run", "-o", str(tmp_path / "r.docx"))


def test_runs_show_compare_rm(store_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(store_path, "runs") == 0
    table = capsys.readouterr().out
    assert "ld-run" in table and "baseline" in table and "TRAIN FLOPS SAVED" in table
    assert cli(store_path, "runs", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in listed} == {"ld-run", "baseline"}
    assert cli(store_path, "show", "ld") == 0
    shown = capsys.readouterr().out
    assert "block1" in shown and "Time saved, predicted from FLOPs" in shown
    assert cli(store_path, "compare", "ld-run", "baseline") == 0
    compared = capsys.readouterr().out
    assert "Speed-up vs baseline" in compared and "stem, block1" in compared
    with pytest.raises(LearnDropError, match="--yes"):
        cli(store_path, "rm", "ld-run")  # no terminal to ask on
    assert cli(store_path, "rm", "ld-run", "--yes") == 0
    capsys.readouterr()
    assert cli(store_path, "runs", "--json") == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["baseline"]
    with pytest.raises(LearnDropError, match="no run 'ld-run'"):
        cli(store_path, "show", "ld-run")


def test_user_actions_in_show_and_reports(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A unit pinned by hand is "pinned" (not "trained") in show and the reports, which
    list what was done and when; a unit pinned after its drop is trained again."""
    from learndrop.core.events import UserAction

    path = tmp_path / "store.sqlite"
    stream = make_events("pinned-run", epochs=EPOCHS, steps_per_epoch=STEPS)
    first_check = next(i for i, (hook, _) in enumerate(stream) if hook == "on_scores")
    when = 1_700_000_000.0
    stream.insert(first_check + 1, ("on_user_action",
                                    UserAction("pin", "block2", 2, 0.2, when)))
    stream.insert(len(stream) - 1, ("on_user_action", UserAction("pin", "stem", 30, 3.0,
                                                                 when + 60)))
    record(path, stream)
    with RunStore(path) as store:
        report = build_report(store, "pinned-run")
    states = {u.name: u.state for u in report.run.unit_rows()}
    assert states == {"stem": "pinned", "block1": "dropped (policy)", "block2": "pinned",
                      "head": "head"}
    assert report.run.pinned_at_end() == ["block2", "stem"]
    html = export(report, "html", tmp_path / "r.html").read_text()
    assert "Your actions" in html and "pinned block2" in html
    data = json.loads(export(report, "json", tmp_path / "r.json").read_text())
    assert [a["action"] for a in data["run"]["actions"]] == ["pin", "pin"]
    assert cli(path, "show", "pinned-run") == 0
    out = capsys.readouterr().out
    assert "Your actions" in out and "pinned stem" in out
    assert "block2" in out and "trained" not in out.split("Units", 1)[1].split("Drops")[0]


def test_comparison_legend_keeps_alike_names_apart(tmp_path: Path) -> None:
    """Default names differ at their end (the start time): the plots' legend must not cut
    both to the same text; a caption names dashed baselines only when one is drawn."""
    import re

    path = tmp_path / "store.sqlite"
    names = ["small_cnn-digits-20261201-153012", "small_cnn-digits-20261201-160544"]
    for name in names:
        record(path, make_events(name, epochs=EPOCHS, steps_per_epoch=STEPS))
    with RunStore(path) as store:
        report = build_report(store, names[0], compare=[names[1]])
    from learndrop.core.report import plots

    charts = {p.key: p for p in plots(report)}
    legend = re.findall(r">([^<]*(?:153012|160544)[^<]*)<", charts["cmp_accuracy"].svg)
    assert len(set(legend)) == 2 and all(len(t) <= 22 for t in legend)
    assert charts["cmp_accuracy"].caption == ""  # no baseline drawn, no dashed line


def _with_summary(stream: list, **fields: object) -> list:
    import dataclasses

    hook, end = stream[-1]
    return [*stream[:-1], (hook, dataclasses.replace(
        end, summary=dataclasses.replace(end.summary, **fields)))]


def test_compare_flags_a_speedup_under_another_load(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Two runs with the same settings, one on a busy machine: the compare table gives the
    speed-up with the reason it is not a result."""
    store = tmp_path / "store.sqlite"
    machine = "host: cpu x 2, cpu"
    record(store, _with_summary(make_events("quiet", drop=False), wall_time_s=20.0,
                                machine=machine, load_per_cpu=1.0,
                                savings=SavingsReport(step_time_spread_now=0.05)))
    record(store, _with_summary(make_events("busy", drop=False), wall_time_s=116.6,
                                machine=machine, load_per_cpu=3.1,
                                savings=SavingsReport(step_time_spread_now=0.3)))
    record(store, _with_summary(make_events("same", drop=False), wall_time_s=21.0,
                                machine=machine, load_per_cpu=1.1,
                                savings=SavingsReport(step_time_spread_now=0.05)))
    assert cli(store, "compare", "quiet", "busy") == 0
    out = capsys.readouterr().out
    assert "5.83x (not a result: machine load 1.0 vs 3.1 per CPU)" in out
    assert cli(store, "compare", "quiet", "same") == 0
    assert "1.05x (not a result: within step-time noise" in capsys.readouterr().out


def test_runs_recorded_before_the_prediction_was_stored(tmp_path: Path) -> None:
    """Without the engine's figure, the prediction is the share of training FLOPs saved
    over the run (0.21) x the full step time x the steps."""
    import dataclasses

    stream = [(hook, dataclasses.replace(ev, savings=dataclasses.replace(
                  ev.savings, predicted_time_saved_s_total=None)))
              if hook == "on_epoch_end" else (hook, ev)
              for hook, ev in make_events("old", epochs=EPOCHS, steps_per_epoch=STEPS)]
    store = tmp_path / "store.sqlite"
    record(store, stream)
    with RunStore(store) as s:
        report = build_report(s, "old")
    assert report.run.savings().predicted_time_saved_s_total == pytest.approx(0.21 * 0.25 * 40)


def test_a_run_that_ended_before_any_epoch_measured_no_savings(tmp_path: Path) -> None:
    """No epoch ended, so no savings record: the tables say so with dashes (not 0%), and
    the JSON gives every figure as null but the network's parameter count."""
    from learndrop.core.format import DASH
    from learndrop.core.report import report_dict, tables

    stream = [(hook, ev) for hook, ev in make_events("early", status="stopped")
              if hook not in ("on_epoch_end", "on_checkpoint")]
    store = tmp_path / "store.sqlite"
    record(store, stream)
    with RunStore(store) as s:
        report = build_report(s, "early")
    run = report.run
    assert run.savings() is None
    rows = dict(tables.savings_rows(run))
    assert rows["Trainable parameters at the end"] == f"{DASH} of 29.0 k"
    assert {v for k, v in rows.items() if k != "Trainable parameters at the end"} == {DASH}
    headline = dict(tables.headline_rows(run))
    assert headline["Training FLOPs saved"] == DASH == headline["Time saved, measured"]
    savings = report_dict(report)["run"]["savings"]
    assert savings["total_params"] == 28_954
    assert savings["train_flops_saved_total"] is None and savings["step"] is None


def _undone_store(tmp_path: Path) -> Path:
    path = tmp_path / "store.sqlite"
    record(path, make_undone_events("undone-run", epochs=EPOCHS, steps_per_epoch=STEPS))
    return path


def test_restores_in_the_reports(tmp_path: Path) -> None:
    """A drop the policy undid is listed next to the drops, with the losses before and
    after it, in the report's model, HTML (table and chart mark), JSON and drop timeline;
    its unit is "restored", not dropped."""
    from learndrop.core.report import tables

    with RunStore(_undone_store(tmp_path)) as store:
        report = build_report(store, "undone-run")
    assert report.run.restores == [UNDONE]
    states = {u.name: u.state for u in report.run.unit_rows()}
    assert states == {"stem": "restored", "block1": "dropped (policy)", "block2": "trained",
                      "head": "head"}
    assert tables.drop_timeline([report.run])[1][0] == ["1", "stem, stem restored, block1"]
    html = export(report, "html", tmp_path / "r.html").read_text()
    assert "<h2>Restores</h2>" in html and "0.4125" in html and "0.5311" in html
    assert "stem restored" in html  # the mark on the score chart
    data = json.loads(export(report, "json", tmp_path / "r.json").read_text())
    (shown,) = data["run"]["restores"]
    assert (shown["unit"], shown["step"], shown["loss_before"], shown["loss_after"]) == (
        "stem", 8, 0.4125, 0.5311)
    assert shown["text"] == UNDONE.text and shown["epoch_number"] == 1
    assert {u["name"]: u["state"] for u in data["run"]["units"]}["stem"] == "restored"


def test_show_lists_restores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(_undone_store(tmp_path), "show", "undone-run") == 0
    out = capsys.readouterr().out
    assert "Drops undone" in out
    restores = out.split("Restores", 1)[1]
    assert "stem" in restores and "0.4125" in restores and "0.5311" in restores
    assert "1 of 3 at the end (2 drops)" in out
    units = out.split("\nUnits\n", 1)[1].split("\nDrops\n")[0]
    assert "restored" in units


@pytest.mark.parametrize("drop,cadence", [
    ({"check_every": 50, "checks_per_epoch": 2}, "every 50 steps"),
    ({"checks_per_epoch": 2}, "twice an epoch"), ({"checks_per_epoch": 4}, "4 times an epoch"),
    ({}, "once an epoch")])  # a run recorded before checks_per_epoch existed
def test_the_drop_rule_line_gives_the_runs_check_cadence(drop: dict, cadence: str) -> None:
    from types import SimpleNamespace

    from learndrop.core.report.tables import policy_text

    run = SimpleNamespace(record=SimpleNamespace(drop_enabled=True),
                          start=SimpleNamespace(config={"drop": {"threshold": 0.7, **drop}}))
    assert policy_text(run).endswith(f"checks {cadence}")  # type: ignore[arg-type]
