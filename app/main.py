"""Start Learn&Drop Studio: ``learndrop studio [--config FILE] [--autostart] ...``.

Where no window can open (no display named, a display that cannot be opened, or system
libraries that Qt's platform plugin needs and this machine lacks) the app says so in one line,
with the command that fixes it or the headless alternative, and exits 2 before Qt starts (see
:mod:`.display`); ``--check`` does only this check.

``--autostart --exit-when-done --screenshot PNG`` drive it from scripts and tests: the window
opens, runs the configuration, saves a picture of itself when the run ends and exits 0
when the run finished (1 with a one-line reason otherwise).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .display import has_display, window_problem

if TYPE_CHECKING:  # Qt and the engine load only once a window is to open
    from PySide6.QtWidgets import QApplication

    from learndrop.core.config import RunConfig

    from .main_window import MainWindow

__all__ = ["main", "has_display", "build_parser"]

PROG = "learndrop studio"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Open Learn&Drop Studio, the desktop app.")
    parser.add_argument("--config", metavar="FILE",
                        help="start with the settings of this TOML or JSON file")
    parser.add_argument("--autostart", action="store_true",
                        help="start training as soon as the window is open")
    parser.add_argument("--exit-when-done", action="store_true",
                        help="quit when the run ends (exit code 0 only if it finished)")
    parser.add_argument("--screenshot", metavar="PNG",
                        help="save a picture of the window to this file when the run ends")
    parser.add_argument("--check", action="store_true",
                        help="only check that a window can open here (display, system "
                             "libraries) and exit: 0 when it can, 2 with what to do if not")
    return parser


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the app; returns the exit code."""
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # --help or a usage error, already printed
        return int(exc.code or 0)
    if not has_display():
        _say("no display found (DISPLAY/WAYLAND_DISPLAY unset); train without the app with "
             "'learndrop train --config FILE' or set QT_QPA_PLATFORM=offscreen")
        return 2
    problem = window_problem()
    if problem:
        _say(problem)
        return 2
    if args.check:
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg, problem = _read_inputs(args)
    if problem:
        _say(problem)
        return 2
    return _run_app(args, cfg)


def _read_inputs(args: argparse.Namespace) -> tuple[RunConfig | None, str]:
    """The settings to start with (None: the remembered ones) and the first problem with the
    arguments' files (empty when there is none)."""
    from learndrop.core.config import load_config
    from learndrop.core.errors import LearnDropError

    cfg = None
    if args.config:
        try:
            cfg = load_config(args.config)
        except LearnDropError as exc:
            return None, exc.message
    if args.screenshot and not Path(args.screenshot).expanduser().parent.is_dir():
        return cfg, (f"cannot save the screenshot: folder {Path(args.screenshot).parent} does "
                     f"not exist; create it or choose another path")
    return cfg, ""


def _run_app(args: argparse.Namespace, cfg: RunConfig | None) -> int:
    from .main_window import MainWindow

    app = _application()
    # a scripted run neither restores nor overwrites the user's last settings and layout
    window = MainWindow(cfg, remember=not args.exit_when_done)
    script = _ScriptedRun(app, window, args)
    window.show()
    script.start()
    code = _exec(app, window)
    return script.code if args.exit_when_done else code


def _application() -> QApplication:
    """The Qt application, named and styled for the desktop."""
    from PySide6.QtWidgets import QApplication

    from .main_window import app_icon

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else PROG])
    assert isinstance(app, QApplication)
    app.setApplicationName("Learn&Drop Studio")
    app.setOrganizationName("learndrop")
    app.setDesktopFileName("learndrop-studio")
    app.setWindowIcon(app_icon())
    if sys.platform.startswith("linux"):
        app.setStyle("Fusion")  # follows the system palette, light or dark
    return app


def _exec(app: QApplication, window: MainWindow) -> int:
    """Qt's event loop until the app quits; Ctrl+C in the terminal closes the window."""
    from PySide6.QtCore import QTimer

    previous = signal.signal(signal.SIGINT, lambda *_: window.close())
    ticker = QTimer()  # lets Python see Ctrl+C while Qt's loop runs
    ticker.timeout.connect(lambda: None)
    ticker.start(250)
    try:
        return int(app.exec())
    finally:
        ticker.stop()
        signal.signal(signal.SIGINT, previous)


class _ScriptedRun:
    """``--autostart``, ``--exit-when-done`` and ``--screenshot``: start the run once the
    window is open, picture the window when the run ends, then quit with the run's outcome
    (:attr:`code`: 0 when it finished, 1 otherwise, 2 when it could not start)."""

    def __init__(self, app: QApplication, window: MainWindow,
                 args: argparse.Namespace) -> None:
        self.app, self.window, self.args = app, window, args
        self.code = 0
        self.done = False
        if args.exit_when_done or args.screenshot:
            window.show_error_dialogs = not args.exit_when_done
            window.run_finished.connect(self._on_run_finished)

    def start(self) -> None:
        """Start the run as soon as the event loop runs (with ``--autostart``)."""
        from PySide6.QtCore import QTimer

        if self.args.autostart:
            QTimer.singleShot(0, self._autostart)

    def _autostart(self) -> None:
        if not self.window.start_run():
            self.done = True
            self._leave(2, f"cannot start: {self.window.setup.reason or 'a run is already going'}")

    def _on_run_finished(self, status: str) -> None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(500, lambda: self._finish(status))  # let the live plots draw first

    def _finish(self, status: str) -> None:
        if self.done:
            return
        self.done = True
        code, reason = 0, ""
        if status != "finished":
            code = 1
            error = self.window.last_error
            reason = f"run {status}" + (f": {error}" if error else "")
        shot = self.args.screenshot
        if shot and not self.window.save_screenshot(Path(shot).expanduser()):
            code = 1
            reason = f"cannot write the screenshot {shot}: choose a writable path"
        self._leave(code, reason)

    def _leave(self, code: int, reason: str = "") -> None:
        if reason:
            _say(reason)
        self.code = code
        if self.args.exit_when_done:
            self.window.close()
            self.app.exit(code)


if __name__ == "__main__":
    sys.exit(main())
