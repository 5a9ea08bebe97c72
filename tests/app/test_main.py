"""The app's entry point (``learndrop studio``): the scripted mode, bad input, no display."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from learndrop.app.display import (
    debian_package,
    install_hint,
    missing_libraries,
    needed_libraries,
    plugin_file,
    window_problem,
)
from learndrop.app.main import main
from learndrop.core.config import RunConfig, save_config

pytestmark = pytest.mark.gui


@pytest.mark.slow
def test_cli_runs_config_and_saves_screenshot(tiny_config: Callable[..., RunConfig],
                                              tmp_path: Path) -> None:
    """The scripted mode, in its own process: it runs (and quits) a whole QApplication."""
    config = save_config(tiny_config(tmp_path / "runs"), tmp_path / "tiny.toml")
    shot = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([sys.executable, "-m", "learndrop.core.cli", "studio", "--config",
                           str(config), "--autostart", "--exit-when-done", "--screenshot",
                           str(shot)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_config_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    assert main(["--config", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.toml" in err and "\n" not in err


def test_no_display_names_the_headless_command(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert main([]) == 2
    err = capsys.readouterr().err.strip()
    assert "no display" in err and "learndrop train" in err and "\n" not in err


# ---- can a window open here? ------------------------------------------------------------------
def _desktop_env(**extra: str) -> dict[str, str]:
    """This environment as a desktop session would have it: X11, no Qt platform forced."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM_PLUGIN_PATH")}
    return {**env, **extra}


def _studio(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "learndrop.core.cli", "studio", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def _free_display() -> str:
    number = next(n for n in range(4242, 4300)
                  if not Path(f"/tmp/.X11-unix/X{n}").exists())
    return f":{number}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 is Linux's")
def test_display_that_cannot_be_opened_is_one_line_and_exit_2() -> None:
    """A DISPLAY without an X server behind it: Qt would abort (exit 134); the app says which
    display cannot be opened, in one line, and exits 2."""
    display = _free_display()
    proc = _studio(_desktop_env(DISPLAY=display))
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert "\n" not in err and "Traceback" not in err and "Qt platform plugin" not in err
    assert f"cannot open the display '{display}'" in err


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("cc") is None,
                    reason="builds a fake Qt plugin with the C compiler on Linux")
def test_missing_system_library_names_the_package_to_install(tmp_path: Path) -> None:
    """Qt's xcb plugin needing a library this machine lacks (a fake plugin built here needs
    a library that does not exist): one line names the library and the apt-get command."""
    (tmp_path / "dep.c").write_text("int learndrop_fake_dep(void) { return 1; }\n")
    (tmp_path / "plugin.c").write_text(
        "int learndrop_fake_dep(void);\nint plugin(void) { return learndrop_fake_dep(); }\n")
    platforms = tmp_path / "platforms"
    platforms.mkdir()
    dep = tmp_path / "libxcb-learndropfake.so.7"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(dep), "-Wl,-soname,"
                    "libxcb-learndropfake.so.7", str(tmp_path / "dep.c")], check=True)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(platforms / "libqxcb.so"),
                    str(tmp_path / "plugin.c"), str(dep)], check=True)
    dep.unlink()  # now the plugin needs a library that is nowhere

    assert "libxcb-learndropfake.so.7" in needed_libraries(platforms / "libqxcb.so")
    proc = _studio(_desktop_env(DISPLAY=_free_display(),
                                QT_QPA_PLATFORM_PLUGIN_PATH=str(platforms)))
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "libxcb-learndropfake.so.7" in err
    assert "apt-get install libxcb-learndropfake7" in err


def test_missing_libraries_follow_qt_own_libraries() -> None:
    """The real xcb plugin: what it needs through Qt's own libraries is checked too, and only
    what cannot be loaded is reported, with its Debian package."""
    plugin = plugin_file("xcb", {})
    if plugin is None:
        pytest.skip("this PySide6 has no xcb plugin")
    assert "libQt6XcbQpa.so.6" in needed_libraries(plugin)
    tried: list[str] = []

    def loads(name: str) -> str:
        tried.append(name)
        return name if name in ("libxcb-icccm.so.4", "libEGL.so.1") else ""

    assert sorted(missing_libraries(plugin, loads)) == ["libEGL.so.1", "libxcb-icccm.so.4"]
    assert "libxcb-cursor.so.0" in tried  # needed by libQt6XcbQpa, not by the plugin itself
    assert not any(name.startswith("libQt6") for name in tried)  # Qt ships those


def test_debian_packages_of_libraries() -> None:
    assert [debian_package(n) for n in (
        "libxcb-icccm.so.4", "libxcb-render-util.so.0", "libxkbcommon-x11.so.0",
        "libX11-xcb.so.1", "libEGL.so.1", "libglib-2.0.so.0", "libdbus-1.so.3")] == [
        "libxcb-icccm4", "libxcb-render-util0", "libxkbcommon-x11-0", "libx11-xcb1",
        "libegl1", "libglib2.0-0", "libdbus-1-3"]
    assert "sudo apt-get install libxcb-cursor0 libxcb-keysyms1" in install_hint(
        ["libxcb-cursor.so.0", "libxcb-keysyms.so.1"])


def test_headless_platforms_and_other_systems_need_no_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert window_problem({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":4242"}) == ""
    monkeypatch.setattr("sys.platform", "win32")
    assert window_problem({"DISPLAY": ":4242"}) == ""


def test_check_flag_exits_0_where_a_window_can_open() -> None:
    assert main(["--check"]) == 0  # the tests draw offscreen


def test_readme_lists_the_libraries_qt_needs_for_windows() -> None:
    """Every X11, xkb, GL and font library that Qt's xcb plugin needs (directly or through
    Qt's own libraries) is in the README's apt-get line."""
    plugin = plugin_file("xcb", {})
    if plugin is None:
        pytest.skip("this PySide6 has no xcb plugin")
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    line = readme.split("sudo apt-get install libxcb-cursor0", 1)[1].split("```", 1)[0]
    listed = set(("libxcb-cursor0 " + line).replace("\\", " ").split())
    needed: list[str] = []
    missing_libraries(plugin, lambda name: needed.append(name) or "")
    wanted = {debian_package(n) for n in needed
              if n.startswith(("libxcb-", "libxkbcommon", "libX11-xcb", "libEGL", "libGL.",
                               "libfontconfig"))}
    assert wanted and wanted <= listed, sorted(wanted - listed)
