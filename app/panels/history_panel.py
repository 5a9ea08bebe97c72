"""The run history: every run of the run store in a table, and what can be done with one.

Open replays a stored run into the live views (the same hooks the training bridge calls, in
the order the run emitted them); a run that is still training elsewhere (``learndrop train``
in a terminal, say) is followed live instead. Resume asks the window to continue a stopped,
interrupted or failed run from its checkpoint, and Use these settings to load a run's settings
into the form. While this window trains, Open, Follow and Resume are refused with a one-line
message, so the run in progress is never hidden; Compare, Export, Rename, Note and Delete
work at any time.

The panel shows and asks; the :class:`~learndrop.app.services.RunLibrary` it is given reads and
changes the store. The table refreshes itself every few seconds while it is visible, and only
reads the store when the library says its files changed since the last look (plus once every
half minute, to notice runs whose process died).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from PySide6.QtCore import QPoint, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCursor, QGuiApplication, QShowEvent
from PySide6.QtWidgets import QInputDialog, QLabel, QToolBar, QVBoxLayout, QWidget

from learndrop.core.errors import LearnDropError
from learndrop.core.report import tables as fmt

from ..dialogs import CompareDialog, ExportDialog
from ..dialogs.standard import confirm
from ..services import RESUMABLE, RunLibrary
from ..theme import current_theme
from .history_actions import build_actions, show_context_menu, update_actions
from .launchers import open_side_by_side, open_what_if
from .live_panel import LivePanel
from .run_table import COLUMNS, RunTable

if TYPE_CHECKING:  # records come from the run library; the panel only reads them
    from learndrop.core.store import RunRecord

__all__ = ["HistoryPanel", "COLUMNS", "REFRESH_INTERVAL_MS"]

REFRESH_INTERVAL_MS = 3000
_BUSY = ("Training is running in this window: open or follow a stored run after it ends "
         "(Compare and Export work now)")


@contextmanager
def _wait_cursor() -> Iterator[None]:
    QGuiApplication.setOverrideCursor(QCursor(Qt.CursorShape.WaitCursor))
    try:
        yield
    finally:
        QGuiApplication.restoreOverrideCursor()


class HistoryPanel(QWidget):
    """The run history table with its actions.

    ``library`` reads and changes the run store; ``live`` is the live view that Open and
    Follow feed; ``busy()`` says whether this window is training now.
    ``run_opened(run id, label, how)`` after Open (``how`` = "open") or Follow ("follow");
    ``following_ended(status, label)`` (status empty when following failed); ``message(text)``
    carries one-line news and problems. ``resume_requested(run id)`` and
    ``settings_requested(run id)`` ask the window to resume a run or to load its settings.
    """

    run_opened = Signal(int, str, str)
    following_ended = Signal(str, str)
    message = Signal(str)
    resume_requested = Signal(int)
    settings_requested = Signal(int)
    what_if_run_requested = Signal(int, object)  # run id, {setting path: value}
    # made by :func:`.history_actions.build_actions`
    refresh_action: QAction
    open_action: QAction
    follow_action: QAction
    resume_action: QAction
    settings_action: QAction
    compare_action: QAction
    whatif_action: QAction
    many_action: QAction
    export_action: QAction
    rename_action: QAction
    note_action: QAction
    delete_action: QAction
    toolbar: QToolBar

    def __init__(self, library: RunLibrary, live: LivePanel | None = None,
                 busy: Callable[[], bool] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.live = live
        self._busy = busy or (lambda: False)
        self.current_run_id: int | None = None
        self.last_error = ""
        self.windows: list[QWidget] = []
        self.run_table = RunTable()
        self.run_table.activated.connect(lambda: self.open_run())
        self.run_table.menu_requested.connect(self._context_menu)
        self.run_table.selection_changed.connect(self._update_actions)
        build_actions(self)
        self._build_layout()
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_INTERVAL_MS)
        self.timer.timeout.connect(self.auto_refresh)
        self.timer.start()
        library.runs_changed.connect(self.run_table.set_records)
        library.followed_run_started.connect(self._on_followed_run_started)
        library.follow_ended.connect(self._on_follow_ended)
        library.follow_failed.connect(self._on_follow_failed)
        self._update_actions()

    # ---- building ----------------------------------------------------------------------------
    def _build_layout(self) -> None:
        self.run_table.add_tool(self.refresh_action)
        self.notice = QLabel("")
        self.notice.setObjectName("history-notice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        lay = QVBoxLayout(self)
        m = self.fontMetrics().height() // 3
        lay.setContentsMargins(m, m, m, m)
        lay.addWidget(self.toolbar)
        lay.addWidget(self.run_table, 1)
        lay.addWidget(self.notice)
        # as wide as the tool bar, laid out tight: none of its actions hides behind an
        # overflow button
        self.toolbar.setContentsMargins(0, 0, 0, 0)
        bar_layout = self.toolbar.layout()
        if bar_layout is not None:
            bar_layout.setSpacing(0)
            bar_layout.setContentsMargins(0, 0, 0, 0)
        self.setMinimumWidth(self.toolbar.sizeHint().width() + 2 * m)

    # ---- the table ---------------------------------------------------------------------------
    @Slot()
    def auto_refresh(self) -> None:
        """The timer's refresh: only while shown, and only when the store changed."""
        if self.isVisible() and self.library.changed():
            self.refresh(quiet=True)

    @Slot()
    def refresh(self, quiet: bool = False) -> bool:
        """Read the runs again; False (with a one-line message) when the store cannot be read."""
        try:
            self.library.refresh()
        except LearnDropError as exc:
            self._error(exc.message)
            return False
        if self.last_error and not quiet:
            self._clear_notice()
        self.run_table.update_count()
        self._update_actions()
        return True

    def runs(self) -> list[RunRecord]:
        """The runs in the table, in the table's order (after the filter)."""
        return self.run_table.runs()

    def selected_runs(self) -> list[RunRecord]:
        return self.run_table.selected_runs()

    def select_run(self, ref: str | int) -> RunRecord | None:
        """Select the run with this id, name or display name (None when not shown)."""
        return self.run_table.select_run(ref)

    def _one(self, ref: str | int | None) -> RunRecord | None:
        """The run ``ref``, or the single selected one (None with a message otherwise)."""
        if ref is None:
            chosen = self.selected_runs()
            if len(chosen) != 1:
                self._error("select one run in the table first")
                return None
            ref = chosen[0].id
        try:
            return self.library.get_run(ref)
        except LearnDropError as exc:
            self._error(exc.message)
            return None

    # ---- open and follow ---------------------------------------------------------------------
    def open_run(self, ref: str | int | None = None) -> bool:
        """Replay a stored run into the live views (a run still training is followed)."""
        rec = self._one(ref)
        live = self._live_view() if rec is not None else None
        if rec is None or live is None:
            return False
        if rec.status == "running":
            return self.follow_run(rec.id)
        self.library.stop_following()
        try:
            with _wait_cursor():
                self.library.replay(rec.id, live, prepare=live.reset)
        except LearnDropError as exc:
            self._error(exc.message)
            return False
        self.current_run_id = rec.id
        self._info(f"Showing {rec.label} ({rec.status}) from the run history")
        self.run_opened.emit(rec.id, rec.label, "open")
        return True

    def follow_run(self, ref: str | int | None = None) -> bool:
        """Show a run that is being written elsewhere, updating as it trains."""
        rec = self._one(ref)
        live = self._live_view() if rec is not None else None
        if rec is None or live is None:
            return False
        self.library.stop_following()
        live.reset()
        self.current_run_id = rec.id
        self.run_opened.emit(rec.id, rec.label, "follow")
        self._info(f"Following {rec.label} live")
        try:
            self.library.follow(rec.id, live)
        except LearnDropError as exc:
            self._error(exc.message)
            return False
        return True

    def resume_run(self, ref: str | int | None = None) -> bool:
        """Ask the window to continue the run from its checkpoint (it says why when it
        cannot)."""
        rec = self._one(ref)
        if rec is None:
            return False
        if self._busy():
            self._error("Training is running in this window: resume a run after it ends")
            return False
        if rec.status not in RESUMABLE:
            self._error(f"{rec.label} is {rec.status}: only a stopped, interrupted or failed "
                        f"run can be resumed")
            return False
        self.resume_requested.emit(rec.id)
        return True

    def use_settings(self, ref: str | int | None = None) -> bool:
        """Ask the window to load the run's settings into the form."""
        rec = self._one(ref)
        if rec is None:
            return False
        self.settings_requested.emit(rec.id)
        return True

    def show_problem(self, text: str) -> None:
        """Show a one-line problem under the table (the window's, about a run of it)."""
        self._error(text)

    @property
    def following(self) -> bool:
        return self.library.following

    def _live_view(self) -> LivePanel | None:
        """The live view to show a stored run in (None, with a message, when there is none
        or this window is training)."""
        if self.live is None:
            self._error("there is no live view to show the run in")
            return None
        if self._busy():
            self._error(_BUSY)
            return None
        return self.live

    @Slot()
    def _on_followed_run_started(self) -> None:
        # pin and drop requests cannot reach a run that trains in another process
        if self.live is not None:
            self.live.strip.set_actions_enabled(False)

    @Slot(str, str)
    def _on_follow_ended(self, status: str, label: str) -> None:
        self._info(f"{label} {status}: following stopped")
        self.refresh(quiet=True)
        self.following_ended.emit(status, label)

    @Slot(str, str)
    def _on_follow_failed(self, message: str, label: str) -> None:
        self._error(message)
        self.refresh(quiet=True)
        self.following_ended.emit("", label)

    # ---- changing runs -----------------------------------------------------------------------
    def rename_run(self, ref: str | int | None = None, display_name: str | None = None) -> bool:
        """Set the run's display name (asked when not given; empty shows its name again)."""
        rec = self._one(ref)
        if rec is None:
            return False
        if display_name is None:
            text, ok = QInputDialog.getText(
                self, "Rename run", f"Display name for {rec.name}\n(leave empty to show the "
                "run's own name):", text=rec.label)
            if not ok:
                return False
            display_name = text
        name = display_name
        return self._change(lambda: self.library.rename(rec.id, name),
                            f"{rec.name} is now shown as {name.strip() or rec.name}")

    def edit_note(self, ref: str | int | None = None, note: str | None = None) -> bool:
        """Set the run's note (a multi-line editor opens when not given)."""
        rec = self._one(ref)
        if rec is None:
            return False
        if note is None:
            text, ok = QInputDialog.getMultiLineText(
                self, "Note", f"Note about {rec.label}:", rec.note)
            if not ok:
                return False
            note = text
        written = note
        return self._change(lambda: self.library.set_note(rec.id, written),
                            f"Note of {rec.label} saved")

    def delete_run(self, ref: str | int | None = None, ask: bool = True) -> bool:
        """Delete runs (``ref``, else the selected ones) and their folders, after asking."""
        recs = [r for r in [self._one(ref)] if r] if ref is not None else self.selected_runs()
        if not recs:
            self._error("select the runs to delete in the table first")
            return False
        what = (f"run {recs[0].label}" if len(recs) == 1 else f"{len(recs)} runs")
        folders = "its folder" if len(recs) == 1 else "their folders"
        if ask and not confirm(
                self, "Delete runs?" if len(recs) > 1 else "Delete run?",
                f"Delete {what} from the run history, with {folders} (checkpoints and "
                f"weights)? This cannot be undone.", "Delete"):
            return False
        for rec in recs:
            try:
                self.library.delete(rec.id)
            except LearnDropError as exc:
                self._error(exc.message)
                self.refresh(quiet=True)
                return False
            if rec.id == self.current_run_id:
                self.current_run_id = None
        self.refresh(quiet=True)
        self._info(f"Deleted {what}")
        return True

    def _change(self, change: Callable[[], object], done: str) -> bool:
        try:
            change()
        except LearnDropError as exc:
            self._error(exc.message)
            return False
        self.refresh(quiet=True)
        self._info(done)
        return True

    # ---- compare and export ------------------------------------------------------------------
    def compare_with(self, ref: str | int | None = None, other: str | int | None = None
                     ) -> CompareDialog | None:
        """Open a comparison of two runs; the baseline (or else the older run) is the
        reference. With one run given or selected, the other is asked for."""
        chosen = self.selected_runs()
        if ref is None and other is None and len(chosen) == 2:
            ref, other = chosen[0].id, chosen[1].id
        rec = self._one(ref)
        if rec is None:
            return None
        if other is None:
            other = self._ask_other(rec)
            if other is None:
                return None
        second = self._one(other)
        if second is None:
            return None
        if second.id == rec.id:
            self._error("choose two different runs to compare")
            return None
        first, reference = rec, second
        if (not first.drop_enabled and second.drop_enabled) or (
                first.drop_enabled == second.drop_enabled and first.created < second.created):
            first, reference = second, first
        try:
            data = self.library.compare_data(first.id, reference.id)
        except LearnDropError as exc:
            self._error(exc.message)
            return None
        view = CompareDialog(*data, parent=self.window())
        view.export_requested.connect(lambda a, b: self.export_report(a, [b]))
        self._keep(view)
        view.show()
        return view

    def explore_what_if(self, ref: str | int | None = None) -> QWidget | None:
        """Open the what-if explorer on a run (finished or still training)."""
        rec = self._one(ref)
        return None if rec is None else self._show(lambda: open_what_if(
            self.library, rec.id, rec.label, self.window(), self.what_if_run_requested.emit))

    def side_by_side(self, run_ids: list[int] | None = None) -> QWidget | None:
        """Many runs side by side: those given, else the selected ones (two or more), else
        every run listed."""
        chosen = self.selected_runs()
        ids = run_ids if run_ids is not None else [
            r.id for r in (chosen if len(chosen) > 1 else self.runs())]
        return self._show(lambda: open_side_by_side(self.library, ids, self.window(),
                                                    self.open_run))

    def _show(self, make: Callable[[], QWidget]) -> QWidget | None:
        try:
            view = make()
        except LearnDropError as exc:
            self._error(exc.message)
            return None
        self._keep(view)
        view.show()
        return view

    def _ask_other(self, rec: RunRecord) -> int | None:
        try:
            others = [r for r in self.library.refresh() if r.id != rec.id]
        except LearnDropError as exc:
            self._error(exc.message)
            return None
        if not others:
            self._error("there is no other run to compare with: record another run first")
            return None
        # the likeliest partner first: a baseline of the same model and data set
        others.sort(key=lambda r: (r.drop_enabled == rec.drop_enabled,
                                   (r.model, r.dataset) != (rec.model, rec.dataset),
                                   -r.created))
        items = [f"{r.label} · {r.model}/{r.dataset} · "
                 f"{'baseline' if not r.drop_enabled else r.mode} · {r.status} · "
                 f"{fmt.when(r.created)}" for r in others]
        item, ok = QInputDialog.getItem(self, "Compare with…",
                                        f"Compare {rec.label} with:", items, 0, False)
        if not ok or item not in items:
            return None
        return others[items.index(item)].id

    def export_report(self, ref: str | int | None = None,
                      compare: list[str | int] | None = None) -> ExportDialog | None:
        """Open the export dialog for a run (and the runs it is compared with)."""
        rec = self._one(ref)
        if rec is None:
            return None
        title = rec.label
        if compare:
            try:
                title += " vs " + ", ".join(self.library.get_run(c).label for c in compare)
            except LearnDropError as exc:
                self._error(exc.message)
                return None
        dialog = ExportDialog(self.library, rec.id, compare=compare, title=title,
                              parent=self.window())
        dialog.exported.connect(lambda path: self._info(f"Report saved: {path}"))
        self._keep(dialog)
        dialog.show()
        return dialog

    def _keep(self, window: QWidget) -> None:
        """Keep a non-modal window alive until it is closed."""
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.windows.append(window)
        window.destroyed.connect(lambda *_: self.windows.remove(window)
                                 if window in self.windows else None)

    # ---- messages and actions ----------------------------------------------------------------
    def _error(self, text: str) -> None:
        self.last_error = " ".join(text.split())
        self.notice.setStyleSheet(f"color: {current_theme().error.name()};")
        self.notice.setText(self.last_error)
        self.notice.show()
        self.message.emit(self.last_error)

    def _info(self, text: str) -> None:
        self._clear_notice()
        self.message.emit(text)

    def _clear_notice(self) -> None:
        self.last_error = ""
        self.notice.hide()

    def _update_actions(self) -> None:
        update_actions(self)

    @Slot(QPoint)
    def _context_menu(self, pos: QPoint) -> None:
        show_context_menu(self, pos)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.auto_refresh()

    def close_store(self) -> None:
        """Stop refreshing, stop following and close the store (the window is closing)."""
        self.timer.stop()
        self.library.close()
