"""The run library, the app's door to the run store: reading only when the store changed,
display names, replaying, and a store that cannot be used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from learndrop.app.services import RunLibrary
from learndrop.core.errors import LearnDropError
from learndrop.core.monitor import RunHistory
from learndrop.core.store import RunNotFoundError, RunStore, StoreError


def test_runs_are_read_again_only_after_a_change(store_copy: Path, recorded: Any) -> None:
    library = RunLibrary(store_copy)
    seen: list[list[Any]] = []
    library.runs_changed.connect(seen.append)
    assert library.changed()  # never read
    assert [r.id for r in library.refresh()] == [recorded.base, recorded.ld]
    assert len(seen) == 1 and library.records == seen[0]
    assert not library.changed()
    library.refresh()
    assert len(seen) == 1, "the same runs again are no change"

    with RunStore(store_copy) as other:  # another program writes
        other.set_note(recorded.ld, "written elsewhere")
    assert library.changed()
    library.refresh()
    assert len(seen) == 2 and library.get_run(recorded.ld).note == "written elsewhere"
    library.close()


def test_display_names_are_one_short_line(store_copy: Path, recorded: Any) -> None:
    library = RunLibrary(store_copy)
    own = library.get_run(recorded.base).name
    assert library.rename(recorded.base, "  My baseline ").label == "My baseline"
    for bad in ("two\nlines", "x" * 201):
        with pytest.raises(StoreError, match="one line of at most 200"):
            library.rename(recorded.base, bad)
    assert library.get_run(recorded.base).display_name == "My baseline"
    assert library.rename(recorded.base, own).display_name == ""  # its own name: cleared
    library.set_note(recorded.base, "a note\n\n")
    assert library.get_run(recorded.base).note == "a note"
    library.close()


def test_replay_prepares_the_target_only_when_the_run_can_be_read(
        library: RunLibrary, recorded: Any) -> None:
    prepared: list[bool] = []
    history = RunHistory()
    with pytest.raises(RunNotFoundError):
        library.replay(999_999, history, prepare=lambda: prepared.append(True))
    assert not prepared and history.fit_start is None
    delivered = library.replay(recorded.ld, history, prepare=lambda: prepared.append(True))
    assert prepared == [True] and delivered > 0
    assert history.fit_end is not None and history.fit_end.status == "finished"
    assert len(history.epochs) == recorded.counts(recorded.ld)["EpochEnd"]


def test_a_store_that_cannot_be_used_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "store.sqlite"
    broken.write_bytes(b"this is not a run store" * 100)
    library = RunLibrary(broken)
    for call in (library.refresh, library.recording_path):
        with pytest.raises(LearnDropError) as err:
            call()
        assert "store.sqlite" in err.value.message and "\n" not in err.value.message
    fresh = RunLibrary(tmp_path / "new" / "store.sqlite")
    assert fresh.recording_path() == tmp_path / "new" / "store.sqlite"
    assert fresh.refresh() == []
    fresh.close()
