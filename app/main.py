"""Start Learn&Drop Studio: ``learndrop studio [--config FILE] [--autostart] ...``.

Without a display the app cannot open; it says so in one line, names the headless command and
exits 2. ``--autostart --exit-when-done --screenshot PNG`` drive it from scripts and tests: the
window opens, runs the configuration, saves a picture of itself when the run ends and exits 0
when the run finished (1 with a one-line reason otherwise).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

__all__ = ["main", "has_display", "build_parser"]

PROG = "learndrop studio"
HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "linuxfb", "eglfs")


def has_display() -> bool:
    """True when Qt can open a window here (always on Windows and macOS)."""
    if sys.platform in ("win32", "darwin"):
        return True
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0].strip().lower()
    if platform in HEADLESS_PLATFORMS:
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


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
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from learndrop.core.config import load_config
    from learndrop.core.errors import LearnDropError

    cfg = None
    if args.config:
        try:
            cfg = load_config(args.config)
        except LearnDropError as exc:
            _say(exc.message)
            return 2
    if args.screenshot and not Path(args.screenshot).expanduser().parent.is_dir():
        _say(f"cannot save the screenshot: folder {Path(args.screenshot).parent} does not "
             f"exist; create it or choose another path")
        return 2
    return _run_app(args, cfg)


def _run_app(args: argparse.Namespace, cfg: object) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow, app_icon

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else PROG])
    assert isinstance(app, QApplication)
    app.setApplicationName("Learn&Drop Studio")
    app.setOrganizationName("learndrop")
    app.setDesktopFileName("learndrop-studio")
    app.setWindowIcon(app_icon())
    if sys.platform.startswith("linux"):
        app.setStyle("Fusion")  # follows the system palette, light or dark

    # a scripted run neither restores nor overwrites the user's last settings and layout
    window = MainWindow(cfg, remember=not args.exit_when_done)  # type: ignore[arg-type]
    outcome = {"code": 0, "done": False}

    def leave(code: int, reason: str = "") -> None:
        if reason:
            _say(reason)
        outcome["code"] = code
        if args.exit_when_done:
            window.close()
            app.exit(code)

    def finish(status: str) -> None:
        if outcome["done"]:
            return
        outcome["done"] = True
        code, reason = 0, ""
        if status != "finished":
            code = 1
            reason = f"run {status}" + (f": {window.last_error}" if window.last_error else "")
        if args.screenshot and not window.save_screenshot(Path(args.screenshot).expanduser()):
            code = 1
            reason = f"cannot write the screenshot {args.screenshot}: choose a writable path"
        leave(code, reason)

    def on_run_finished(status: str) -> None:
        QTimer.singleShot(500, lambda: finish(status))  # let the live plots draw first

    def autostart() -> None:
        if not window.start_run():
            outcome["done"] = True
            leave(2, f"cannot start: {window.setup.reason or 'a run is already going'}")

    if args.exit_when_done or args.screenshot:
        window.show_error_dialogs = not args.exit_when_done
        window.run_finished.connect(on_run_finished)
    window.show()
    if args.autostart:
        QTimer.singleShot(0, autostart)

    previous = signal.signal(signal.SIGINT, lambda *_: window.close())
    ticker = QTimer()  # lets Python see Ctrl+C while Qt's loop runs
    ticker.timeout.connect(lambda: None)
    ticker.start(250)
    try:
        code = app.exec()
    finally:
        ticker.stop()
        signal.signal(signal.SIGINT, previous)
    return int(outcome["code"] if args.exit_when_done else code)


if __name__ == "__main__":
    sys.exit(main())
