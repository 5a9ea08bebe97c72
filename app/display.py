"""Can a window open here? Asked before Qt starts, so that a machine where it cannot gets one
line saying what to do instead of Qt's "could not load the Qt platform plugin" and an abort.

On Linux, Qt opens windows through a platform plugin (``xcb`` for X11, ``wayland``) that loads
system libraries Qt does not ship: Qt 6.5 and later need ``libxcb-cursor0`` and several other
small X11 libraries that many desktops lack. :func:`missing_libraries` reads which libraries
the plugin and the Qt libraries it pulls in need (the ``DT_NEEDED`` entries of their ELF
files) and tries to load each one that Qt does not ship; :func:`display_error` opens and
closes a connection to the X display. :func:`window_problem` puts both together in one line,
empty when a window can open. Windows and macOS need none of this.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import re
import shutil
import struct
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["HEADLESS_PLATFORMS", "qt_platform", "has_display",
           "plugin_file", "needed_libraries", "missing_libraries", "debian_package",
           "install_hint", "display_error", "window_problem"]

#: Qt platforms that draw without a window system
HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "linuxfb", "eglfs")

# libraries whose Debian package does not follow the name + version rule of debian_package
_PACKAGES = {
    "libglib-2.0.so.0": "libglib2.0-0", "libgthread-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0", "libgio-2.0.so.0": "libglib2.0-0",
    "libstdc++.so.6": "libstdc++6", "libgcc_s.so.1": "libgcc-s1", "libz.so.1": "zlib1g",
    "libc.so.6": "libc6", "libm.so.6": "libc6", "libdl.so.2": "libc6",
    "libpthread.so.0": "libc6", "ld-linux-x86-64.so.2": "libc6",
}

# xcb_connection_has_error() codes, in words
_XCB_ERRORS = {
    1: "no X server answers there", 2: "the X server lacks a needed extension",
    3: "out of memory", 5: "the name is not a display name (such as :0)",
    6: "the X server has no such screen",
}


def qt_platform(env: Mapping[str, str] | None = None) -> str:
    """The platform plugin Qt will start with: ``QT_QPA_PLATFORM`` (its first choice), else
    ``wayland`` in a Wayland session and ``xcb`` otherwise (on Linux)."""
    env = os.environ if env is None else env
    chosen = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip().lower()
    if chosen:
        return chosen
    if env.get("WAYLAND_DISPLAY") and env.get("XDG_SESSION_TYPE", "").lower() == "wayland":
        return "wayland"
    return "xcb"


def has_display(env: Mapping[str, str] | None = None) -> bool:
    """True when a display is named (always on Windows and macOS, and on headless
    platforms)."""
    env = os.environ if env is None else env
    if sys.platform in ("win32", "darwin") or qt_platform(env) in HEADLESS_PLATFORMS:
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def plugin_file(platform: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Qt's plugin file for ``platform`` (``QT_QPA_PLATFORM_PLUGIN_PATH`` first, as Qt looks
    there first); None when Qt has no such plugin."""
    env = os.environ if env is None else env
    folders = [Path(p) for p in env.get("QT_QPA_PLATFORM_PLUGIN_PATH", "").split(os.pathsep)
               if p]
    from PySide6.QtCore import QLibraryInfo

    folders.append(Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms")
    for folder in folders:
        candidate = folder / f"libq{platform}.so"
        if candidate.is_file():
            return candidate
    return None


def needed_libraries(path: str | Path) -> list[str]:
    """The libraries an ELF shared object names as needed (``DT_NEEDED``), in order."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != b"\x7fELF":
            raise ValueError(f"{path} is not an ELF file")
        wide, order = data[4] == 2, "<" if data[5] == 1 else ">"
        if wide:
            (phoff,) = struct.unpack_from(order + "Q", data, 0x20)
            phentsize, phnum = struct.unpack_from(order + "HH", data, 0x36)
        else:
            (phoff,) = struct.unpack_from(order + "I", data, 0x1C)
            phentsize, phnum = struct.unpack_from(order + "HH", data, 0x2A)
        loads: list[tuple[int, int, int]] = []  # (address, file offset, size)
        dynamic: tuple[int, int] | None = None
        for k in range(phnum):
            at = phoff + k * phentsize
            if wide:
                kind, _flags, offset, vaddr, _p, size = struct.unpack_from(
                    order + "IIQQQQ", data, at)
            else:
                kind, offset, vaddr, _p, size = struct.unpack_from(order + "IIIII", data, at)
            if kind == 1:  # PT_LOAD
                loads.append((vaddr, offset, size))
            elif kind == 2:  # PT_DYNAMIC
                dynamic = (offset, size)
        if dynamic is None:
            return []
        entry = order + ("qQ" if wide else "iI")
        needed: list[int] = []
        strtab = None
        for at in range(dynamic[0], dynamic[0] + dynamic[1], struct.calcsize(entry)):
            tag, value = struct.unpack_from(entry, data, at)
            if tag == 0:  # DT_NULL
                break
            if tag == 1:  # DT_NEEDED
                needed.append(value)
            elif tag == 5:  # DT_STRTAB (an address)
                strtab = value
        if strtab is None:
            return []
        base = next((offset + strtab - vaddr for vaddr, offset, size in loads
                     if vaddr <= strtab < vaddr + size), None)
        if base is None:
            return []
        return [bytes(data[base + n:data.find(b"\0", base + n)]).decode("utf-8", "replace")
                for n in needed]


def _loads(name: str) -> str:
    """Empty when the system library ``name`` loads; else the library that is missing."""
    try:
        ctypes.CDLL(name)
    except OSError as exc:
        found = re.match(r"\s*([^\s:]+\.so[.\d]*):", str(exc))
        return found.group(1) if found else name
    return ""


def missing_libraries(plugin: Path, loads: Callable[[str], str] = _loads) -> list[str]:
    """The system libraries that ``plugin`` needs and that cannot be loaded here, following
    the libraries that sit beside Qt's own (``loads(name)`` tries one: empty when it loads,
    else the name of what is missing)."""
    from PySide6.QtCore import QLibraryInfo

    shipped = [plugin.parent, plugin.parent.parent.parent / "lib",
               Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.LibrariesPath))]
    seen: set[str] = set()
    missing: list[str] = []
    todo = [plugin]
    while todo:
        for name in needed_libraries(todo.pop()):
            if name in seen:
                continue
            seen.add(name)
            own = next((folder / name for folder in shipped if (folder / name).is_file()), None)
            if own is not None:
                todo.append(own)
                continue
            lacking = loads(name)
            if lacking and lacking not in missing:
                missing.append(lacking)
    return missing


def debian_package(library: str) -> str:
    """The Debian/Ubuntu package that usually provides ``library`` (``libxcb-icccm.so.4`` ->
    ``libxcb-icccm4``): its name and major version, joined by a hyphen after a digit."""
    if library in _PACKAGES:
        return _PACKAGES[library]
    found = re.match(r"(.+?)\.so\.(\d+)", library)
    if not found:
        return library
    name, version = found.group(1).lower(), found.group(2)
    return f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"


def install_hint(libraries: list[str]) -> str:
    """What to run to install ``libraries``, in one line."""
    packages = " ".join(dict.fromkeys(debian_package(name) for name in libraries))
    if shutil.which("apt-get"):
        return f"install them with: sudo apt-get install {packages}"
    return (f"install the packages that provide them (on Debian and Ubuntu: "
            f"sudo apt-get install {packages})")


def display_error(name: str) -> str:
    """Why the X display ``name`` cannot be opened; empty when it can (or when this cannot be
    told because libxcb itself is missing: the library check reports that)."""
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return ""
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(name.encode(), None)
    code = int(xcb.xcb_connection_has_error(conn)) if conn else 1
    xcb.xcb_disconnect(conn)
    if not code:
        return ""
    why = _XCB_ERRORS.get(code, f"error {code}")
    return (f"cannot open the display '{name}' (DISPLAY): {why}; start the app from the "
            f"desktop's own terminal, or check that the X server runs and lets this user in "
            f"(XAUTHORITY)")


def window_problem(env: Mapping[str, str] | None = None) -> str:
    """Why no window can open here, in one line (empty when one can): a display that cannot
    be opened, or the system libraries Qt's platform plugin lacks and how to install them."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux"):
        return ""
    platform = qt_platform(env)
    if platform in HEADLESS_PLATFORMS:
        return ""
    if platform == "wayland":  # Qt falls back to xcb when its wayland plugin cannot start
        wayland = plugin_file("wayland", env)
        if wayland is not None and not missing_libraries(wayland):
            return ""
        platform = "xcb"
    if platform != "xcb":
        return ""
    problems = []
    display = env.get("DISPLAY", "")
    if display and (problem := display_error(display)):
        problems.append(problem)
    plugin = plugin_file("xcb", env)
    if plugin is None:
        problems.append("Qt's X11 plugin (libqxcb.so) is missing from this PySide6: "
                        "reinstall it with 'pip install --force-reinstall PySide6'")
    else:
        try:
            missing = missing_libraries(plugin)
        except (OSError, ValueError, struct.error) as exc:
            missing = []
            problems.append(f"cannot read Qt's X11 plugin {plugin} ({exc})")
        if missing:
            problems.append(f"Qt needs system libraries this machine lacks "
                            f"({', '.join(missing)}); {install_hint(missing)}")
    return "; and ".join(problems)
